use std::future::poll_fn;
use std::io;

use socket2::Type;
use tokio::io::Interest;

use super::reactor::AsyncSocket;
use super::AsyncStream;
use crate::net::{from_sockaddr, to_sockaddr};
use crate::{Listener, Role, SocketAddr, ToSocketAddr};

/// A VM-socket listener for tokio.
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// use hvsock::tokio::AsyncListener;
/// use tokio::io::AsyncWriteExt;
///
/// let listener = AsyncListener::bind("vsock:any:19000").await?;
/// loop {
///     let (mut stream, peer) = listener.accept().await?;
///     tokio::spawn(async move { stream.write_all(b"hello\n").await });
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct AsyncListener {
    pub(crate) io: AsyncSocket,
}

impl AsyncListener {
    /// Binds and listens, like [`Listener::bind`]; must be called inside a tokio runtime.
    pub async fn bind<A: ToSocketAddr>(addr: A) -> io::Result<AsyncListener> {
        let addr = addr.to_socket_addr(Role::Bind)?;
        let socket = crate::sys::async_socket(Type::STREAM)?;
        socket.bind(&to_sockaddr(&addr))?;
        socket.listen(crate::net::BACKLOG)?;
        Ok(AsyncListener { io: AsyncSocket::register(socket)? })
    }

    /// Waits for a connection.
    pub async fn accept(&self) -> io::Result<(AsyncStream, SocketAddr)> {
        let (socket, addr) =
            poll_fn(|cx| self.io.poll_io(cx, Interest::READABLE, crate::sys::accept_nonblocking)).await?;
        Ok((AsyncStream { io: AsyncSocket::register(socket)? }, from_sockaddr(&addr)?))
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        from_sockaddr(&self.io.socket().local_addr()?)
    }

    /// Takes over a blocking listener (inside a tokio runtime).
    pub fn from_std(listener: Listener) -> io::Result<AsyncListener> {
        Ok(AsyncListener { io: AsyncSocket::new(listener.inner)? })
    }

    /// Back to a blocking listener.
    pub fn into_std(self) -> io::Result<Listener> {
        let inner = self.io.into_socket()?;
        inner.set_nonblocking(false)?;
        Ok(Listener { inner })
    }
}
