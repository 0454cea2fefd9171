//! Listing the machine's vsock sockets, like `ss -f vsock -p -la` (Linux): a
//! NETLINK_SOCK_DIAG dump answered by the `vsock_diag` module, owners found in `/proc/*/fd`.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::VsockAddr;

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const HEADER: usize = 16;
/// `struct vsock_diag_msg`.
const MSG: usize = 32;

/// One vsock socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketEntry {
    /// `stream`, `seqpacket`, `dgram`.
    pub kind: &'static str,
    /// `LISTEN`, `ESTAB`, `SYN-SENT`, `UNCONN`, `CLOSING` (as `ss` names them).
    pub state: &'static str,
    /// This end.
    pub local: VsockAddr,
    /// The other end (`VMADDR_CID_ANY`/`VMADDR_PORT_ANY` when none).
    pub peer: VsockAddr,
    /// The socket's inode, as in `/proc/PID/fd/N -> socket:[INODE]`.
    pub inode: u32,
    /// Processes holding it.
    pub owners: Vec<Owner>,
}

/// A process holding a socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Process ID.
    pub pid: u32,
    /// `/proc/PID/comm`.
    pub name: String,
    /// The descriptor number in that process.
    pub fd: u32,
}

/// Every vsock socket on this machine; `NotFound` with advice when `vsock_diag` is not loaded.
///
/// ```no_run
/// for s in hvsock::diag::sockets()? {
///     println!("{} {} -> {}", s.state, s.local, s.peer);
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn sockets() -> io::Result<Vec<SocketEntry>> {
    let mut entries = table()?;
    let owners = owners_by_inode();
    for e in &mut entries {
        e.owners = owners.get(&e.inode).cloned().unwrap_or_default();
    }
    Ok(entries)
}

/// Every vsock socket, without their owners: one netlink dump, cheap enough to poll.
///
/// ```no_run
/// let listening = hvsock::diag::table()?.iter().any(|s| s.state == "LISTEN" && s.local.port == 5000);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn table() -> io::Result<Vec<SocketEntry>> {
    // SAFETY: a fresh socket we own at once.
    let fd =
        unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_SOCK_DIAG) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is ours alone.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = Vec::with_capacity(HEADER + 24);
    req.extend_from_slice(&((HEADER + 24) as u32).to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // seq
    req.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
    req.extend_from_slice(&[libc::AF_VSOCK as u8, 0, 0, 0]); // family, protocol, pad
    req.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    req.extend_from_slice(&[0u8; 16]); // inode, show, cookie
                                       // SAFETY: sockaddr_nl zeroed is the kernel's address; the buffer is `req`.
    let sent = unsafe {
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as u16;
        libc::sendto(
            sock.as_raw_fd(),
            req.as_ptr().cast(),
            req.len(),
            0,
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: recv writes at most buf.len() bytes.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut msgs = &buf[..n as usize];
        while msgs.len() >= HEADER {
            let len = u32::from_ne_bytes(msgs[0..4].try_into().unwrap()) as usize;
            let ty = u16::from_ne_bytes(msgs[4..6].try_into().unwrap());
            if len < HEADER || len > msgs.len() {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "truncated netlink message"));
            }
            let body = &msgs[HEADER..len];
            match ty {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => {
                    let errno = -i32::from_ne_bytes(body[0..4].try_into().unwrap());
                    return Err(match errno {
                        0 => return Ok(out),
                        libc::ENOENT => io::Error::new(
                            io::ErrorKind::NotFound,
                            "the vsock_diag kernel module is not loaded (load it: modprobe vsock_diag)",
                        ),
                        e => io::Error::from_raw_os_error(e),
                    });
                }
                SOCK_DIAG_BY_FAMILY if body.len() >= MSG => out.push(parse(body)),
                _ => {}
            }
            msgs = &msgs[(len + 3) & !3..];
        }
    }
}

fn parse(m: &[u8]) -> SocketEntry {
    let u32_at = |at: usize| u32::from_ne_bytes(m[at..at + 4].try_into().unwrap());
    SocketEntry {
        kind: match m[1] as i32 {
            libc::SOCK_STREAM => "stream",
            libc::SOCK_SEQPACKET => "seqpacket",
            libc::SOCK_DGRAM => "dgram",
            _ => "other",
        },
        state: match m[2] {
            1 => "ESTAB",
            2 => "SYN-SENT",
            7 => "UNCONN",
            10 => "LISTEN",
            11 => "CLOSING",
            _ => "UNKNOWN",
        },
        local: VsockAddr::new(u32_at(4), u32_at(8)),
        peer: VsockAddr::new(u32_at(12), u32_at(16)),
        inode: u32_at(20),
        owners: Vec::new(),
    }
}

/// inode -> the processes (and fds) holding that socket, from what /proc lets us read.
fn owners_by_inode() -> HashMap<u32, Vec<Owner>> {
    let mut map: HashMap<u32, Vec<Owner>> = HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return map };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
        let name = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default().trim().to_string();
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else { continue };
            let target = target.to_string_lossy();
            let Some(inode) = target.strip_prefix("socket:[").and_then(|t| t.strip_suffix(']')) else {
                continue;
            };
            let (Ok(inode), Some(fd)) = (inode.parse(), fd.file_name().to_str().and_then(|f| f.parse().ok()))
            else {
                continue;
            };
            map.entry(inode).or_default().push(Owner { pid, name: name.clone(), fd });
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_vsock_diag_msg() {
        let mut m = vec![40u8, 1, 10, 0];
        for v in [u32::MAX, 19000, u32::MAX, u32::MAX, 4242, 0, 0] {
            m.extend_from_slice(&v.to_ne_bytes());
        }
        let e = parse(&m);
        assert_eq!((e.kind, e.state, e.inode), ("stream", "LISTEN", 4242));
        assert_eq!(e.local, VsockAddr::new(VsockAddr::CID_ANY, 19000));
    }
}
