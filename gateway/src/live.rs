//! Subscriptions at the gateway, over the transports clients use: WebSocket with
//! `graphql-transport-ws` (graphql-ws, Apollo Client, urql, Relay) and the legacy `graphql-ws`
//! (subscriptions-transport-ws), GraphQL over server-sent events (`Accept:
//! text/event-stream`), and multipart HTTP (`Accept: multipart/mixed;subscriptionSpec=1.0`).
//! Every transport runs [`Gateway::subscribe`]: queries and mutations give one result,
//! subscriptions one per event.
//!
//! A WebSocket connection is authenticated at `connection_init` (the token in its payload,
//! else the upgrade request's `Authorization` header): a token that does not verify closes it
//! with 4403. Subscriptions per connection and connections per client address are limited;
//! both sides get keep-alive pings; a client's `complete`/`stop`, or its going away, ends its
//! subscriptions and with them their upstream subscriptions.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{Value as Json, json};
use tokio::sync::mpsc;

use crate::auth::JwtVerifier;
use crate::pipeline::{Gateway, GraphQLRequest, Outcome, ResponseData, Subscribed};
use crate::transport::ForwardedHeaders;

/// Limits on live connections.
#[derive(Debug, Clone)]
pub struct LiveLimits {
    /// Subscriptions one WebSocket connection may hold at once.
    pub subscriptions_per_connection: usize,
    /// WebSocket connections one client address may hold at once.
    pub connections_per_client: usize,
    /// How long a client has to send `connection_init`.
    pub init_timeout: Duration,
    /// Keep-alive interval.
    pub keep_alive: Duration,
}

impl Default for LiveLimits {
    fn default() -> Self {
        Self {
            subscriptions_per_connection: 100,
            connections_per_client: 1000,
            init_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(12),
        }
    }
}

/// Live connections per client address.
#[derive(Default)]
pub struct Clients(Mutex<HashMap<IpAddr, usize>>);

/// A live connection counted against its client; uncounted when dropped.
struct Counted {
    clients: Arc<Clients>,
    address: IpAddr,
}

impl Clients {
    fn admit(self: &Arc<Self>, address: IpAddr, limit: usize) -> Option<Counted> {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(address).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Counted { clients: self.clone(), address })
    }

    /// Live WebSocket connections.
    pub fn total(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).values().sum()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut counts = self.clients.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// One result: its response body, serialised once and sent as it is; and, when it is a
/// refusal (no data, only errors), those errors for the protocol's `error` message.
fn payload(outcome: Outcome) -> (String, Option<Json>) {
    let (data, errors) = match outcome {
        Outcome::RequestError(_, errors) => (ResponseData::Tree(None), errors),
        Outcome::Executed { data, errors } => (data, errors),
    };
    let refused =
        matches!(data, ResponseData::Tree(None) | ResponseData::Raw(None)) && !errors.is_empty();
    let refusal = refused.then(|| serde_json::to_value(&errors).unwrap_or(Json::Null));
    let body = crate::http::body(data, &errors, true);
    (String::from_utf8(body).unwrap_or_else(|_| "null".into()), refusal)
}

/// A protocol message around a result body already serialised.
fn result_message(id: &str, kind: &str, body: &str) -> Message {
    let id = serde_json::to_string(id).unwrap_or_else(|_| "\"\"".into());
    Message::text(format!("{{\"id\":{id},\"type\":\"{kind}\",\"payload\":{body}}}"))
}

/// The WebSocket protocols spoken.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// `graphql-transport-ws`.
    TransportWs,
    /// The legacy `graphql-ws` of subscriptions-transport-ws.
    Legacy,
}

