use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use socket2::{Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

use super::reactor::AsyncSocket;
use crate::net::{from_sockaddr, to_sockaddr};
use crate::{Role, SocketAddr, Stream, ToSocketAddr};

/// A connected VM socket for tokio: `AsyncRead` + `AsyncWrite`.
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// use hvsock::tokio::AsyncStream;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let mut s = AsyncStream::connect("hv:parent:19000").await?;
/// s.write_all(b"World!").await?;
/// s.shutdown().await?; // half-close: the peer reads end-of-file
/// let mut answer = String::new();
/// s.read_to_string(&mut answer).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AsyncStream {
    pub(crate) io: AsyncSocket,
}

impl AsyncStream {
    /// Connects without blocking a thread: starts the connect, waits until the socket is
    /// writable, then takes `SO_ERROR` for the outcome. Wrap it in `tokio::time::timeout` to
    /// bound it (the kernel's own vsock connect timeout is 2 s).
    pub async fn connect<A: ToSocketAddr>(addr: A) -> io::Result<AsyncStream> {
        AsyncStream::connect_socket(crate::sys::async_socket(Type::STREAM)?, addr).await
    }

    /// Connects a non-blocking socket. It is registered with the reactor only once its
    /// connect has started: an unconnected vsock socket polls as writable, which would look
    /// like a finished connect.
    async fn connect_socket<A: ToSocketAddr>(socket: Socket, addr: A) -> io::Result<AsyncStream> {
        let addr = to_sockaddr(&addr.to_socket_addr(Role::Connect)?);
        let pending = match socket.connect(&addr) {
            Ok(()) => false,
            Err(e) if super::reactor::connect_in_progress(&e) => true,
            Err(e) => return Err(e),
        };
        let stream = AsyncStream { io: AsyncSocket::register(socket)? };
        if pending {
            // Writable now means connected, or failed with the reason in SO_ERROR.
            poll_fn(|cx| {
                stream.io.poll_io(cx, Interest::WRITABLE, |s| match s.take_error()? {
                    Some(e) => Err(e),
                    None => Ok(()),
                })
            })
            .await?;
        }
        Ok(stream)
    }

    pub(crate) fn from_socket(socket: Socket) -> io::Result<AsyncStream> {
        Ok(AsyncStream { io: AsyncSocket::new(socket)? })
    }

    /// Takes over a blocking stream (inside a tokio runtime).
    pub fn from_std(stream: Stream) -> io::Result<AsyncStream> {
        AsyncStream::from_socket(stream.inner)
    }

    /// Back to a blocking stream.
    pub fn into_std(self) -> io::Result<Stream> {
        let inner = self.io.into_socket()?;
        inner.set_nonblocking(false)?;
        Ok(Stream { inner })
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

    /// Runs `f`, a system call of your own on this socket (splice(2), sendmsg with ancillary
    /// data, …), once the socket is ready for `interest`, and again each time `f` says
    /// `WouldBlock` (which clears that readiness): as tokio's `TcpStream::async_io`. `f` must
    /// leave the socket non-blocking.
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// use hvsock::tokio::AsyncStream;
    /// use std::mem::MaybeUninit;
    /// use tokio::io::Interest;
    ///
    /// let s = AsyncStream::connect("vsock:host:5000").await?;
    /// // Wait for data and look at the first byte without taking it.
    /// let mut first = [MaybeUninit::<u8>::uninit(); 1];
    /// let n = s.async_io(Interest::READABLE, || socket2::SockRef::from(&s).peek(&mut first)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn async_io<R>(
        &self,
        interest: Interest,
        mut f: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        poll_fn(|cx| self.io.poll_io(cx, interest, |_| f())).await
    }

    /// Borrowed halves, for reading and writing from one task.
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        (ReadHalf(self), WriteHalf(self))
    }

    /// Owned halves, for reading and writing from two tasks. Dropping the write half
    /// half-closes the connection, as tokio's `TcpStream` halves do.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        let shared = Arc::new(self);
        (OwnedReadHalf(shared.clone()), OwnedWriteHalf { stream: shared, shutdown_on_drop: true })
    }

    fn poll_read_priv(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        // SAFETY: recv only writes into the unfilled part, and we mark as filled what it wrote.
        let unfilled = unsafe { &mut *(buf.unfilled_mut() as *mut [MaybeUninit<u8>]) };
        let offered = unfilled.len();
        let n = std::task::ready!(self.io.poll_rw(cx, Interest::READABLE, offered, |s| s.recv(unfilled)))?;
        // SAFETY: recv initialised the first n bytes.
        unsafe { buf.assume_init(n) };
        buf.advance(n);
        Poll::Ready(Ok(()))
    }

    fn poll_write_priv(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.io.poll_rw(cx, Interest::WRITABLE, buf.len(), |s| s.send(buf))
    }

    fn poll_write_vectored_priv(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let offered = bufs.iter().map(|b| b.len()).sum();
        self.io.poll_rw(cx, Interest::WRITABLE, offered, |s| s.send_vectored(bufs))
    }

    fn shutdown_write(&self) -> io::Result<()> {
        match self.io.socket().shutdown(Shutdown::Write) {
            // Already gone is as shut down as it gets.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            r => r,
        }
    }
}

