//! Closing a connection whose peer may still be sending (`--send-only`) without losing what
//! we sent. A socket closed with its peer's data unread is reset (TCP; a Unix socket's peer
//! then reads an error for its end of file), and a TCP reset throws away whatever of ours the
//! peer has not yet acknowledged: a peer that greets late, after our upload was on its way,
//! got part of it and a reset. So such a socket is read on until its peer has taken all we
//! sent, and what came meanwhile is read just before the close.

use std::io;
use std::mem::MaybeUninit;
use std::time::Duration;

use crate::conn::SocketHandle;

/// Returns once the peer has taken everything we sent (TCP: acknowledged it and our end of
/// file; Unix: read it; vsock: it has left this machine's queue), or with the error that
/// ended the connection first. Where the system cannot say (Windows), at once.
pub async fn taken(socket: &dyn SocketHandle) -> io::Result<()> {
    let mut wait = Duration::from_millis(1);
    loop {
        // A reset (the peer closed with our data unread) leaves the count where it was.
        if let Some(e) = socket.sock().take_error()? {
            return Err(e);
        }
        match unsent(socket) {
            Some(0) | None => return Ok(()),
            Some(_) => tokio::time::sleep(wait).await,
        }
        wait = (wait * 2).min(Duration::from_millis(50));
    }
}

/// Reads and drops what the peer has sent that we have not read, so that closing the socket
/// is not a reset. Bounded: a peer that floods is reset at the close, after it has taken all
/// of ours.
pub fn drain(socket: &dyn SocketHandle) {
    #[cfg(unix)]
    let flags = libc::MSG_DONTWAIT;
    #[cfg(not(unix))]
    let flags = 0; // our sockets are non-blocking there
    let mut buf = [MaybeUninit::<u8>::uninit(); 64 * 1024];
    for _ in 0..64 {
        match socket.sock().recv_with_flags(&mut buf, flags) {
            Ok(n) if n > 0 => {}
            _ => return,
        }
    }
}

/// Bytes we sent that the peer has not yet taken (SIOCOUTQ), or None where that cannot be
/// asked.
fn unsent(socket: &dyn SocketHandle) -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let mut n: libc::c_int = 0;
        // SAFETY: SIOCOUTQ (TIOCOUTQ's number) writes one int into `n`.
        let rc = unsafe { libc::ioctl(socket.sock().as_raw_fd(), libc::TIOCOUTQ, &mut n) };
        (rc == 0).then_some(n.max(0) as usize)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = socket;
        None
    }
}
