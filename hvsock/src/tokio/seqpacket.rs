//! vsock `SOCK_SEQPACKET` for tokio (Linux).

use std::future::poll_fn;
use std::io;
use std::net::Shutdown;
use std::sync::Arc;
use std::task::{Context, Poll};

use socket2::Type;
use tokio::io::Interest;

use super::reactor::AsyncSocket;
use crate::net::{from_sockaddr, peek_error, send_error, to_sockaddr, RECV_TRUNC};
use crate::{Received, Role, Seqpacket, SeqpacketListener, SocketAddr, ToSocketAddr};

/// A connected vsock `SOCK_SEQPACKET` socket for tokio: every [`send`](Self::send) arrives as
/// one [`recv`](Self::recv), whole (see [`Seqpacket`] for sizes and zero-length messages).
///
/// Receiving waits in the reactor like any tokio socket. Sending runs on tokio's blocking
/// pool: when a message is larger than the peer's free room, Linux sends a non-blocking
/// seqpacket message in part and then fails with `EAGAIN` without saying how much went, so
/// no non-blocking send can be retried safely; a blocking one waits in the kernel until the
/// whole message is out. A send whose future is dropped may still deliver its message.
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// use hvsock::tokio::AsyncSeqpacket;
///
/// let s = AsyncSeqpacket::connect("vsock:3:5000").await?;
/// s.send(b"ping").await?;
/// let mut buf = [0u8; 1024];
/// let got = s.recv(&mut buf).await?;
/// assert_eq!(&buf[..got.bytes], b"pong");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AsyncSeqpacket {
    /// Shared with the blocking pool's sends. The descriptor stays in blocking mode (those
    /// sends must wait in the kernel); everything done here passes `MSG_DONTWAIT`.
    pub(crate) io: Arc<AsyncSocket>,
}

impl AsyncSeqpacket {
    /// Connects without blocking a thread (the kernel's own connect timeout, 2 s by default,
    /// applies; [`Connector::connect_seqpacket_async`](crate::Connector::connect_seqpacket_async)
    /// sets another, with retries).
    pub async fn connect<A: ToSocketAddr>(addr: A) -> io::Result<AsyncSeqpacket> {
        AsyncSeqpacket::connect_socket(crate::sys::async_socket(Type::SEQPACKET)?, addr).await
    }

    async fn connect_socket<A: ToSocketAddr>(socket: socket2::Socket, addr: A) -> io::Result<AsyncSeqpacket> {
        let addr = to_sockaddr(&addr.to_socket_addr(Role::Connect)?);
        let pending = match socket.connect(&addr) {
            Ok(()) => false,
            Err(e) if super::reactor::connect_in_progress(&e) => true,
            Err(e) => return Err(e),
        };
        let io = AsyncSocket::register(socket)?;
        if pending {
            poll_fn(|cx| {
                io.poll_io(cx, Interest::WRITABLE, |s| match s.take_error()? {
                    Some(e) => Err(e),
                    None => Ok(()),
                })
            })
            .await?;
        }
        io.socket().set_nonblocking(false)?;
        Ok(AsyncSeqpacket { io: Arc::new(io) })
    }

    /// Takes over a blocking connection (inside a tokio runtime).
    pub fn from_std(conn: Seqpacket) -> io::Result<AsyncSeqpacket> {
        conn.inner.set_nonblocking(false)?;
        Ok(AsyncSeqpacket { io: Arc::new(AsyncSocket::register(conn.inner)?) })
    }