/// The read half of [`AsyncStream::split`].
#[derive(Debug)]
pub struct ReadHalf<'a>(&'a AsyncStream);
/// The write half of [`AsyncStream::split`].
#[derive(Debug)]
pub struct WriteHalf<'a>(&'a AsyncStream);
/// The read half of [`AsyncStream::into_split`].
#[derive(Debug)]
pub struct OwnedReadHalf(Arc<AsyncStream>);
/// The write half of [`AsyncStream::into_split`]; dropping it half-closes.
#[derive(Debug)]
pub struct OwnedWriteHalf {
    stream: Arc<AsyncStream>,
    shutdown_on_drop: bool,
}

impl OwnedReadHalf {
    /// Puts the halves back together; they must come from the same stream.
    pub fn reunite(self, mut write: OwnedWriteHalf) -> Result<AsyncStream, (OwnedReadHalf, OwnedWriteHalf)> {
        if !Arc::ptr_eq(&self.0, &write.stream) {
            return Err((self, write));
        }
        write.shutdown_on_drop = false;
        drop(write);
        Ok(Arc::try_unwrap(self.0).expect("the write half is gone"))
    }

    /// The stream both halves share.
    pub fn stream(&self) -> &AsyncStream {
        &self.0
    }
}

impl OwnedWriteHalf {
    /// The stream both halves share.
    pub fn stream(&self) -> &AsyncStream {
        &self.stream
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            let _ = self.stream.shutdown_write();
        }
    }
}

/// The stream, its borrowed and owned halves, and `&AsyncStream` (shared use, like std's
/// `Read for &TcpStream`, with no half-close on drop) all read and write through one stream.
macro_rules! read_impl {
    ($ty:ty, |$s:ident| $get:expr) => {
        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                let $s = &*self;
                $get.poll_read_priv(cx, buf)
            }
        }
    };
}

macro_rules! write_impl {
    ($ty:ty, |$s:ident| $get:expr) => {
        impl AsyncWrite for $ty {
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                let $s = &*self;
                $get.poll_write_priv(cx, buf)
            }
            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                let $s = &*self;
                $get.poll_write_vectored_priv(cx, bufs)
            }
            fn is_write_vectored(&self) -> bool {
                true
            }
            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
            fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                let $s = &*self;
                Poll::Ready($get.shutdown_write())
            }
        }
    };
}

read_impl!(AsyncStream, |s| s);
write_impl!(AsyncStream, |s| s);
read_impl!(&AsyncStream, |s| *s);
write_impl!(&AsyncStream, |s| *s);
read_impl!(ReadHalf<'_>, |s| s.0);
write_impl!(WriteHalf<'_>, |s| s.0);
read_impl!(OwnedReadHalf, |s| s.0);
write_impl!(OwnedWriteHalf, |s| s.stream);

impl crate::Connector {
    /// [`Connector::connect`](crate::Connector::connect) without blocking a thread: the same
    /// options, per-attempt timeout (also given to the kernel, whose own vsock connect timer
    /// would otherwise end a non-blocking connect after 2 s) and retries.
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// use std::time::Duration;
    /// let s = hvsock::Connector::new().timeout(Duration::from_secs(30)).retries(5).connect_async("vsock:3:5000").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_async<A: ToSocketAddr + Clone>(&self, addr: A) -> io::Result<AsyncStream> {
        self.retry_async(|| async {
            let attempt = AsyncStream::connect_socket(self.async_socket()?, addr.clone());
            match self.attempt_timeout() {
                // Where the kernel times a non-blocking connect out by itself (it has our
                // timeout), a timer of ours would only add clock reads.
                Some(t) if !crate::sys::KERNEL_TIMES_CONNECT => ::tokio::time::timeout(t, attempt)
                    .await
                    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
                _ => attempt.await,
            }
        })
        .await
    }
}
