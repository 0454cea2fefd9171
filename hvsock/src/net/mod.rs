//! The blocking API: [`Listener`] and [`Stream`], read like std's `TcpListener`/`TcpStream`.

mod connector;
mod listener;
mod options;
#[cfg(target_os = "linux")]
mod seqpacket;
mod stream;

pub use connector::Connector;
pub use listener::{Incoming, Listener};
#[cfg(target_os = "linux")]
pub use options::BufferSize;
#[cfg(windows)]
pub use options::HvFlag;
#[cfg(all(target_os = "linux", feature = "tokio"))]
pub(crate) use seqpacket::{peek_error, send_error, RECV_TRUNC};
#[cfg(target_os = "linux")]
pub use seqpacket::{Received, Seqpacket, SeqpacketListener};
pub use stream::Stream;

/// The listen backlog every hvsock listener asks for — vsock, Hyper-V, Unix, hybrid and, in
/// the engine, TCP; blocking or async: as deep as the system allows. Linux cuts any larger
/// request to `net.core.somaxconn` (4096 by default since 5.4), and Windows reads this value,
/// its SOMAXCONN, as "a reasonable maximum". A burst of clients then waits in the kernel's
/// queue instead of being reset (vsock, Unix: a full queue refuses at once) or made to wait
/// out a SYN retransmission (TCP, 1 s). A smaller queue is asked for by listening again
/// (`hvsock relay --backlog N`; Linux honours a second `listen`, Windows keeps the first).
pub const BACKLOG: i32 = i32::MAX;

use std::io;

use socket2::SockAddr;

use crate::SocketAddr;

/// Our address as socket2's, by its native bytes (both families are plain byte layouts).
pub(crate) fn to_sockaddr(addr: &SocketAddr) -> SockAddr {
    let bytes = addr.to_bytes();
    // SAFETY: storage is larger than 36 bytes; we write the family's full native layout and its
    // exact length.
    let ((), sockaddr) = unsafe {
        SockAddr::try_init(|storage, len| {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), storage.cast::<u8>(), bytes.len());
            *len = bytes.len() as _;
            Ok(())
        })
    }
    .expect("copying an address cannot fail");
    sockaddr
}

pub(crate) fn from_sockaddr(addr: &SockAddr) -> io::Result<SocketAddr> {
    // SAFETY: as_ptr points at storage holding at least len() initialised bytes.
    let bytes = unsafe { std::slice::from_raw_parts(addr.as_ptr().cast::<u8>(), addr.len() as usize) };
    Ok(SocketAddr::from_bytes(bytes)?)
}
