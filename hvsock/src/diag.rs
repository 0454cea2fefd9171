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
/// The kernel's tables changed during the dump: it is inconsistent, take it again.
const NLM_F_DUMP_INTR: u16 = 0x10;
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
    let mut tries = 0;
    loop {
        match dump() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted && tries < 5 => tries += 1,
            result => return result,
        }
    }
}

fn dump() -> io::Result<Vec<SocketEntry>> {
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
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "netlink closed before the dump ended"));
        }
        if let Batch::Done = messages(&buf[..n as usize], &mut out)? {
            return Ok(out);
        }
    }
}

/// Where a batch of netlink messages left the dump.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Batch {
    More,
    Done,
}

/// Takes the sockets out of one `recv`'s worth of netlink messages. Every length is checked
/// against what arrived: a short or malformed message is an error, never a panic.
pub(crate) fn messages(mut msgs: &[u8], out: &mut Vec<SocketEntry>) -> io::Result<Batch> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("netlink: {what}"));
    let i32_at = |body: &[u8]| body.get(0..4).map(|b| i32::from_ne_bytes(b.try_into().unwrap()));
    while !msgs.is_empty() {
        if msgs.len() < HEADER {
            return Err(bad("a truncated message header"));
        }
        let len = u32::from_ne_bytes(msgs[0..4].try_into().unwrap()) as usize;
        let ty = u16::from_ne_bytes(msgs[4..6].try_into().unwrap());
        let flags = u16::from_ne_bytes(msgs[6..8].try_into().unwrap());
        if len < HEADER || len > msgs.len() {
            return Err(bad("a message longer than what arrived"));
        }
        if flags & NLM_F_DUMP_INTR != 0 {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "netlink: the dump changed while it ran"));
        }
        let body = &msgs[HEADER..len];
        match ty {
            NLMSG_DONE => {
                return match i32_at(body) {
                    Some(e) if e < 0 => Err(diag_error(-e)),
                    _ => Ok(Batch::Done),
                }
            }
            NLMSG_ERROR => {
                return match i32_at(body).ok_or_else(|| bad("a truncated error message"))? {
                    0 => Ok(Batch::Done),
                    e => Err(diag_error(-e)),
                }
            }
            SOCK_DIAG_BY_FAMILY if body.len() >= MSG => out.push(parse(body)),
            SOCK_DIAG_BY_FAMILY => return Err(bad("a truncated socket entry")),
            _ => {}
        }
        msgs = &msgs[((len + 3) & !3).min(msgs.len())..];
    }
    Ok(Batch::More)
}

fn diag_error(errno: i32) -> io::Error {
    match errno {
        libc::ENOENT => io::Error::new(
            io::ErrorKind::NotFound,
            "the vsock_diag kernel module is not loaded (load it: modprobe vsock_diag)",
        ),
        e => io::Error::from_raw_os_error(e),
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

    fn msg(ty: u16, flags: u16, body: &[u8]) -> Vec<u8> {
        let mut m = ((HEADER + body.len()) as u32).to_ne_bytes().to_vec();
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(body);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    #[test]
    fn malformed_netlink_is_an_error_not_a_panic() {
        let entry = msg(SOCK_DIAG_BY_FAMILY, 0, &[0u8; MSG]);
        let mut out = Vec::new();
        assert_eq!(messages(&entry, &mut out).unwrap(), Batch::More);
        assert_eq!(out.len(), 1);
        // A truncated error body, a short trailing message, a header that claims too much.
        for bad in [
            msg(NLMSG_ERROR, 0, &[1, 2]),
            [entry.clone(), vec![1, 2, 3]].concat(),
            [&entry[..20], &[0u8; 4][..]].concat(),
            msg(SOCK_DIAG_BY_FAMILY, 0, &[0u8; 8]),
        ] {
            assert_eq!(messages(&bad, &mut Vec::new()).unwrap_err().kind(), io::ErrorKind::InvalidData);
        }
        // A length not a multiple of 4 at the very end.
        let mut odd = entry.clone();
        odd[0] = (HEADER + MSG + 1) as u8;
        odd.push(0);
        assert!(messages(&odd, &mut Vec::new()).is_ok());
    }

    #[test]
    fn done_errors_and_interrupted_dumps_are_told() {
        assert_eq!(messages(&msg(NLMSG_DONE, 0, &0i32.to_ne_bytes()), &mut Vec::new()).unwrap(), Batch::Done);
        assert_eq!(messages(&msg(NLMSG_DONE, 0, &[]), &mut Vec::new()).unwrap(), Batch::Done);
        let e = messages(&msg(NLMSG_DONE, 0, &(-libc::ENOENT).to_ne_bytes()), &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("vsock_diag"), "{e}");
        let e = messages(&msg(NLMSG_ERROR, 0, &(-libc::EPERM).to_ne_bytes()), &mut Vec::new()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
        let intr = msg(SOCK_DIAG_BY_FAMILY, NLM_F_DUMP_INTR, &[0u8; MSG]);
        assert_eq!(messages(&intr, &mut Vec::new()).unwrap_err().kind(), io::ErrorKind::Interrupted);
    }

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
