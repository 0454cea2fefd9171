//! Linux: a direction of a relay between two stream sockets that turns out to be a bulk stream
//! goes on with splice(2), socket → pipe → socket, so its bytes never pass through our memory:
//! a copy fewer per byte, and no 1 MiB buffer held. Only a bulk stream gets a pipe: a pipe costs
//! two descriptors, which a relay of a thousand quiet connections cannot spare. When there are
//! none to spare (or the pipe cannot be made large), the copy goes on through the buffer.

#[cfg(target_os = "linux")]
pub use linux::*;

/// A stream socket whose bytes splice(2) can move: every kind a relay joins, on Linux. On other
/// systems there is none.
#[derive(Clone)]
pub enum Spliceable {
    #[cfg(target_os = "linux")]
    Tcp(std::sync::Arc<tokio::net::TcpStream>),
    #[cfg(target_os = "linux")]
    Vsock(std::sync::Arc<hvsock::tokio::AsyncStream>),
    #[cfg(target_os = "linux")]
    Unix(std::sync::Arc<tokio::net::UnixStream>),
}

/// A socket kind a relay can splice: on Linux, itself again; elsewhere, none.
pub trait ToSpliceable {
    fn spliceable(this: &std::sync::Arc<Self>) -> Option<Spliceable>;
}

macro_rules! spliceable {
    ($ty:ty, $variant:ident) => {
        impl ToSpliceable for $ty {
            fn spliceable(this: &std::sync::Arc<Self>) -> Option<Spliceable> {
                #[cfg(target_os = "linux")]
                return Some(Spliceable::$variant(std::sync::Arc::clone(this)));
                #[cfg(not(target_os = "linux"))]
                {
                    let _ = this;
                    None
                }
            }
        }
    };
}

spliceable!(tokio::net::TcpStream, Tcp);
spliceable!(hvsock::tokio::AsyncStream, Vsock);
#[cfg(unix)]
spliceable!(tokio::net::UnixStream, Unix);

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

    use tokio::io::Interest;

    use super::Spliceable;

    /// How much a pipe holds: one bulk read, as a joined direction's largest buffer.
    pub const PIPE_SIZE: usize = 1 << 20;

    impl Spliceable {
        fn fd(&self) -> RawFd {
            match self {
                Spliceable::Tcp(s) => s.as_raw_fd(),
                Spliceable::Vsock(s) => s.as_raw_fd(),
                Spliceable::Unix(s) => s.as_raw_fd(),
            }
        }

        /// Runs `f` once the socket is ready, until it stops saying WouldBlock.
        async fn io(&self, interest: Interest, f: impl FnMut() -> io::Result<usize>) -> io::Result<usize> {
            match self {
                Spliceable::Tcp(s) => s.async_io(interest, f).await,
                Spliceable::Vsock(s) => s.async_io(interest, f).await,
                Spliceable::Unix(s) => s.async_io(interest, f).await,
            }
        }
    }

    /// A pipe of our own between two sockets, empty between chunks.
    pub struct Pipe {
        read: OwnedFd,
        write: OwnedFd,
        _room: crate::descriptors::PipeRoom,
    }

    impl Pipe {
        /// A pipe that holds a bulk read, or none if the descriptors or the pipe's size cannot
        /// be had (the process's pipe budget spent, EMFILE, a user past the kernel's
        /// pipe-user-pages limit).
        pub fn new() -> Option<Pipe> {
            let room = crate::descriptors::PipeRoom::take()?;
            let mut fds = [0; 2];
            // SAFETY: pipe2 fills the two descriptors on success; we own them from then on.
            if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
                return None;
            }
            // SAFETY: both were just created for us and nobody else holds them.
            let pipe = unsafe {
                Pipe { read: OwnedFd::from_raw_fd(fds[0]), write: OwnedFd::from_raw_fd(fds[1]), _room: room }
            };
            // A smaller pipe would cut a bulk stream into 64 KiB splices: worse than the buffer.
            // SAFETY: F_SETPIPE_SZ on our own pipe.
            let size =
                unsafe { libc::fcntl(pipe.write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE as libc::c_int) };
            (size >= PIPE_SIZE as libc::c_int).then_some(pipe)
        }

        /// Whatever is in the pipe, read out (for a writer that turned out to take no splice).
        fn drain(&self) -> io::Result<Vec<u8>> {
            let mut out = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                // SAFETY: read(2) into our own buffer of that length.
                match unsafe { libc::read(self.read.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) } {
                    -1 if io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock => return Ok(out),
                    -1 => return Err(io::Error::last_os_error()),
                    0 => return Ok(out),
                    n => out.extend_from_slice(&chunk[..n as usize]),
                }
            }
        }
    }

    /// How splicing a direction ended.
    pub enum Spliced {
        /// The reading side's data ended, all of it delivered.
        End,
        /// This pair takes no splice (EINVAL): go on through the buffer, these bytes first.
        Unsupported(Vec<u8>),
    }

    /// Which side a failure was on.
    pub enum SpliceError {
        Read(io::Error),
        Write(io::Error),
    }

    fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
        // SAFETY: splice(2) between descriptors we hold, with no offsets (both are a socket
        // or a pipe). SPLICE_F_NONBLOCK keeps the pipe's side from blocking; the sockets are
        // non-blocking already.
        match unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        } {
            -1 => Err(io::Error::last_os_error()),
            n => Ok(n as usize),
        }
    }

    /// Moves `from`'s bytes to `to` through `pipe` until `from`'s data ends, telling
    /// `writing` while a chunk waits to be written (`held_up` when it has to wait for `to`)
    /// and `moved` each chunk's length once it is delivered.
    pub async fn copy(
        from: &Spliceable,
        to: &Spliceable,
        pipe: Pipe,
        writing: impl Fn(bool),
        held_up: impl Fn(),
        mut moved: impl FnMut(usize),
    ) -> Result<Spliced, SpliceError> {
        let (pipe_in, pipe_out) = (pipe.write.as_raw_fd(), pipe.read.as_raw_fd());
        let mut first = true;
        loop {
            // The pipe is empty here, so a WouldBlock is the socket's own.
            let n = match from.io(Interest::READABLE, || splice(from.fd(), pipe_in, PIPE_SIZE)).await {
                Ok(0) => return Ok(Spliced::End),
                Ok(n) => n,
                Err(e) if first && e.raw_os_error() == Some(libc::EINVAL) => {
                    return Ok(Spliced::Unsupported(Vec::new()))
                }
                Err(e) => return Err(SpliceError::Read(e)),
            };
            let mut left = n;
            writing(true);
            while left > 0 {
                let written = to.io(Interest::WRITABLE, || splice(pipe_out, to.fd(), left));
                match crate::held_up::telling(written, &held_up).await {
                    Ok(0) => return Err(SpliceError::Write(io::ErrorKind::WriteZero.into())),
                    Ok(m) => left -= m,
                    Err(e) if first && e.raw_os_error() == Some(libc::EINVAL) => {
                        return pipe.drain().map(Spliced::Unsupported).map_err(SpliceError::Read);
                    }
                    Err(e) => return Err(SpliceError::Write(e)),
                }
            }
            writing(false);
            first = false;
            moved(n);
        }
    }
}
