//! One connection carrying many streams, each with its own flow control (yamux): a task
//! drives the connection, hands out the streams we open and passes on those the peer opens.
//!
//! Why yamux: it is the multiplexer of libp2p, well kept and used at scale; every stream has
//! its own window (a stream whose reader stops holds up only itself), half-closes (FIN) and
//! resets (RST) per stream; it needs nothing of the transport but a byte stream, so it runs
//! over vsock, Hyper-V sockets, hybrid vsock and TCP alike. (h2 would bring HTTP/2's framing
//! and headers for nothing; QUIC needs datagrams.)

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};

use super::outbox::Outbox;
use crate::conn::{Conn, Reader};

/// The most one read of a stream takes: the largest frame we send.
const READ_AT_MOST: usize = 256 << 10;

/// Streams one connection carries at once, at most: far past the 1,000 a crowd test makes.
pub const MAX_STREAMS: usize = 8192;

/// Which end of the connection we are (yamux numbers the streams each end opens apart).
pub use yamux::Mode;

type Opened = oneshot::Sender<io::Result<yamux::Stream>>;

/// Opens streams on a running connection; cheap to clone.
#[derive(Clone)]
pub struct Mux {
    open: mpsc::UnboundedSender<Opened>,
}

impl Mux {
    /// Starts driving `conn` (on the current runtime): the streams the peer opens arrive on the
    /// receiver, and the [`Driver`] resolves, with the reason, when the connection ends.
    /// Dropping the driver ends the connection (every stream then reads a reset).
    pub fn start(conn: Conn, mode: Mode) -> (Mux, mpsc::UnboundedReceiver<yamux::Stream>, Driver) {
        let mut config = yamux::Config::default();
        config.set_max_connection_receive_window(Some(MAX_STREAMS * yamux::DEFAULT_CREDIT as usize));
        config.set_max_num_streams(MAX_STREAMS);
        // Fewer, larger frames: a system call each way per frame is the cost that counts.
        config.set_split_send_size(READ_AT_MOST);
        let io = Duplex {
            reader: BufReader::with_capacity(128 << 10, conn.reader),
            writer: Outbox::new(conn.writer),
        };
        let connection = yamux::Connection::new(io.compat(), config, mode);
        let (open, requests) = mpsc::unbounded_channel();
        let (inbound, streams) = mpsc::unbounded_channel();
        let task = tokio::spawn(drive(connection, requests, inbound));
        (Mux { open }, streams, Driver(task))
    }

    /// A new stream to the peer (it gets it at once; nothing waits for the peer's answer).
    pub async fn open(&self) -> io::Result<yamux::Stream> {
        let (tx, rx) = oneshot::channel();
        let gone = || io::Error::new(io::ErrorKind::NotConnected, "the forward connection is down");
        self.open.send(tx).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.open.is_closed()
    }
}

/// The task that drives a connection: resolves, with the reason, when the connection ends;
/// dropped, it ends the connection.
pub struct Driver(tokio::task::JoinHandle<String>);

impl std::future::Future for Driver {
    type Output = String;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<String> {
        Pin::new(&mut self.0).poll(cx).map(|r| r.unwrap_or_else(|e| e.to_string()))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn drive(
    mut conn: yamux::Connection<Compat<Duplex>>,
    mut requests: mpsc::UnboundedReceiver<Opened>,
    inbound: mpsc::UnboundedSender<yamux::Stream>,
) -> String {
    let mut waiting: Option<Opened> = None;
    poll_fn(|cx| {
        // Streams asked for, one at a time: yamux holds one back while 256 wait for the
        // peer's acknowledgement.
        loop {
            if waiting.is_none() {
                match requests.poll_recv(cx) {
                    Poll::Ready(Some(asked)) => waiting = Some(asked),
                    Poll::Ready(None) | Poll::Pending => break,
                }
            }
            match conn.poll_new_outbound(cx) {
                Poll::Ready(Ok(stream)) => {
                    let _ = waiting.take().expect("asked").send(Ok(stream));
                }
                Poll::Ready(Err(e)) => {
                    let _ = waiting.take().expect("asked").send(Err(io::Error::other(e.to_string())));
                    return Poll::Ready(e.to_string());
                }
                Poll::Pending => break,
            }
        }
        // What the peer sends (this also moves every stream's frames).
        loop {
            match conn.poll_next_inbound(cx) {
                Poll::Ready(Some(Ok(stream))) => {
                    // Nobody to take it (we are stopping): dropped, which resets it.
                    let _ = inbound.send(stream);
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(e.to_string()),
                Poll::Ready(None) => return Poll::Ready("the peer closed the connection".into()),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await
}

/// A connection's two halves as the one object yamux drives.
struct Duplex {
    reader: BufReader<Reader>,
    writer: Outbox,
}

impl AsyncRead for Duplex {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.reader).poll_read(cx, buf)
    }
}

impl AsyncWrite for Duplex {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.writer).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.writer).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.writer).poll_shutdown(cx)
    }
}

/// A stream as tokio reads and writes it. A stream the peer reset (or that its connection
/// dropped) reads as a reset, not as the end of its data: yamux says only end-of-file, and
/// the stream being closed while we never closed our side is what tells them apart.
pub struct MuxStream {
    inner: Compat<yamux::Stream>,
    closed_ours: bool,
}

impl MuxStream {
    /// Wraps a stream.
    pub fn new(stream: yamux::Stream) -> MuxStream {
        MuxStream { inner: stream.compat(), closed_ours: false }
    }
}

impl AsyncRead for MuxStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // yamux reads into initialised memory: a reader's spare capacity (the engine's copy
        // reads into up to 1 MiB of it) would be zeroed whole at each read, for a frame's
        // worth of data at most. Only a frame's size is.
        let want = buf.remaining().min(READ_AT_MOST);
        let into = buf.initialize_unfilled_to(want);
        let read =
            std::task::ready!(futures_io::AsyncRead::poll_read(Pin::new(self.inner.get_mut()), cx, into));
        match read {
            Ok(0) if want > 0 && self.inner.get_ref().is_closed() && !self.closed_ours => {
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "the stream was reset (by the far end, or its connection dropped)",
                )))
            }
            Ok(n) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for MuxStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf).map_err(reset_if_closed)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx).map_err(reset_if_closed)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let done = std::task::ready!(Pin::new(&mut self.inner).poll_shutdown(cx));
        self.closed_ours = true;
        Poll::Ready(done.map_err(reset_if_closed))
    }
}

/// yamux's "connection is closed" on a write to a reset stream, as the socket error it is.
fn reset_if_closed(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::WriteZero => io::Error::new(io::ErrorKind::ConnectionReset, e.to_string()),
        _ => e,
    }
}

/// A stream as one connection the engine joins: no socket of its own (a reset is the stream
/// dropped before its close, which yamux sends as RST).
pub fn conn(stream: MuxStream, peer: String) -> Conn {
    let (reader, writer) = tokio::io::split(stream);
    Conn {
        reader: Box::new(reader),
        writer: Box::new(writer),
        socket: None,
        probed: false,
        peer,
        origin: crate::peers::Peer::Unknown,
        half_close: crate::conn::HalfCloseMode::Now,
        messages: None,
        splice: None,
        kind: crate::conn::Kind::Socket,
        unread: None,
    }
}
