//! An SMTP server on loopback for the e-mail tests: the protocol is `mailin`'s (a crate made
//! for writing SMTP servers), the sockets are ours. It keeps every message it accepts, and can
//! refuse its first connections (`421`, as a busy or restarting server does).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mailin::{Action, Handler, Response, SessionBuilder};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Received {
    /// Envelope recipients.
    pub to: Vec<String>,
    /// The message as sent (headers and body).
    pub data: String,
}

/// The running sink.
pub struct SmtpSink {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Collect {
    received: Arc<Mutex<Vec<Received>>>,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Collect {
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.to = to.to_vec();
        self.data.clear();
        mailin::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let message = Received {
            to: std::mem::take(&mut self.to),
            data: String::from_utf8_lossy(&self.data).into_owned(),
        };
        self.received.lock().unwrap().push(message);
        mailin::response::OK
    }
}

impl SmtpSink {
    /// Starts on a free loopback port; the first `refuse` connections are turned away.
    pub async fn start(refuse: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the SMTP sink");
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (shared, count) = (received.clone(), connections.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                let (read, mut write) = stream.into_split();
                if count.fetch_add(1, Ordering::SeqCst) < refuse {
                    let _ = write.write_all(b"421 sink.test busy, try again later\r\n").await;
                    continue;
                }
                let handler =
                    Collect { received: shared.clone(), to: Vec::new(), data: Vec::new() };
                tokio::spawn(async move {
                    let mut session = SessionBuilder::new("sink.test").build(peer.ip(), handler);
                    let mut out = Vec::new();
                    let _ = session.greeting().write_to(&mut out);
                    if write.write_all(&out).await.is_err() {
                        return;
                    }
                    let mut lines = BufReader::new(read);
                    let mut line = Vec::new();
                    loop {
                        line.clear();
                        match lines.read_until(b'\n', &mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        let response = session.process(&line);
                        if response.action == Action::NoReply {
                            continue;
                        }
                        out.clear();
                        let _ = response.write_to(&mut out);
                        if write.write_all(&out).await.is_err() || response.action == Action::Close
                        {
                            return;
                        }
                    }
                });
            }
        });
        Self { addr, received, connections, task }
    }

    /// What was accepted so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Connections so far (the refused ones included).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}
