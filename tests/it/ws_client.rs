//! A GraphQL-over-WebSocket client for the subscription tests: `graphql-transport-ws` (and the
//! legacy `graphql-ws`), with a deadline on every wait.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What the server said last.
#[derive(Debug)]
pub enum Heard {
    /// A protocol message.
    Message(Value),
    /// The server closed the connection with this code.
    Closed(u16),
}

/// One WebSocket connection.
pub struct WsClient {
    socket: Socket,
}

impl WsClient {
    /// Connects to `http_url` (its `/graphql`) speaking `protocol`.
    pub async fn connect(http_url: &str, protocol: &str) -> Self {
        let url = format!("{}/graphql", http_url.replacen("http", "ws", 1));
        let mut request = url.into_client_request().expect("a WebSocket URL");
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_str(protocol).unwrap());
        let (socket, response) = tokio_tungstenite::connect_async(request).await.expect("connects");
        let chosen = response.headers().get("sec-websocket-protocol").cloned();
        assert_eq!(chosen.as_ref().and_then(|v| v.to_str().ok()), Some(protocol));
        Self { socket }
    }

    /// Sends a protocol message.
    pub async fn send(&mut self, message: Value) {
        self.socket.send(Message::text(message.to_string())).await.expect("sent");
    }

    /// `connection_init` with `payload`, then waits for the answer.
    pub async fn init(&mut self, payload: Value) -> Heard {
        self.send(json!({ "type": "connection_init", "payload": payload })).await;
        self.next().await
    }

    /// The next protocol message or close (pings answered, keep-alives skipped).
    pub async fn next(&mut self) -> Heard {
        let deadline = Duration::from_secs(30);
        loop {
            let frame = tokio::time::timeout(deadline, self.socket.next())
                .await
                .expect("the server says something within the deadline");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    let message: Value = serde_json::from_str(&text).expect("JSON");
                    match message["type"].as_str() {
                        Some("ping") => self.send(json!({ "type": "pong" })).await,
                        Some("ka" | "pong") => {}
                        _ => return Heard::Message(message),
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return Heard::Closed(frame.map_or(1005, |f| u16::from(f.code)));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Heard::Closed(1006),
            }
        }
    }

    /// The next protocol message; panics on a close.
    pub async fn message(&mut self) -> Value {
        match self.next().await {
            Heard::Message(message) => message,
            Heard::Closed(code) => panic!("closed with {code}"),
        }
    }
}
