//! Standard input and output as a connection's two halves, as cheaply as each kind allows.
//!
//! tokio's stdin and stdout hand every read and write to a thread of the blocking pool (and
//! stdout goes through std's line buffer, so each chunk also needs a flush). For what never
//! blocks for long — a regular file, or a character device such as /dev/null or /dev/zero —
//! plain read(2)/write(2) calls on descriptors 0 and 1 do the same job in place. Pipes, sockets
//! and terminals keep tokio's way: they can block for ever, and making them non-blocking would
//! change them for every other process that shares them. A pipe on either side is at least
//! enlarged to 1 MiB, so each hand-off carries up to that much.

use std::io::{self, IsTerminal, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How big a pipe on stdin or stdout is made.
const PIPE_SIZE: libc::c_int = 1 << 20;

/// A standard descriptor borrowed as a `File`, never closed by us, and what it is.
struct Std(ManuallyDrop<std::fs::File>, Option<std::fs::Metadata>);

impl Std {
    fn new(fd: i32) -> Std {
        // SAFETY: descriptors 0 and 1 stay open for the process's life; ManuallyDrop keeps us
        // from closing them.
        let file = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
        let meta = file.metadata().ok();
        Std(file, meta)
    }

    /// Never blocks for long: a regular file, or a character device other than a terminal
    /// (for reading, only the memory devices — /dev/null, /dev/zero, /dev/urandom, … — as a
    /// device such as /dev/kmsg can wait for ever for something to read).
    fn is_direct(&self, terminal: bool, reading: bool) -> bool {
        self.1.as_ref().is_some_and(|m| {
            let t = m.file_type();
            let memory_device = libc::major(m.rdev()) == 1;
            t.is_file() || (t.is_char_device() && !terminal && (!reading || memory_device))
        })
    }

    fn enlarge_if_pipe(&self) {
        if self.1.as_ref().is_some_and(|m| m.file_type().is_fifo()) {
            // SAFETY: F_SETPIPE_SZ on our own descriptor; refused (EPERM, EBUSY) is harmless.
            unsafe { libc::fcntl(self.0.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
        }
    }
}

/// Standard input as an async reader.
pub fn stdin() -> Box<dyn AsyncRead + Send + Unpin> {
    let fd = Std::new(0);
    if fd.is_direct(io::stdin().is_terminal(), true) {
        return Box::new(fd);
    }
    fd.enlarge_if_pipe();
    Box::new(tokio::io::stdin())
}

/// Standard output as an async writer.
pub fn stdout() -> Box<dyn AsyncWrite + Send + Unpin> {
    let fd = Std::new(1);
    if fd.is_direct(io::stdout().is_terminal(), false) {
        return Box::new(fd);
    }
    fd.enlarge_if_pipe();
    Box::new(tokio::io::stdout())
}

impl AsyncRead for Std {
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let room = buf.remaining();
        // SAFETY: read(2) writes at most `room` bytes into the unfilled part, and we mark as
        // filled only what it wrote.
        let n = unsafe {
            let unfilled = buf.unfilled_mut();
            libc::read(self.0.as_raw_fd(), unfilled.as_mut_ptr().cast(), room)
        };
        if n < 0 {
            return Poll::Ready(Err(io::Error::last_os_error()));
        }
        // SAFETY: the first n bytes of the unfilled part were just written.
        unsafe { buf.assume_init(n as usize) };
        buf.advance(n as usize);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Std {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready((&*self.0).write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
