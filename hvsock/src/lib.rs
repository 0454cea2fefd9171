//! Host<->VM sockets with one set of names on both ends of the wire: Windows Hyper-V sockets
//! (AF_HYPERV) and Linux vsock (AF_VSOCK, also what a Linux guest on Hyper-V uses).
//!
//! - [`Guid`], [`VmId`], [`ServiceId`]: Hyper-V's IDs, the well-known VM IDs and the VSOCK
//!   template that maps a vsock port to a service GUID.
//! - [`VsockAddr`], [`HvAddr`]: the native socket addresses, byte for byte.
//! - [`Vm`], [`Service`], [`Endpoint`]: the platform-neutral names (`any`, `loopback`, `parent`,
//!   `children`, ...) and endpoint strings (`vsock:any:19000`, `hv:parent:19000`).
//! - [`Listener`], [`Stream`]: the blocking API, like std's `TcpListener`/`TcpStream`;
//!   [`Connector`] for timeouts, retries and options before connecting.
//! - `SeqpacketListener`, `Seqpacket` (Linux): vsock `SOCK_SEQPACKET`, connections that keep
//!   message boundaries.
//! - [`info`]: what this machine offers (transports, hypervisor, VM ID, Winsock catalog);
//!   `registry` (Windows): Hyper-V service registration.
//! - `hybrid` (Unix): the host side of Firecracker-style VMs, `CONNECT <port>` over a Unix socket.
//! - `diag` (Linux): the machine's vsock sockets and their owners, like `ss -f vsock -p`.
//! - `activation` (Linux): listening sockets a service manager hands over (systemd socket
//!   activation), for `Listener::adopt`.
//! - `tokio` (feature `tokio`): `AsyncListener`, `AsyncStream`; on Linux `AsyncSeqpacketListener`,
//!   `AsyncSeqpacket`.
//! - [`Printable`]: a user's or a peer's text, safe to put in a one-line message.
//! - [`recv`]: socket2's receives into an ordinary byte buffer.
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use hvsock::Stream;
//!
//! // The same line works in a Linux guest (CID 2) and a Windows VM (HV_GUID_PARENT).
//! let mut s = Stream::connect("hv:parent:19000")?;
//! s.write_all(b"World!")?;
//! # Ok::<(), std::io::Error>(())
//! ```

#![deny(missing_docs)]
// docs.rs marks what each platform or feature has (Windows items appear in the Windows
// target's docs, which docs.rs builds on Linux too).
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(target_os = "linux")]
pub mod activation;
mod addr;
#[cfg(target_os = "linux")]
pub mod diag;
mod guid;
#[cfg(unix)]
pub mod hybrid;
pub mod info;
pub mod line;
mod net;
mod printable;
pub mod recv;
#[cfg(windows)]
pub mod registry;
mod sys;
#[cfg(feature = "tokio")]
pub mod tokio;
#[cfg(unix)]
pub mod unix;

/// The parsers of outside input that are not public API, for the fuzzers under `fuzz/`
/// (built with `--cfg fuzzing`).
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// A VMM's answer to `CONNECT <port>`: the line without its newline.
    #[cfg(unix)]
    pub fn hybrid_ok_line(line: &[u8]) -> std::io::Result<u32> {
        crate::hybrid::parse_ok(line)
    }

    /// A kernel's reply to a vsock_diag dump: one buffer of netlink messages.
    #[cfg(target_os = "linux")]
    pub fn diag_reply(msgs: &[u8]) -> std::io::Result<usize> {
        let mut out = Vec::new();
        crate::diag::messages(msgs, &mut out).map(|_| out.len())
    }
}

pub use addr::{
    AddrError, Endpoint, HvAddr, Role, Service, ServiceId, SocketAddr, ToSocketAddr, Vm, VmId, VsockAddr,
};
pub use guid::Guid;
#[cfg(target_os = "linux")]
pub use net::BufferSize;
#[cfg(windows)]
pub use net::HvFlag;
pub use net::{Connector, Incoming, Listener, Stream, BACKLOG};
#[cfg(target_os = "linux")]
pub use net::{Received, Seqpacket, SeqpacketListener};
pub use printable::Printable;
#[cfg(target_os = "linux")]
pub use sys::local_cid;
