use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use socket2::Socket;

use super::from_sockaddr;
use crate::{Connector, SocketAddr, ToSocketAddr};

/// A connected VM socket: AF_VSOCK on Linux, AF_HYPERV on Windows.
///
/// ```no_run
/// use std::io::{Read, Write};
/// use std::net::Shutdown;
/// use std::time::Duration;
/// use hvsock::Stream;
///
/// let mut stream = Stream::connect_timeout("hv:parent:19000", Duration::from_secs(5))?;
/// stream.write_all(b"World!")?;
/// stream.shutdown(Shutdown::Write)?; // the server reads to the end, then answers
/// let mut answer = String::new();
/// stream.read_to_string(&mut answer)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Stream {
    pub(crate) inner: Socket,
}

impl Stream {
    /// Connects to `addr`, waiting as long as the platform does by default
    /// (2 s for vsock on Linux). [`Connector`] adds retries and options.
    pub fn connect<A: ToSocketAddr>(addr: A) -> io::Result<Stream> {
        Connector::new().connect(addr)
    }

    /// Connects to `addr`, giving up after `timeout` with `TimedOut`.
    pub fn connect_timeout<A: ToSocketAddr>(addr: A, timeout: Duration) -> io::Result<Stream> {
        Connector::new().timeout(timeout).connect(addr)
    }

    /// The address of the other end.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        from_sockaddr(&self.inner.peer_addr()?)
    }

    /// This end's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        from_sockaddr(&self.inner.local_addr()?)
    }

    /// Reads what has arrived without taking it off the socket (`MSG_PEEK`), like
    /// `TcpStream::peek`: a later read returns the same bytes.
    ///
    /// ```no_run
    /// # let stream = hvsock::Stream::connect("vsock:3:5000")?;
    /// let mut first = [0u8; 64];
    /// let n = stream.peek(&mut first)?; // e.g. to find the end of a header line
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        crate::recv::peek(&self.inner, buf)
    }

    /// Closes the read half, the write half (the peer reads end-of-file) or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// How long a read may wait before failing with `WouldBlock`/`TimedOut`; `None` = forever.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.set_read_timeout(crate::sys::os_timeout(timeout))
    }

    /// How long a write may wait; `None` = forever.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.set_write_timeout(crate::sys::os_timeout(timeout))
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        self.inner.read_timeout()
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        self.inner.write_timeout()
    }

    /// Makes reads and writes return `WouldBlock` instead of waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.set_nonblocking(nonblocking)
    }

    /// Another handle to the same connection (e.g. one thread reads, another writes).
    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(Stream { inner: self.inner.try_clone()? })
    }

    /// Takes the pending error off the socket (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.inner).read(buf)
    }
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&self.inner).read_vectored(bufs)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&self.inner).write(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&self.inner).write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