/// Upgrades a `GET /graphql` to a WebSocket speaking the protocol the client offered.
#[allow(clippy::too_many_arguments)]
pub fn upgrade(
    gateway: Arc<Gateway>,
    jwt: Option<Arc<JwtVerifier>>,
    clients: Arc<Clients>,
    limits: LiveLimits,
    upgrade: WebSocketUpgrade,
    headers: &HeaderMap,
    forwarded: ForwardedHeaders,
    address: IpAddr,
) -> Response {
    let offered =
        headers.get(header::SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok()).unwrap_or("");
    let protocol = offered.split(',').map(str::trim).find_map(|p| match p {
        "graphql-transport-ws" => Some(Protocol::TransportWs),
        "graphql-ws" => Some(Protocol::Legacy),
        _ => None,
    });
    let Some(protocol) = protocol else {
        return (
            StatusCode::BAD_REQUEST,
            "offer the graphql-transport-ws or graphql-ws subprotocol",
        )
            .into_response();
    };
    let Some(counted) = clients.admit(address, limits.connections_per_client) else {
        return (StatusCode::TOO_MANY_REQUESTS, "too many live connections from this address")
            .into_response();
    };
    let name = match protocol {
        Protocol::TransportWs => "graphql-transport-ws",
        Protocol::Legacy => "graphql-ws",
    };
    // Small buffers: a storefront's messages are small, and ten thousand idle connections
    // should not hold ten thousand 128 KiB read buffers (tungstenite's default). Messages
    // from clients are operations: 64 KiB is plenty.
    let upgrade = upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(64 * 1024)
        .max_frame_size(64 * 1024);
    upgrade.protocols([name]).on_upgrade(move |socket| async move {
        let connection = WsConnection { gateway, jwt, limits, protocol, forwarded };
        connection.serve(socket).await;
        drop(counted);
    })
}

struct WsConnection {
    gateway: Arc<Gateway>,
    jwt: Option<Arc<JwtVerifier>>,
    limits: LiveLimits,
    protocol: Protocol,
    forwarded: ForwardedHeaders,
}

fn text(message: Json) -> Message {
    Message::text(message.to_string())
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}

/// The `Authorization` a `connection_init` payload carries: `{ "Authorization": … }` (either
/// case), `{ "headers": { "Authorization": … } }`, or `{ "token": "…" }`.
fn token_in(payload: &Json) -> Option<String> {
    let field = |object: &Json| {
        object
            .get("Authorization")
            .or_else(|| object.get("authorization"))
            .and_then(Json::as_str)
            .map(str::to_string)
    };
    field(payload)
        .or_else(|| payload.get("headers").and_then(field))
        .or_else(|| payload.get("token").and_then(Json::as_str).map(|t| format!("Bearer {t}")))
}

