//! Subscriptions to subgraphs over WebSocket (`graphql-transport-ws`), multiplexed: a
//! connection per subgraph and credentials carries up to [`PER_CONNECTION`] client
//! subscriptions that share them, each under its own id (a subgraph server may look at every
//! subscription of a connection when any one of them has news, so connections are kept to a
//! few hundred subscriptions each). A connection opens on first use and closes when its last
//! subscription ends. When it drops, every subscription on it is told ([`Upstream::Dropped`]),
//! so no client stream is left hanging.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::body::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// What a subgraph says about one subscription.
#[derive(Debug)]
pub enum Upstream {
    /// A result (a GraphQL response body).
    Next(Bytes),
    /// The subscription failed (a list of GraphQL errors).
    Error(Bytes),
    /// The subgraph ended the stream.
    Complete,
    /// The connection dropped.
    Dropped(String),
}

/// A connection is shared by a subgraph and credentials (the `Authorization` value).
type Key = (String, Option<String>);

/// Most subscriptions one upstream connection carries.
pub const PER_CONNECTION: usize = 256;

/// Subgraph WebSocket connections, shared.
pub struct Upstreams {
    urls: Arc<HashMap<String, String>>,
    connections: Mutex<HashMap<Key, Vec<Weak<Connection>>>>,
}

struct Connection {
    out: mpsc::UnboundedSender<Message>,
    routes: Mutex<HashMap<u64, mpsc::Sender<Upstream>>>,
    next_id: AtomicU64,
}

/// One subscription on a shared connection; dropping it ends it upstream.
pub struct Subscription {
    id: u64,
    connection: Arc<Connection>,
    events: mpsc::Receiver<Upstream>,
}

impl Subscription {
    /// The next thing the subgraph said; `None` once nothing more will come.
    pub async fn next(&mut self) -> Option<Upstream> {
        self.events.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut routes = self.connection.routes.lock().unwrap_or_else(|p| p.into_inner());
        if routes.remove(&self.id).is_some() {
            let _ = self.connection.out.send(Message::text(
                json!({ "id": self.id.to_string(), "type": "complete" }).to_string(),
            ));
        }
        if routes.is_empty() {
            // The last one: the connection is no longer needed.
            let _ = self.connection.out.send(Message::Close(None));
        }
    }
}

/// Why a subscription could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The subgraph is not in the supergraph.
    #[error("no subgraph named {0}")]
    Unknown(String),
    /// Connecting or the `connection_init` handshake failed.
    #[error("subgraph {0} did not accept a subscription connection: {1}")]
    Connect(String, String),
}

impl Upstreams {
    /// Connections to the subgraphs at `urls` (name → HTTP URL; WebSocket at the same path).
    pub fn new(urls: Arc<HashMap<String, String>>) -> Self {
        Self { urls, connections: Mutex::new(HashMap::new()) }
    }

    /// Open upstream connections.
    pub fn open_connections(&self) -> usize {
        let connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        connections.values().flatten().filter(|c| c.strong_count() > 0).count()
    }

    /// Subscribes on `service` with `body` (`{"query", "variables"}`), on the connection for
    /// `authorization` (opened if needed).
    pub async fn subscribe(
        &self,
        service: &str,
        authorization: Option<&HeaderValue>,
        body: &[u8],
    ) -> Result<Subscription, UpstreamError> {
        let auth = authorization.and_then(|h| h.to_str().ok()).map(str::to_string);
        let key = (service.to_string(), auth.clone());
        let existing =
            {
                let connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
                connections.get(&key).into_iter().flatten().filter_map(Weak::upgrade).find(|c| {
                    c.routes.lock().unwrap_or_else(|p| p.into_inner()).len() < PER_CONNECTION
                })
            };
        let connection = match existing {
            Some(connection) => connection,
            None => {
                let url = self
                    .urls
                    .get(service)
                    .ok_or_else(|| UpstreamError::Unknown(service.to_string()))?;
                let connection = connect(url, auth.as_deref())
                    .await
                    .map_err(|e| UpstreamError::Connect(service.to_string(), e))?;
                let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
                for shared in connections.values_mut() {
                    shared.retain(|c| c.strong_count() > 0);
                }
                connections.retain(|_, shared| !shared.is_empty());
                connections.entry(key).or_default().push(Arc::downgrade(&connection));
                connection
            }
        };
        let id = connection.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, events) = mpsc::channel(64);
        connection.routes.lock().unwrap_or_else(|p| p.into_inner()).insert(id, tx);
        let payload: serde_json::Value =
            serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
        let message = json!({ "id": id.to_string(), "type": "subscribe", "payload": payload });
        if connection.out.send(Message::text(message.to_string())).is_err() {
            return Err(UpstreamError::Connect(service.to_string(), "connection closed".into()));
        }
        Ok(Subscription { id, connection, events })
    }
}

