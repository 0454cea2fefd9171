//! A control-plane proxy between Debian's UML 6.1 and a third-party vhost-user vsock backend
//! (vhost-device-vsock), so that real VMM code can serve a lab guest.
//!
//! UML 6.1 has two quirks such backends do not accept (see the switch's `device.rs`): its
//! SET_MEM_TABLE always carries room for two regions, and it wires the device's interrupt only
//! when the backend offers BACKEND_REQ, whose pipe must then stay open. The proxy forwards
//! every control message both ways with its file descriptors, and fixes just those: it trims
//! SET_MEM_TABLE to the regions used, offers BACKEND_REQ to UML while hiding it from the
//! backend, and keeps UML's backend-request pipe itself. Memory and the virtqueues' eventfds
//! pass through to the backend, so the data path never touches the proxy.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::switch::device::recv_with_fds;

const GET_PROTOCOL_FEATURES: u32 = 15;
const SET_PROTOCOL_FEATURES: u32 = 16;
const SET_MEM_TABLE: u32 = 5;
const SET_BACKEND_REQ_FD: u32 = 21;
const PROTOCOL_F_BACKEND_REQ: u64 = 1 << 5;
const VERSION: u32 = 0x1;
const REPLY: u32 = 0x4;
const NEED_REPLY: u32 = 0x8;
/// Larger than any control message UML sends.
const MAX_PAYLOAD: usize = 4096;

/// A running proxy: UML connects to [`VhostProxy::path`]; it serves one frontend.
pub struct VhostProxy {
    path: PathBuf,
}

impl VhostProxy {
    /// Listens at `front` for UML and, once UML connects, connects to the backend's socket
    /// `backend` and relays on threads of its own until either side closes.
    pub fn start(front: &Path, backend: &Path) -> io::Result<VhostProxy> {
        let listener = UnixListener::bind(front)?;
        let backend = backend.to_path_buf();
        thread::Builder::new().name("vhost-proxy".into()).spawn(move || {
            if let Ok((uml, _)) = listener.accept() {
                if let Ok(backend) = UnixStream::connect(&backend) {
                    let _ = relay(uml, backend);
                }
            }
        })?;
        Ok(VhostProxy { path: front.to_path_buf() })
    }

    /// Where UML connects (`virtio_uml.device=PATH:19`).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// One control message with the descriptors that came with it.
struct Message {
    request: u32,
    flags: u32,
    payload: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl Message {
    fn read(from: &UnixStream) -> io::Result<Message> {
        let mut hdr = [0u8; 12];
        let mut fds = recv_with_fds(from, &mut hdr)?;
        let word = |at: usize| u32::from_le_bytes(hdr[at..at + 4].try_into().unwrap());
        let size = word(8) as usize;
        if size > MAX_PAYLOAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "vhost-user payload too large"));
        }
        let mut payload = vec![0u8; size];
        fds.extend(recv_with_fds(from, &mut payload)?);
        Ok(Message { request: word(0), flags: word(4), payload, fds })
    }

    fn write(&self, to: &UnixStream) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(12 + self.payload.len());
        bytes.extend_from_slice(&self.request.to_le_bytes());
        bytes.extend_from_slice(&self.flags.to_le_bytes());
        bytes.extend_from_slice(&(self.payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&self.payload);
        let fds: Vec<RawFd> = self.fds.iter().map(|f| f.as_raw_fd()).collect();
        send_with_fds(to, &bytes, &fds)
    }

    fn u64_at(&self, at: usize) -> u64 {
        self.payload.get(at..at + 8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()))
    }

    fn set_u64_at(&mut self, at: usize, v: u64) {
        if let Some(b) = self.payload.get_mut(at..at + 8) {
            b.copy_from_slice(&v.to_le_bytes());
        }
    }
}

fn relay(uml: UnixStream, backend: UnixStream) -> io::Result<()> {
    let to_uml = Arc::new(Mutex::new(uml.try_clone()?));
    let backend_to_uml = {
        let (backend, to_uml) = (backend.try_clone()?, to_uml.clone());
        thread::spawn(move || -> io::Result<()> {
            loop {
                let mut m = Message::read(&backend)?;
                if m.request == GET_PROTOCOL_FEATURES {
                    // UML wires the device's interrupt only when this is offered.
                    let offered = m.u64_at(0);
                    m.set_u64_at(0, offered | PROTOCOL_F_BACKEND_REQ);
                }
                m.write(&to_uml.lock().expect("never poisoned"))?;
            }
        })
    };
    // UML drops the device when this pipe closes: held for the whole session.
    let mut backend_req: Option<OwnedFd> = None;
    let result = (|| -> io::Result<()> {
        loop {
            let mut m = Message::read(&uml)?;
            match m.request {
                SET_MEM_TABLE => {
                    // Room for two regions, whatever the count: keep the ones used.
                    let used = m.payload.get(0..4).map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()));
                    m.payload.truncate((8 + 32 * used as usize).min(m.payload.len()));
                }
                SET_PROTOCOL_FEATURES => {
                    let asked = m.u64_at(0);
                    m.set_u64_at(0, asked & !PROTOCOL_F_BACKEND_REQ);
                }
                SET_BACKEND_REQ_FD => {
                    backend_req = m.fds.pop();
                    if m.flags & NEED_REPLY != 0 {
                        let ack = Message {
                            request: m.request,
                            flags: VERSION | REPLY,
                            payload: 0u64.to_le_bytes().to_vec(),
                            fds: Vec::new(),
                        };
                        ack.write(&to_uml.lock().expect("never poisoned"))?;
                    }
                    continue;
                }
                _ => {}
            }
            m.write(&backend)?;
        }
    })();
    let _ = backend.shutdown(std::net::Shutdown::Both);
    let _ = uml.shutdown(std::net::Shutdown::Both);
    let _ = backend_to_uml.join();
    drop(backend_req);
    result
}

/// Writes all of `bytes`, the descriptors riding with the first part.
fn send_with_fds(sock: &UnixStream, bytes: &[u8], fds: &[RawFd]) -> io::Result<()> {
    if fds.is_empty() {
        return (&*sock).write_all(bytes);
    }
    let mut cmsg = [0u64; 64];
    let fd_bytes = std::mem::size_of_val(fds);
    let mut iov = libc::iovec { iov_base: bytes.as_ptr() as *mut _, iov_len: bytes.len() };
    // SAFETY: the msghdr points at our iovec and control buffer, both alive for the call; the
    // control buffer has room for the header and the descriptors.
    let sent = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(fd_bytes as u32) as usize;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as usize;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c).cast::<RawFd>(), fds.len());
        libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    (&*sock).write_all(&bytes[sent as usize..])
}
