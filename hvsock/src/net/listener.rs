use std::io;

use socket2::{Socket, Type};

use super::{from_sockaddr, to_sockaddr};
use crate::{Role, SocketAddr, Stream, ToSocketAddr};

/// A socket that accepts VM connections: AF_VSOCK on Linux, AF_HYPERV on Windows.
///
/// ```no_run
/// use std::io::{Read, Write};
/// use hvsock::Listener;
///
/// // Any VM (or this one) may connect to port 19000.
/// let listener = Listener::bind("vsock:any:19000")?;
/// for stream in listener.incoming() {
///     let mut stream = stream?;
///     let mut text = String::new();
///     stream.read_to_string(&mut text)?;
///     write!(stream, "Hello: {text}")?;
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Listener {
    pub(crate) inner: Socket,
}

impl Listener {
    /// Binds to `addr` (names map for the listening end: `any`, `children` are fine) and
    /// listens (backlog 1024, as tokio's listeners).
    pub fn bind<A: ToSocketAddr>(addr: A) -> io::Result<Listener> {
        let addr = addr.to_socket_addr(Role::Bind)?;
        let inner = crate::sys::socket(Type::STREAM)?;
        inner.bind(&to_sockaddr(&addr))?;
        inner.listen(super::BACKLOG)?;
        Ok(Listener { inner })
    }

    /// Takes over a listening vsock stream socket made elsewhere — one a service manager
    /// handed over ([`activation::take`](crate::activation::take)) — and refuses anything else,
    /// saying what it is (Linux).
    ///
    /// ```no_run
    /// let socket = hvsock::activation::take()?.pop().expect("started by systemd");
    /// let listener = hvsock::Listener::adopt(socket.fd)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(target_os = "linux")]
    pub fn adopt(fd: std::os::fd::OwnedFd) -> io::Result<Listener> {
        let inner = Socket::from(fd);
        crate::sys::check_listener(&inner, Type::STREAM)?;
        Ok(Listener { inner })
    }

    /// Waits for a connection; returns it with the peer's address.
    pub fn accept(&self) -> io::Result<(Stream, SocketAddr)> {
        let (inner, addr) = self.inner.accept()?;
        Ok((Stream { inner }, from_sockaddr(&addr)?))
    }

    /// An endless iterator over accepted connections.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The address this listener is bound to (with the port the kernel chose, if any).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        from_sockaddr(&self.inner.local_addr()?)
    }

    /// Makes `accept` return `WouldBlock` instead of waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.set_nonblocking(nonblocking)
    }

    /// Another handle to the same socket.
    pub fn try_clone(&self) -> io::Result<Listener> {
        Ok(Listener { inner: self.inner.try_clone()? })
    }

    /// Takes the pending error off the socket (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }
}

/// The iterator of [`Listener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a Listener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<Stream>;
    fn next(&mut self) -> Option<io::Result<Stream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}
