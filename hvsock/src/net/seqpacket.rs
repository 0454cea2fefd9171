//! vsock `SOCK_SEQPACKET` (Linux): connections that keep message boundaries.

use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::time::Duration;

use socket2::{Socket, Type};

use super::{from_sockaddr, to_sockaddr};
use crate::{Connector, Role, SocketAddr, ToSocketAddr};

/// A connected vsock `SOCK_SEQPACKET` socket: reliable and ordered like a [`Stream`], and
/// every message sent arrives as one message, whole (Linux 5.14 and later; Hyper-V sockets
/// are stream only, so this type exists on Linux alone).
///
/// A message may be as large as the receiver's vsock buffer (`SO_VM_SOCKETS_BUFFER_SIZE`,
/// 256 KiB by default); a larger one fails with `EMSGSIZE` (which Linux 6.1 calls ENOMEM). Linux drops zero-length messages
/// (`send(&[])` returns 0 and nothing arrives).
///
/// ```no_run
/// use hvsock::Seqpacket;
///
/// let s = Seqpacket::connect("vsock:3:5000")?;
/// s.send(b"one")?;
/// s.send(b"two")?; // arrives as a second message, never as "onetwo"
/// let mut buf = [0u8; 4096];
/// let got = s.recv(&mut buf)?;
/// assert!(!got.is_truncated());
/// println!("{:?}", &buf[..got.bytes]);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// [`Stream`]: crate::Stream
#[derive(Debug)]
pub struct Seqpacket {
    pub(crate) inner: Socket,
}

/// What one [`Seqpacket::recv`] (or `peek`) took: one message, or its start when the buffer
/// was too small for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes of the message now at the start of the buffer.
    pub bytes: usize,
    /// The message's whole length: more than `bytes` when it did not fit, and the rest of it
    /// is gone (`MSG_TRUNC`). 0 with `bytes` 0 is the peer's end of data.
    pub len: usize,
}

impl Received {
    /// The message was longer than the buffer; only its first `bytes` were kept.
    pub fn is_truncated(&self) -> bool {
        self.len > self.bytes
    }

    /// From what recv(2) with `MSG_TRUNC` returns: the message's real length.
    pub(crate) fn from_len(len: usize, room: usize) -> Received {
        Received { bytes: len.min(room), len }
    }
}

/// recv(2) flags that make the kernel return a message's real length.
pub(crate) const RECV_TRUNC: libc::c_int = libc::MSG_TRUNC;

/// Linux 6.1 reports a message larger than the peer's buffer as ENOMEM (later kernels say
/// EMSGSIZE): said as what it is.
pub(crate) fn send_error(e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(libc::ENOMEM) {
        io::Error::from_raw_os_error(libc::EMSGSIZE)
    } else {
        e
    }
}

/// Linux 6.1 turns a seqpacket peek, which its virtio transport refuses, into ENOMEM.
pub(crate) fn peek_error(e: io::Error) -> io::Error {
    if e.raw_os_error() != Some(libc::ENOMEM) {
        return e;
    }
    io::Error::new(
        io::ErrorKind::Unsupported,
        "this kernel cannot peek at vsock SEQPACKET messages (Linux 6.1 cannot; newer kernels can)",
    )
}

impl Seqpacket {
    /// Connects to `addr`, waiting as long as the kernel does by default (2 s).
    /// [`Connector::connect_seqpacket`] adds a timeout, retries and options.
    pub fn connect<A: ToSocketAddr>(addr: A) -> io::Result<Seqpacket> {
        Connector::new().connect_seqpacket(addr)
    }

    /// Connects, giving up after `timeout` with `TimedOut`.
    pub fn connect_timeout<A: ToSocketAddr>(addr: A, timeout: Duration) -> io::Result<Seqpacket> {
        Connector::new().timeout(timeout).connect_seqpacket(addr)
    }

    /// Sends `msg` as one message, waiting for the peer's room as long as the write timeout
    /// allows. Returns `msg.len()`.
    ///
    /// A send that fails part way (a write timeout, a signal) may have sent the message's
    /// start, which the peer will join to the next message: Linux reports such a send as a
    /// plain error. Close the connection after a failed send.
    pub fn send(&self, msg: &[u8]) -> io::Result<usize> {
        self.inner.send_with_flags(msg, libc::MSG_NOSIGNAL).map_err(send_error)
    }

    /// Sends the slices, joined, as one message.
    pub fn send_vectored(&self, msg: &[IoSlice<'_>]) -> io::Result<usize> {
        self.inner.send_vectored_with_flags(msg, libc::MSG_NOSIGNAL).map_err(send_error)
    }

    /// Receives one message into `buf`. A message longer than `buf` is cut to fit (the rest is
    /// gone): [`Received::is_truncated`] says so, and [`Received::len`] is its real length.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        let room = buf.len();
        Ok(Received::from_len(crate::recv::recv_with_flags(&self.inner, buf, RECV_TRUNC)?, room))
    }

