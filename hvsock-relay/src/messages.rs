//! Message (SOCK_SEQPACKET) connections as a connection's two halves: each read is one whole
//! message and each write sends one, so the copying in `splice` keeps boundaries as it is.
//! Also the line framing that maps standard input and output to messages (`--lines`).

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::conn::{Reader, Writer};

/// The largest message a Unix SOCK_SEQPACKET end takes here: a larger one fails the connection
/// (it is never cut short in silence).
pub const UNIX_MESSAGE_MAX: usize = 1 << 20;

/// A message connection of either kind.
#[derive(Clone)]
pub enum MsgSocket {
    /// vsock SOCK_SEQPACKET (sends go through the library's blocking pool).
    #[cfg(target_os = "linux")]
    Vsock(Arc<hvsock::tokio::AsyncSeqpacket>),
    /// A Unix SOCK_SEQPACKET socket (hybrid-seqpacket:, unix-seqpacket:), non-blocking: its
    /// sends take a whole message or nothing.
    Unix(Arc<AsyncFd<socket2::Socket>>),
}

impl MsgSocket {
    /// A connected Unix SOCK_SEQPACKET socket, made non-blocking.
    pub fn unix(socket: socket2::Socket) -> io::Result<MsgSocket> {
        socket.set_nonblocking(true)?;
        Ok(MsgSocket::Unix(Arc::new(register(socket)?)))
    }

    /// The largest message this end receives: for vsock its own buffer, which bounds what a
    /// peer may send; for Unix sockets [`UNIX_MESSAGE_MAX`].
    pub fn max_message(&self) -> usize {
        match self {
            #[cfg(target_os = "linux")]
            MsgSocket::Vsock(s) => s.buffer_size(hvsock::BufferSize::Size).map_or(256 << 10, |n| n as usize),
            MsgSocket::Unix(_) => UNIX_MESSAGE_MAX,
        }
    }

    /// Its reading and writing halves: one message per read and per write.
    pub fn halves(&self) -> (Reader, Writer) {
        (Box::new(MsgReader(self.clone())), Box::new(MsgWriter { socket: self.clone(), sending: None }))
    }
}

impl AsFd for MsgSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            #[cfg(target_os = "linux")]
            MsgSocket::Vsock(s) => s.as_fd(),
            MsgSocket::Unix(s) => s.get_ref().as_fd(),
        }
    }
}

/// A non-blocking socket in tokio's reactor.
pub fn register(socket: socket2::Socket) -> io::Result<AsyncFd<socket2::Socket>> {
    // SAFETY: the Socket owns its descriptor and keeps it open until the AsyncFd drops it,
    // deregistering first.
    unsafe { AsyncFd::register(socket) }.map_err(io::Error::from)
}

/// Reads one message per read; a message larger than the buffer offered is an error, not a
/// cut.
struct MsgReader(MsgSocket);

fn too_long(len: usize, room: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("a message of {len} bytes is larger than the {room} bytes this end takes; it was dropped"),
    )
}

impl AsyncRead for MsgReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let room = buf.remaining();
        match &self.0 {
            #[cfg(target_os = "linux")]
            MsgSocket::Vsock(s) => {
                let got = std::task::ready!(s.poll_recv_buf(cx, buf))?;
                if got.is_truncated() {
                    return Poll::Ready(Err(too_long(got.len, room)));
                }
            }
            MsgSocket::Unix(s) => loop {
                let mut guard = std::task::ready!(s.poll_read_ready(cx))?;
                // SAFETY: recv writes only into the unfilled part, and only what it wrote is
                // marked filled.
                let unfilled = unsafe { buf.unfilled_mut() };
                match guard.try_io(|fd| fd.get_ref().recv_with_flags(unfilled, libc::MSG_TRUNC)) {
                    Ok(r) => {
                        let len = r?;
                        if len > room {
                            return Poll::Ready(Err(too_long(len, room)));
                        }
                        // SAFETY: the first `len` bytes of the unfilled part were written.
                        unsafe { buf.assume_init(len) };
                        buf.advance(len);
                        break;
                    }
                    Err(_would_block) => continue,
                }
            },
        }
        Poll::Ready(Ok(()))
    }
}

type Sending = Pin<Box<dyn Future<Output = io::Result<usize>> + Send>>;

/// Sends each write as one message.
struct MsgWriter {
    socket: MsgSocket,
    /// A vsock send under way on the blocking pool, and its message's length.
    sending: Option<(usize, Sending)>,
}

