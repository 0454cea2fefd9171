//! One socket used from both directions' copies, read and written through tokio's readiness.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hvsock::tokio::AsyncStream;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// One socket used from both directions' copies. Unlike tokio's owned halves, dropping the
/// writing side does not half-close: after a failure the peer's first news is the reset.
pub struct Shared<T>(pub Arc<T>);

impl AsyncRead for Shared<AsyncStream> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Shared<AsyncStream> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.0).poll_shutdown(cx)
    }
}

/// tokio's TCP and Unix streams: read and written by our own calls, through their readiness.
trait Readiness: Send + Sync {
    fn poll_ready(&self, cx: &mut Context<'_>, interest: Interest) -> Poll<io::Result<()>>;
    fn try_io(&self, interest: Interest, f: impl FnOnce() -> io::Result<usize>) -> io::Result<usize>;
    fn sock(&self) -> socket2::SockRef<'_>;
}

macro_rules! readiness {
    ($ty:ty) => {
        impl Readiness for $ty {
            fn poll_ready(&self, cx: &mut Context<'_>, interest: Interest) -> Poll<io::Result<()>> {
                if interest.is_readable() {
                    self.poll_read_ready(cx)
                } else {
                    self.poll_write_ready(cx)
                }
            }
            fn try_io(&self, interest: Interest, f: impl FnOnce() -> io::Result<usize>) -> io::Result<usize> {
                <$ty>::try_io(self, interest, f)
            }
            fn sock(&self) -> socket2::SockRef<'_> {
                socket2::SockRef::from(self)
            }
        }
    };
}

readiness!(tokio::net::TcpStream);
#[cfg(unix)]
readiness!(tokio::net::UnixStream);

impl<T: Readiness> AsyncRead for Shared<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let offered = buf.remaining();
        let n = std::task::ready!(poll_rw(&*self.0, cx, Interest::READABLE, offered, || {
            // SAFETY: recv writes only into the unfilled part; only what it wrote is marked
            // filled below.
            let unfilled = unsafe { &mut *(buf.unfilled_mut() as *mut [std::mem::MaybeUninit<u8>]) };
            self.0.sock().recv(unfilled)
        }))?;
        // SAFETY: recv initialised the first n bytes of the unfilled part.
        unsafe { buf.assume_init(n) };
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<T: Readiness> AsyncWrite for Shared<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        poll_rw(&*self.0, cx, Interest::WRITABLE, buf.len(), || self.0.sock().send(buf))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(match self.0.sock().shutdown(std::net::Shutdown::Write) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            r => r,
        })
    }
}

/// One read or write of `offered` bytes on a shared TCP or Unix socket, once it is ready. When
/// it moves less than offered the socket is drained (or its send buffer full): the readiness
/// seen is cleared, so the next call waits for the reactor instead of first failing with
/// WouldBlock — what tokio's own `TcpStream::poll_read` does, and `try_io` alone does only on
/// WouldBlock. Reporting the short move to `try_io` as WouldBlock clears exactly the readiness
/// observed before the call, never an event that came during it.
fn poll_rw(
    s: &impl Readiness,
    cx: &mut Context<'_>,
    interest: Interest,
    offered: usize,
    mut op: impl FnMut() -> io::Result<usize>,
) -> Poll<io::Result<usize>> {
    loop {
        std::task::ready!(s.poll_ready(cx, interest))?;
        let mut short = None;
        match s.try_io(interest, || match op() {
            Ok(n) if n > 0 && n < offered => {
                short = Some(n);
                Err(io::ErrorKind::WouldBlock.into())
            }
            r => r,
        }) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => match short {
                Some(n) => return Poll::Ready(Ok(n)),
                None => continue,
            },
            r => return Poll::Ready(r),
        }
    }
}