    /// Sends `msg` as one message (on the blocking pool: see above). Returns `msg.len()`.
    pub async fn send(&self, msg: &[u8]) -> io::Result<usize> {
        let (io, msg) = (self.io.clone(), msg.to_vec());
        tokio::task::spawn_blocking(move || {
            io.socket().send_with_flags(&msg, libc::MSG_NOSIGNAL).map_err(send_error)
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Receives one message; a longer one than `buf` is cut to fit ([`Received`] says so).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        poll_fn(|cx| self.poll_recv(cx, buf)).await
    }

    /// Looks at the next message without taking it (`Unsupported` where the kernel cannot:
    /// see [`Seqpacket::peek`]).
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<Received> {
        let room = buf.len();
        let flags = RECV_TRUNC | libc::MSG_PEEK | libc::MSG_DONTWAIT;
        let len = poll_fn(|cx| {
            self.io.poll_io(cx, Interest::READABLE, |s| crate::recv::recv_with_flags(s, buf, flags))
        })
        .await
        .map_err(peek_error)?;
        Ok(Received::from_len(len, room))
    }

    /// [`recv`](Self::recv) as a poll function, for hand-written futures and adapters.
    pub fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<Received>> {
        let room = buf.len();
        let flags = RECV_TRUNC | libc::MSG_DONTWAIT;
        let len = std::task::ready!(self
            .io
            .poll_io(cx, Interest::READABLE, |s| crate::recv::recv_with_flags(s, buf, flags)))?;
        Poll::Ready(Ok(Received::from_len(len, room)))
    }

    /// [`poll_recv`](Self::poll_recv) into a tokio `ReadBuf` (its unfilled part need not be
    /// initialised): one message, as much of it as fits; the `Received` says how long it was.
    pub fn poll_recv_buf(
        &self,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<Received>> {
        let room = buf.remaining();
        let flags = RECV_TRUNC | libc::MSG_DONTWAIT;
        // SAFETY: recv writes only into the unfilled part, and we mark as filled only what it
        // wrote.
        let unfilled = unsafe { buf.unfilled_mut() };
        let len = std::task::ready!(self
            .io
            .poll_io(cx, Interest::READABLE, |s| s.recv_with_flags(unfilled, flags)))?;
        let got = Received::from_len(len, room);
        // SAFETY: the first `got.bytes` bytes of the unfilled part were just written.
        unsafe { buf.assume_init(got.bytes) };
        buf.advance(got.bytes);
        Poll::Ready(Ok(got))
    }

    /// A vsock buffer size of this connection (its `Size` bounds the messages it receives).
    pub fn buffer_size(&self, which: crate::BufferSize) -> io::Result<u64> {
        crate::sys::buffer_size(self.io.socket(), which)
    }

    /// Ends sending (the peer receives end of data), receiving, or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self.io.socket().shutdown(how) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            r => r,
        }
    }

    /// The other end's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        from_sockaddr(&self.io.socket().peer_addr()?)
    }

    /// This end's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        from_sockaddr(&self.io.socket().local_addr()?)
    }

    /// Makes the next close send a reset instead of an orderly end (`SO_LINGER` 0).
    pub fn set_reset_on_close(&self) -> io::Result<()> {
        self.io.socket().set_linger(Some(std::time::Duration::ZERO))
    }

    /// The socket, for options (`socket2::SockRef::from(&conn)` works too).
    pub fn socket(&self) -> &socket2::Socket {
        self.io.socket()
    }
}

/// A vsock `SOCK_SEQPACKET` listener for tokio (Linux).
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// use hvsock::tokio::AsyncSeqpacketListener;
///
/// let listener = AsyncSeqpacketListener::bind("vsock:any:5000").await?;
/// let (conn, _peer) = listener.accept().await?;
/// let mut buf = vec![0u8; 256 * 1024];
/// let m = conn.recv(&mut buf).await?;
/// conn.send(&buf[..m.bytes]).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AsyncSeqpacketListener {
    pub(crate) io: AsyncSocket,
}

impl AsyncSeqpacketListener {
    /// Binds and listens; must be called inside a tokio runtime.
    pub async fn bind<A: ToSocketAddr>(addr: A) -> io::Result<AsyncSeqpacketListener> {
        let addr = addr.to_socket_addr(Role::Bind)?;
        let socket = crate::sys::async_socket(Type::SEQPACKET)?;
        socket.bind(&to_sockaddr(&addr))?;
        socket.listen(crate::net::BACKLOG)?;
        Ok(AsyncSeqpacketListener { io: AsyncSocket::register(socket)? })
    }

    /// Waits for a connection.
    pub async fn accept(&self) -> io::Result<(AsyncSeqpacket, SocketAddr)> {
        // Accepted in blocking mode: see `AsyncSeqpacket::io`.
        let (socket, addr) = poll_fn(|cx| self.io.poll_io(cx, Interest::READABLE, |s| s.accept())).await?;
        Ok((AsyncSeqpacket { io: Arc::new(AsyncSocket::register(socket)?) }, from_sockaddr(&addr)?))
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        from_sockaddr(&self.io.socket().local_addr()?)
    }

    /// Takes over a blocking listener (inside a tokio runtime).
    pub fn from_std(listener: SeqpacketListener) -> io::Result<AsyncSeqpacketListener> {
        Ok(AsyncSeqpacketListener { io: AsyncSocket::new(listener.inner)? })
    }

    /// The socket, for options.
    pub fn socket(&self) -> &socket2::Socket {
        self.io.socket()
    }
}

impl crate::Connector {
    /// [`Connector::connect_seqpacket`](crate::Connector::connect_seqpacket) without blocking
    /// a thread: the same timeout (the kernel's), retries and options.
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let s = hvsock::Connector::new().retries(5).connect_seqpacket_async("vsock:3:5000").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_seqpacket_async<A: ToSocketAddr + Clone>(
        &self,
        addr: A,
    ) -> io::Result<AsyncSeqpacket> {
        self.retry_async(|| async {
            let socket = self.configure(crate::sys::async_socket(Type::SEQPACKET)?)?;
            AsyncSeqpacket::connect_socket(socket, addr.clone()).await
        })
        .await
    }
}