    /// Looks at the next message without taking it (`MSG_PEEK`): a later `recv` returns it.
    /// Kernels that cannot peek at vsock messages (Linux 6.1 cannot) fail with `Unsupported`.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<Received> {
        let room = buf.len();
        let len = crate::recv::recv_with_flags(&self.inner, buf, RECV_TRUNC | libc::MSG_PEEK)
            .map_err(peek_error)?;
        Ok(Received::from_len(len, room))
    }

    /// The address of the other end.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        from_sockaddr(&self.inner.peer_addr()?)
    }

    /// This end's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        from_sockaddr(&self.inner.local_addr()?)
    }

    /// Ends sending (the peer's `recv` then returns end of data), receiving, or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// How long a `recv` may wait; `None` = forever.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.set_read_timeout(timeout)
    }

    /// How long a `send` may wait for the peer's room; `None` = forever. (See
    /// [`Seqpacket::send`] on what a timed-out send leaves.)
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.set_write_timeout(timeout)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        self.inner.read_timeout()
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        self.inner.write_timeout()
    }

    /// Makes `send` and `recv` return `WouldBlock` instead of waiting. A non-blocking send of
    /// a message larger than the peer's free room may send part of it and fail: see
    /// [`Seqpacket::send`].
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.set_nonblocking(nonblocking)
    }

    /// Another handle to the same connection.
    pub fn try_clone(&self) -> io::Result<Seqpacket> {
        Ok(Seqpacket { inner: self.inner.try_clone()? })
    }

    /// Takes the pending error off the socket (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }
}

/// A vsock `SOCK_SEQPACKET` listener (Linux): accepts [`Seqpacket`] connections.
///
/// ```no_run
/// use hvsock::SeqpacketListener;
///
/// let listener = SeqpacketListener::bind("vsock:any:5000")?;
/// let (conn, peer) = listener.accept()?;
/// let mut buf = vec![0u8; 256 * 1024]; // room for the largest message vsock carries by default
/// while let Ok(m) = conn.recv(&mut buf) {
///     if m.len == 0 {
///         break; // the peer is done
///     }
///     conn.send(&buf[..m.bytes])?; // echo, message for message
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct SeqpacketListener {
    pub(crate) inner: Socket,
}

impl SeqpacketListener {
    /// Binds to `addr` (`any`, `children` and the other names work) and listens.
    pub fn bind<A: ToSocketAddr>(addr: A) -> io::Result<SeqpacketListener> {
        let addr = addr.to_socket_addr(Role::Bind)?;
        let inner = crate::sys::socket(Type::SEQPACKET)?;
        inner.bind(&to_sockaddr(&addr))?;
        inner.listen(crate::net::BACKLOG)?;
        Ok(SeqpacketListener { inner })
    }

    /// Takes over a listening vsock seqpacket socket a service manager handed over (see
    /// [`Listener::adopt`](crate::Listener::adopt)); anything else is refused.
    pub fn adopt(fd: std::os::fd::OwnedFd) -> io::Result<SeqpacketListener> {
        let inner = Socket::from(fd);
        crate::sys::check_listener(&inner, Type::SEQPACKET)?;
        Ok(SeqpacketListener { inner })
    }

    /// Waits for a connection; returns it with the peer's address.
    pub fn accept(&self) -> io::Result<(Seqpacket, SocketAddr)> {
        let (inner, addr) = self.inner.accept()?;
        Ok((Seqpacket { inner }, from_sockaddr(&addr)?))
    }

    /// An endless iterator over accepted connections.
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<Seqpacket>> + '_ {
        std::iter::repeat_with(|| self.accept().map(|(s, _)| s))
    }

    /// The address this listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        from_sockaddr(&self.inner.local_addr()?)
    }

    /// Makes `accept` return `WouldBlock` instead of waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.set_nonblocking(nonblocking)
    }

    /// Another handle to the same socket.
    pub fn try_clone(&self) -> io::Result<SeqpacketListener> {
        Ok(SeqpacketListener { inner: self.inner.try_clone()? })
    }

    /// Takes the pending error off the socket (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }
}

impl Connector {
    /// [`Connector::connect`] for a [`Seqpacket`] connection: the same timeout, retries and
    /// options.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// let s = hvsock::Connector::new().timeout(Duration::from_secs(5)).retries(3).connect_seqpacket("vsock:3:5000")?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect_seqpacket<A: ToSocketAddr>(&self, addr: A) -> io::Result<Seqpacket> {
        let addr = to_sockaddr(&addr.to_socket_addr(Role::Connect)?);
        self.retry(|| {
            // The kernel times the connect out (`configure` gave it our timeout).
            let inner = self.configure(crate::sys::socket(Type::SEQPACKET)?)?;
            inner.connect(&addr)?;
            Ok(Seqpacket { inner })
        })
    }
}