impl AsyncWrite for MsgWriter {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        match self.socket.clone() {
            #[cfg(target_os = "linux")]
            MsgSocket::Vsock(s) => {
                // The caller offers the same bytes again until we say they went (write_all).
                let len = buf.len();
                let (_, sending) = self.sending.get_or_insert_with(|| {
                    let msg = buf.to_vec();
                    (len, Box::pin(async move { s.send(&msg).await }))
                });
                let r = std::task::ready!(sending.as_mut().poll(cx));
                let (len, _) = self.sending.take().expect("a send under way");
                Poll::Ready(r.map(|_| len))
            }
            MsgSocket::Unix(s) => loop {
                let mut guard = std::task::ready!(s.poll_write_ready(cx))?;
                match guard.try_io(|fd| fd.get_ref().send_with_flags(buf, libc::MSG_NOSIGNAL)) {
                    Ok(r) => return Poll::Ready(r),
                    Err(_would_block) => continue,
                }
            },
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(match socket2::SockRef::from(&self.socket).shutdown(std::net::Shutdown::Write) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            r => r,
        })
    }
}

/// A byte reader seen as messages of one line each, newline taken off. Empty lines are
/// dropped: a zero-length read is end of data, and vsock carries no empty messages anyway.
pub struct LineReader {
    inner: Reader,
    /// Bytes read and not yet handed out, from `start`.
    pending: Vec<u8>,
    start: usize,
    eof: bool,
}

impl LineReader {
    /// Lines read from `inner`, one message each.
    pub fn new(inner: Reader) -> LineReader {
        LineReader { inner, pending: Vec::with_capacity(64 << 10), start: 0, eof: false }
    }
}

impl AsyncRead for LineReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = &mut *self;
        loop {
            let rest = &me.pending[me.start..];
            let line_end = rest.iter().position(|&b| b == b'\n');
            let line = match line_end {
                Some(i) => Some((&rest[..i], i + 1)),
                None if me.eof && !rest.is_empty() => Some((rest, rest.len())),
                None => None,
            };
            if let Some((line, used)) = line {
                if line.len() > buf.remaining() {
                    return Poll::Ready(Err(too_long(line.len(), buf.remaining())));
                }
                buf.put_slice(line);
                me.start += used;
                if !line.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            if me.eof {
                return Poll::Ready(Ok(()));
            }
            if rest.len() > buf.remaining() {
                return Poll::Ready(Err(too_long(rest.len(), buf.remaining())));
            }
            // Keep only what is not handed out yet, then read more after it.
            me.pending.drain(..me.start);
            me.start = 0;
            if me.pending.capacity() - me.pending.len() < 4096 {
                me.pending.reserve(64 << 10);
            }
            let filled = me.pending.len();
            let spare = me.pending.capacity() - filled;
            me.pending.resize(filled + spare, 0);
            let mut more = ReadBuf::new(&mut me.pending[filled..]);
            let r = Pin::new(&mut me.inner).poll_read(cx, &mut more);
            let n = more.filled().len();
            me.pending.truncate(filled + n);
            std::task::ready!(r)?;
            if n == 0 {
                me.eof = true;
            }
        }
    }
}

/// A byte writer that ends every message with a newline.
pub struct LineWriter {
    inner: Writer,
    /// The line being written (message and newline), and how much of it has gone.
    line: Vec<u8>,
    sent: usize,
}

impl LineWriter {
    /// Messages written to `inner`, one line each.
    pub fn new(inner: Writer) -> LineWriter {
        LineWriter { inner, line: Vec::new(), sent: 0 }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let me = &mut *self;
        if me.line.is_empty() {
            me.line.extend_from_slice(buf);
            me.line.push(b'\n');
            me.sent = 0;
        }
        while me.sent < me.line.len() {
            let n = std::task::ready!(Pin::new(&mut me.inner).poll_write(cx, &me.line[me.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            me.sent += n;
        }
        let len = me.line.len() - 1;
        me.line.clear();
        Poll::Ready(Ok(len))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Lines become messages without their newlines, empty ones dropped, a last line without a
    /// newline kept; and messages become lines again.
    #[tokio::test]
    async fn lines_to_messages_and_back() {
        let input: &[u8] = b"one\n\ntwo three\nlast";
        let mut r = LineReader::new(Box::new(input));
        let mut got = Vec::new();
        loop {
            let mut buf = vec![0u8; 64];
            let n = r.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.push(String::from_utf8(buf[..n].to_vec()).unwrap());
        }
        assert_eq!(got, ["one", "two three", "last"]);

        let long: &[u8] = b"0123456789\n";
        let e = LineReader::new(Box::new(long)).read(&mut [0u8; 4]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");

        let (theirs, mut ours) = tokio::io::duplex(64);
        let mut w = LineWriter::new(Box::new(theirs));
        w.write_all(b"first").await.unwrap();
        w.write_all(b"second").await.unwrap();
        drop(w);
        let mut out = Vec::new();
        ours.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"first\nsecond\n");
    }
}