/// Opens a `graphql-transport-ws` connection and completes its handshake.
async fn connect(http_url: &str, authorization: Option<&str>) -> Result<Arc<Connection>, String> {
    let url = http_url.replacen("http", "ws", 1);
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
    let (socket, _) =
        tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(request))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
    let (mut sink, mut stream) = socket.split();
    let payload = match authorization {
        Some(value) => json!({ "Authorization": value }),
        None => json!({}),
    };
    let init = json!({ "type": "connection_init", "payload": payload });
    sink.send(Message::text(init.to_string())).await.map_err(|e| e.to_string())?;
    let acked = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(frame) = stream.next().await {
            match frame {
                Ok(Message::Text(text)) => {
                    let message: serde_json::Value =
                        serde_json::from_str(&text).unwrap_or_default();
                    if message["type"] == "connection_ack" {
                        return Ok(());
                    }
                }
                Ok(Message::Close(frame)) => {
                    return Err(format!(
                        "closed: {}",
                        frame.map_or(String::new(), |f| format!("{} {}", f.code, f.reason))
                    ));
                }
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Err("closed before acknowledging".to_string())
    })
    .await
    .map_err(|_| "no connection_ack".to_string())?;
    acked?;
    let (out, mut outgoing) = mpsc::unbounded_channel::<Message>();
    let connection = Arc::new(Connection {
        out,
        routes: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
    });
    // Writer: everything sent on this connection goes through one task.
    tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
        let _ = sink.close().await;
    });
    // Reader: routes results to their subscriptions; tells them all when it ends. It holds
    // the connection weakly, so the connection goes when its last subscription does.
    let weak = Arc::downgrade(&connection);
    tokio::spawn(async move {
        let mut reason = "the subgraph closed the connection".to_string();
        while let Some(frame) = stream.next().await {
            let Some(connection) = weak.upgrade() else { return };
            match frame {
                Ok(Message::Text(text)) => route(&connection, text.as_bytes()).await,
                Ok(Message::Close(_)) => break,
                Ok(_) => {}
                Err(e) => {
                    reason = e.to_string();
                    break;
                }
            }
        }
        if let Some(connection) = weak.upgrade() {
            let routes: Vec<mpsc::Sender<Upstream>> = {
                let mut routes = connection.routes.lock().unwrap_or_else(|p| p.into_inner());
                routes.drain().map(|(_, tx)| tx).collect()
            };
            for tx in routes {
                let _ = tx.send(Upstream::Dropped(reason.clone())).await;
            }
        }
    });
    Ok(connection)
}

/// Hands one message to its subscription.
async fn route(connection: &Connection, text: &[u8]) {
    #[derive(serde::Deserialize)]
    struct Frame<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        id: Option<&'a str>,
        #[serde(borrow)]
        payload: Option<&'a serde_json::value::RawValue>,
    }
    let Ok(frame) = serde_json::from_slice::<Frame>(text) else { return };
    if frame.kind == "ping" {
        let _ = connection.out.send(Message::text(json!({ "type": "pong" }).to_string()));
        return;
    }
    let Some(id) = frame.id.and_then(|id| id.parse::<u64>().ok()) else { return };
    let payload = || Bytes::copy_from_slice(frame.payload.map_or("null", |p| p.get()).as_bytes());
    let (event, last) = match frame.kind {
        "next" => (Upstream::Next(payload()), false),
        "error" => (Upstream::Error(payload()), true),
        "complete" => (Upstream::Complete, true),
        _ => return,
    };
    let tx = {
        let mut routes = connection.routes.lock().unwrap_or_else(|p| p.into_inner());
        if last { routes.remove(&id) } else { routes.get(&id).cloned() }
    };
    if let Some(tx) = tx {
        // A client that cannot keep up slows its own subscription, not the connection's
        // others for long: the channel holds 64 results.
        let _ = tx.send(event).await;
    }
}