impl WsConnection {
    async fn serve(mut self, socket: WebSocket) {
        let (mut sink, mut stream) = socket.split();
        let (out, mut outgoing) = mpsc::channel::<Message>(256);
        let writer = tokio::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                let closing = matches!(message, Message::Close(_));
                if sink.send(message).await.is_err() || closing {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let mut running: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        let mut acknowledged = false;
        let init_deadline = tokio::time::sleep(self.limits.init_timeout);
        tokio::pin!(init_deadline);
        let mut keep_alive = tokio::time::interval(self.limits.keep_alive);
        keep_alive.tick().await;
        loop {
            let frame = tokio::select! {
                frame = stream.next() => frame,
                _ = &mut init_deadline, if !acknowledged => {
                    let _ = out.send(close(4408, "Connection initialisation timeout")).await;
                    break;
                }
                _ = keep_alive.tick(), if acknowledged => {
                    let ping = match self.protocol {
                        Protocol::TransportWs => json!({ "type": "ping" }),
                        Protocol::Legacy => json!({ "type": "ka" }),
                    };
                    let _ = out.send(text(ping)).await;
                    continue;
                }
            };
            let message: Json = match frame {
                Some(Ok(Message::Text(body))) => match serde_json::from_str(&body) {
                    Ok(message) => message,
                    Err(_) => {
                        let _ = out.send(close(4400, "Invalid message")).await;
                        break;
                    }
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            };
            running.retain(|_, task| !task.is_finished());
            let kind = message["type"].as_str().unwrap_or("");
            let id = message["id"].as_str().map(str::to_string);
            match (kind, self.protocol) {
                ("connection_init", _) => {
                    if acknowledged {
                        let _ = out.send(close(4429, "Too many initialisation requests")).await;
                        break;
                    }
                    let token = token_in(&message["payload"]).or_else(|| {
                        self.forwarded
                            .authorization
                            .as_ref()
                            .and_then(|h| h.to_str().ok())
                            .map(str::to_string)
                    });
                    if let (Some(jwt), Some(token)) = (&self.jwt, &token)
                        && let Err(reason) = jwt.verify(token).await
                    {
                        let reason = format!("Forbidden: {reason}");
                        let refusal = match self.protocol {
                            Protocol::TransportWs => close(4403, &reason),
                            Protocol::Legacy => {
                                let _ = out
                                    .send(text(json!({ "type": "connection_error", "payload": { "message": reason } })))
                                    .await;
                                close(4403, &reason)
                            }
                        };
                        let _ = out.send(refusal).await;
                        break;
                    }
                    self.forwarded.authorization =
                        token.and_then(|t| HeaderValue::from_str(&t).ok());
                    acknowledged = true;
                    let _ = out.send(text(json!({ "type": "connection_ack" }))).await;
                    if self.protocol == Protocol::Legacy {
                        let _ = out.send(text(json!({ "type": "ka" }))).await;
                    }
                }
                ("ping", Protocol::TransportWs) => {
                    let _ = out.send(text(json!({ "type": "pong" }))).await;
                }
                ("pong", _) => {}
                ("subscribe", Protocol::TransportWs) | ("start", Protocol::Legacy) => {
                    let Some(id) = id else {
                        let _ = out.send(close(4400, "A subscription needs an id")).await;
                        break;
                    };
                    if !acknowledged {
                        let _ = out.send(close(4401, "Unauthorized")).await;
                        break;
                    }
                    if running.contains_key(&id) {
                        if self.protocol == Protocol::TransportWs {
                            let _ = out
                                .send(close(4409, &format!("Subscriber for {id} already exists")))
                                .await;
                            break;
                        }
                        continue;
                    }
                    if running.len() >= self.limits.subscriptions_per_connection {
                        let limit = self.limits.subscriptions_per_connection;
                        let errors = json!([{ "message": format!("this connection already holds {limit} subscriptions, the most allowed"), "extensions": { "code": "TOO_MANY_SUBSCRIPTIONS" } }]);
                        let _ = out
                            .send(text(json!({ "id": id, "type": "error", "payload": errors })))
                            .await;
                        continue;
                    }
                    let request = match request_of(&message["payload"]) {
                        Ok(request) => request,
                        Err(why) => {
                            let errors = json!([{ "message": why }]);
                            let _ = out
                                .send(text(json!({ "id": id, "type": "error", "payload": errors })))
                                .await;
                            continue;
                        }
                    };
                    let task = tokio::spawn(run_one(
                        self.gateway.clone(),
                        request,
                        self.forwarded.clone(),
                        id.clone(),
                        self.protocol,
                        out.clone(),
                    ));
                    running.insert(id, task);
                }
                ("complete", Protocol::TransportWs) | ("stop", Protocol::Legacy) => {
                    if let Some(task) = id.and_then(|id| running.remove(&id)) {
                        task.abort();
                    }
                }
                ("connection_terminate", Protocol::Legacy) => break,
                _ => {
                    if self.protocol == Protocol::TransportWs {
                        let _ =
                            out.send(close(4400, &format!("Unexpected message type {kind}"))).await;
                        break;
                    }
                }
            }
        }
        // The client went away (or was sent away): its subscriptions end here, and with them
        // their upstream subscriptions.
        for (_, task) in running.drain() {
            task.abort();
        }
        drop(out);
        let _ = writer.await;
    }
}

/// Runs one operation of a WebSocket connection and sends its results.
async fn run_one(
    gateway: Arc<Gateway>,
    request: GraphQLRequest,
    forwarded: ForwardedHeaders,
    id: String,
    protocol: Protocol,
    out: mpsc::Sender<Message>,
) {
    let next = match protocol {
        Protocol::TransportWs => "next",
        Protocol::Legacy => "data",
    };
    match gateway.subscribe(request, forwarded).await {
        Subscribed::Once(outcome) => {
            let message = match payload(outcome) {
                (_, Some(errors)) if protocol == Protocol::TransportWs => {
                    text(json!({ "id": id, "type": "error", "payload": errors }))
                }
                (body, _) => result_message(&id, next, &body),
            };
            let _ = out.send(message).await;
        }
        Subscribed::Stream(mut results) => {
            let mut first = true;
            while let Some(outcome) = results.next().await {
                let (body, refusal) = payload(outcome);
                // Refused when it began (not yours, not signed in): the protocol's error,
                // and nothing streamed.
                if let (true, Some(errors)) = (first, refusal) {
                    let message = match protocol {
                        Protocol::TransportWs => {
                            json!({ "id": id, "type": "error", "payload": errors })
                        }
                        Protocol::Legacy => {
                            json!({ "id": id, "type": "error", "payload": errors[0] })
                        }
                    };
                    let _ = out.send(text(message)).await;
                    if protocol == Protocol::TransportWs {
                        return;
                    }
                    break;
                }
                first = false;
                if out.send(result_message(&id, next, &body)).await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = out.send(text(json!({ "id": id, "type": "complete" }))).await;
}

/// A request from a `subscribe`/`start` payload.
fn request_of(payload: &Json) -> Result<GraphQLRequest, String> {
    crate::http::request_from(
        payload.get("query").cloned(),
        payload.get("operationName").cloned(),
        payload.get("variables").cloned(),
    )
}

/// Which streaming HTTP response the client asked for, if any.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Streaming {
    /// `text/event-stream`.
    Sse,
    /// `multipart/mixed` with `subscriptionSpec=1.0`.
    Multipart,
}

/// Reads the `Accept` header for a streaming response.
pub fn streaming(headers: &HeaderMap) -> Option<Streaming> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())?;
    for part in accept.split(',') {
        let media = part.split(';').next().unwrap_or("").trim();
        if media == "text/event-stream" {
            return Some(Streaming::Sse);
        }
        if media == "multipart/mixed" && part.contains("subscriptionSpec") {
            return Some(Streaming::Multipart);
        }
    }
    None
}

/// Answers a request as a stream of results over HTTP: server-sent events or multipart.
pub async fn respond(
    gateway: Arc<Gateway>,
    request: GraphQLRequest,
    forwarded: ForwardedHeaders,
    kind: Streaming,
    keep_alive: Duration,
) -> Response {
    let results: futures::stream::BoxStream<'static, Outcome> =
        match gateway.subscribe(request, forwarded).await {
            Subscribed::Once(outcome) => Box::pin(futures::stream::once(async move { outcome })),
            Subscribed::Stream(results) => results,
        };
    let (tx, rx) = mpsc::channel::<Result<Vec<u8>, std::convert::Infallible>>(16);
    tokio::spawn(async move {
        let mut results = results;
        let mut ticker = tokio::time::interval(keep_alive);
        ticker.tick().await;
        loop {
            let chunk = tokio::select! {
                result = results.next() => match result {
                    Some(outcome) => {
                        let (body, _) = payload(outcome);
                        match kind {
                            Streaming::Sse => format!("event: next\ndata: {body}\n\n").into_bytes(),
                            Streaming::Multipart => format!("\r\n--graphql\r\ncontent-type: application/json; charset=utf-8\r\n\r\n{{\"payload\":{body}}}").into_bytes(),
                        }
                    }
                    None => break,
                },
                _ = ticker.tick() => match kind {
                    Streaming::Sse => b":\n\n".to_vec(),
                    Streaming::Multipart => b"\r\n--graphql\r\ncontent-type: application/json; charset=utf-8\r\n\r\n{}".to_vec(),
                },
                // The client went away: the results (and the upstream subscription) are dropped.
                _ = tx.closed() => return,
            };
            if tx.send(Ok(chunk)).await.is_err() {
                return;
            }
        }
        let end = match kind {
            Streaming::Sse => b"event: complete\ndata:\n\n".to_vec(),
            Streaming::Multipart => b"\r\n--graphql--\r\n".to_vec(),
        };
        let _ = tx.send(Ok(end)).await;
    });
    let body = Body::from_stream(tokio_stream_of(rx));
    let content_type = match kind {
        Streaming::Sse => "text/event-stream; charset=utf-8",
        Streaming::Multipart => "multipart/mixed; boundary=\"graphql\"; subscriptionSpec=\"1.0\"",
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

fn tokio_stream_of<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
