//! `hvsock forward`: many forwarded ports over one host<->VM connection, as ssh's `-L` and `-R`
//! do, so one vsock port (one registered Hyper-V service GUID) serves every forward.
//!
//! One end serves ([`Server`]: `hvsock forward --serve vsock:any:5000`), the other connects
//! to it ([`Forward`]) and says what to forward. Each forwarded connection is a stream of its
//! own on the one connection ([`mux`]: yamux, a window per stream, so a stalled stream holds up
//! only itself), joined to its socket by the engine's [`join`](crate::join()): half-closes
//! passed on, a failure passed on as a reset. The serving end reaches and listens on only what
//! its allowlists name. The client keeps its listeners up when the connection drops, and makes
//! it again with growing waits; a heartbeat finds a peer that vanished.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use hvsock_relay::forward::{Forward, Spec};
//! // In the guest: its port 8080 is the host's 127.0.0.1:80, through the host's
//! // `hvsock forward --serve vsock:any:5000 --allow 127.0.0.1:80`.
//! let forward = Forward {
//!     local: vec![Spec::parse("8080:127.0.0.1:80").map_err(anyhow::Error::msg)?],
//!     ..Forward::new("vsock:host:5000".parse()?)
//! };
//! let code = forward.run(hvsock_relay::Signals::new()?, Default::default()).await?;
//! # let _ = code; Ok(()) }
//! ```

mod client;
mod heartbeat;
pub mod mux;
mod outbox;
mod serve;
mod socks;
mod spec;
mod udp;
pub mod wire;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hvsock::line::{Line, LineError};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tracing::{info, warn};

pub use client::{Bound, Forward};
pub use serve::Server;
pub use spec::{parse_listen, Local, Spec};
pub use udp::MAX_DATAGRAM;

use crate::conn::Conn;
use crate::join::{join, Counters, End, Options};
use mux::MuxStream;
use wire::{Answer, Request, MAX_LINE};

/// What a forward did, counted as it goes (for the summary on exit).
#[derive(Default, Debug)]
pub struct Summary {
    /// Forwarded streams, both ways.
    pub streams: AtomicU64,
    /// Refused: by the allowlist, or their target could not be reached.
    pub refused: AtomicU64,
    /// Ended by a failure (a reset, the connection dropping, the stop).
    pub failed: AtomicU64,
    /// Times the connection was made again after it dropped (the client) or connections
    /// served (the serving end).
    pub connections: AtomicU64,
    /// Bytes: from the accepting side to the target, and back.
    pub bytes: Counters,
}

/// How long a peer that opened a stream has to send its request line.
const REQUEST_WITHIN: Duration = Duration::from_secs(10);

/// Writes one line (a request or an answer) to a stream.
async fn send(stream: &mut MuxStream, line: String) -> std::io::Result<()> {
    stream.write_all(format!("{line}\n").as_bytes()).await?;
    stream.flush().await
}

/// Reads a stream's request line, taking nothing after it.
async fn receive(stream: &mut MuxStream) -> Result<Vec<u8>, String> {
    tokio::time::timeout(REQUEST_WITHIN, read_line(stream, "request"))
        .await
        .map_err(|_| format!("no request in {} s", REQUEST_WITHIN.as_secs()))?
}

/// Reads one line of a stream, taking nothing after it. An answer is waited for as long as it
/// takes: the far end bounds its own connect, and a dropped connection ends the wait.
async fn read_line(stream: &mut MuxStream, what: &str) -> Result<Vec<u8>, String> {
    let mut line = Line::new(MAX_LINE);
    line.read_from_async(&mut *stream).await.map_err(|e| match e {
        LineError::TooLong { max, .. } => format!("a {what} longer than {max} bytes"),
        LineError::Closed => format!("the stream ended before its {what}"),
        LineError::Io(e) => format!("{what}: {e}"),
    })?;
    Ok(line.bytes().to_vec())
}

/// Sends `request` on `stream` and waits for the answer: the stream is ready for its bytes
/// on `OK`; the peer's reason otherwise.
async fn ask(stream: &mut MuxStream, request: &Request) -> Result<(), String> {
    send(stream, request.line()).await.map_err(|e| format!("cannot send {}: {e}", request.line()))?;
    match Answer::parse(&read_line(stream, "answer").await?)? {
        Answer::Ok => Ok(()),
        Answer::Err(why) => Err(why),
    }
}

/// Answers a request (`ERR` ends the stream).
async fn answer(stream: &mut MuxStream, answer: Answer) {
    let refused = answer != Answer::Ok;
    let _ = send(stream, answer.line()).await;
    if refused {
        let _ = stream.shutdown().await;
    }
}

/// Joins a forwarded connection `a` (the side that was accepted) to `b` (its target) until
/// both are done, counting and logging it; cut (both reset) once `cut` turns true.
async fn carry(label: &str, a: Conn, b: Conn, summary: &Summary, cut: watch::Receiver<bool>) {
    let start = tracing::enabled!(tracing::Level::INFO).then(Instant::now);
    summary.streams.fetch_add(1, Ordering::Relaxed);
    info!("{label}: open");
    let counters = Counters::default();
    let options = Options { idle: None, stop_when_b_ends: false, stop: Some(cut.clone()) };
    let end = join(a, b, options, &counters).await;
    let (sent, back) = (counters.a_to_b.load(Ordering::Relaxed), counters.b_to_a.load(Ordering::Relaxed));
    summary.bytes.a_to_b.fetch_add(sent, Ordering::Relaxed);
    summary.bytes.b_to_a.fetch_add(back, Ordering::Relaxed);
    let took = start.map_or(0.0, |t| t.elapsed().as_secs_f64());
    let failure = match end {
        End::Clean | End::PeerDone => None,
        End::Error(e) => Some(e),
        End::Idle => Some("idle".to_string()),
    };
    match failure {
        None => info!("{label}: closed, {sent} bytes ->, {back} bytes <-, {took:.3} s"),
        Some(e) if !*cut.borrow() => {
            summary.failed.fetch_add(1, Ordering::Relaxed);
            warn!("{label}: {e}; reset the other side after {sent} bytes ->, {back} bytes <-");
        }
        Some(_) => warn!("{label}: cut by the stop after {sent} bytes ->, {back} bytes <-"),
    }
}

/// Closes a connection that will not be joined as a reset: its peer sees what we saw.
fn reset(conn: Conn) {
    if let Some(s) = &conn.socket {
        let _ = s.sock().set_linger(Some(Duration::ZERO));
    }
}

// Unix sockets carry the tests' connections.
#[cfg(all(test, unix))]
mod tests;
