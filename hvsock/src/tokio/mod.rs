//! The async API (feature `tokio`): [`AsyncListener`] and [`AsyncStream`], read like tokio's
//! `TcpListener`/`TcpStream`.
//!
//! Readiness: on Linux the socket is registered with tokio's epoll reactor (`AsyncFd`). On
//! Windows, AF_HYPERV sockets are IFS handles (`XP1_IFS_HANDLES`), which the AFD-based polling
//! that tokio (mio) uses for Winsock sockets accepts like any TCP socket; the socket is
//! registered through tokio's `UdpSocket` shell, used for readiness only. What is verified: the
//! Linux path, in the lab; the Windows path compiles and is clippy-clean, but no Hyper-V socket
//! has gone through it in our CI (wine has no AF_HYPERV).

mod listener;
mod reactor;
#[cfg(target_os = "linux")]
mod seqpacket;
mod stream;

pub use listener::AsyncListener;
#[cfg(target_os = "linux")]
pub use seqpacket::{AsyncSeqpacket, AsyncSeqpacketListener};
pub use stream::{AsyncStream, OwnedReadHalf, OwnedWriteHalf, ReadHalf, WriteHalf};
