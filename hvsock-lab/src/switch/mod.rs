//! The lab's vsock switch: a vhost-user virtio-vsock backend for any number of UML guests, on
//! one thread.
//!
//! - guest <-> guest: packets pass through as on a wire (the guests' own credit flow control
//!   holds), split to the receiver's RX buffers;
//! - guest -> host (CID 2, port P): delivered to the Unix socket `<uds>_<P>` (reset when
//!   nothing listens there) — or, when the lab has a VM host (a guest whose CID is 2, as a
//!   KVM/vhost-vsock host is), to that guest like any other;
//! - host -> guest: connect to `<uds>`, send `CONNECT <port>\n`, read `OK <host port>\n`, then
//!   the stream — the hybrid-vsock convention of Firecracker and Cloud Hypervisor;
//! - a guest that goes away takes its connections with it: its peers get resets.
//!
//! Per guest CID: `vhost-<cid>.sock` (the device, for UML's `virtio_uml.device=`) and
//! `vm<cid>.sock` (the hybrid socket) in the switch's directory.

pub(crate) mod device;
mod host;
mod packet;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use device::{Device, EVENT, RX, TX};
use host::{HostConn, State, Verdict};
use packet::*;

/// The device socket UML connects to for guest `cid`.
pub fn vhost_path(dir: &Path, cid: u32) -> PathBuf {
    dir.join(format!("vhost-{cid}.sock"))
}

/// The hybrid socket of guest `cid`: connect here to reach the guest; the guest's connections
/// to the host's port P arrive at `<this path>_P`.
pub fn uds_path(dir: &Path, cid: u32) -> PathBuf {
    dir.join(format!("vm{cid}.sock"))
}

/// A running switch; dropping it stops the thread.
pub struct Switch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Switch {
    /// Listens for guests `cids` in `dir` and serves them on a thread of its own. A host's
    /// half-close reaches a guest as real VMMs send it (SHUTDOWN RCV|SEND: the guest can
    /// send no more), or with `keep_half_close` as SHUTDOWN SEND alone.
    pub fn start(dir: &Path, cids: &[u32], keep_half_close: bool) -> io::Result<Switch> {
        let mut guests = BTreeMap::new();
        for &cid in cids {
            let vhost = UnixListener::bind(vhost_path(dir, cid))?;
            let uds_path = uds_path(dir, cid);
            let uds = UnixListener::bind(&uds_path)?;
            uds.set_nonblocking(true)?;
            guests.insert(cid as u64, Guest { vhost, uds, uds_path, dev: None });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("vsock-switch".into()).spawn(move || {
            let mut core = Core {
                guests,
                conns: HashMap::new(),
                pending: HashMap::new(),
                next_pending: 0,
                between: HashSet::new(),
                next_port: 1 << 30,
                keep_half_close,
            };
            while !flag.load(Ordering::Relaxed) {
                core.turn();
            }
        })?;
        Ok(Switch { stop, thread: Some(thread) })
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Guest {
    vhost: UnixListener,
    uds: UnixListener,
    uds_path: PathBuf,
    dev: Option<Device>,
}

/// A host connection that has not sent its `CONNECT <port>` line yet.
struct Pending {
    cid: u64,
    uds: UnixStream,
    line: Vec<u8>,
    since: Instant,
}

/// (guest CID, guest port, host port)
type ConnKey = (u64, u32, u32);

struct Core {
    guests: BTreeMap<u64, Guest>,
    conns: HashMap<ConnKey, HostConn>,
    /// Keyed by a stable id: a guest leaving mid-round removes entries that later poll
    /// results of the same round still name.
    pending: HashMap<u64, Pending>,
    next_pending: u64,
    /// Guest-to-guest connections, (cid, port, cid, port) lowest end first, for teardown.
    between: HashSet<(u64, u32, u64, u32)>,
    next_port: u32,
    keep_half_close: bool,
}

#[derive(Clone, Copy)]
enum Tag {
    VhostListen(u64),
    Control(u64),
    Kick(u64, usize),
    UdsListen(u64),
    Pending(u64),
    Conn(ConnKey),
}

impl Core {
    /// One round: wait for something to happen (at most 100 ms), then handle it.
    fn turn(&mut self) {
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut tags: Vec<Tag> = Vec::new();
        let mut add = |fd: RawFd, events: i16, tag: Tag| {
            fds.push(libc::pollfd { fd, events, revents: 0 });
            tags.push(tag);
        };
        for (&cid, g) in &self.guests {
            add(g.uds.as_raw_fd(), libc::POLLIN, Tag::UdsListen(cid));
            match &g.dev {
                None => add(g.vhost.as_raw_fd(), libc::POLLIN, Tag::VhostListen(cid)),
                Some(dev) => {
                    add(dev.ctl_fd(), libc::POLLIN, Tag::Control(cid));
                    for ring in [RX, TX, EVENT] {
                        if let Some(fd) = dev.kick_fd(ring) {
                            add(fd, libc::POLLIN, Tag::Kick(cid, ring));
                        }
                    }
                }
            }
        }
        for (&id, p) in &self.pending {
            add(p.uds.as_raw_fd(), libc::POLLIN, Tag::Pending(id));
        }
        for (key, c) in &self.conns {
            let events = if c.wants_read() { libc::POLLIN } else { 0 }
                | if c.wants_write() { libc::POLLOUT } else { 0 };
            if events != 0 {
                add(c.uds.as_raw_fd(), events, Tag::Conn(*key));
            }
        }
        // SAFETY: fds is a valid array of pollfd for the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
        if n < 0 {
            return;
        }
        let ready: Vec<(Tag, i16)> =
            fds.iter().zip(&tags).filter(|(f, _)| f.revents != 0).map(|(f, t)| (*t, f.revents)).collect();
        let mut pending_done = Vec::new();
        for (tag, _) in ready {
            match tag {
                Tag::VhostListen(cid) => self.accept_device(cid),
                Tag::Control(cid) => self.control(cid),
                Tag::Kick(cid, ring) => self.kick(cid, ring),
                Tag::UdsListen(cid) => self.accept_host(cid),
                Tag::Pending(i) => pending_done.extend(self.read_connect_line(i)),
                Tag::Conn(key) => self.pump(key),
            }
        }
        // Handshakes that finished, failed or timed out leave the pending list.
        let now = Instant::now();
        self.pending.retain(|id, p| {
            !pending_done.contains(id) && now.duration_since(p.since) <= Duration::from_secs(10)
        });
        for g in self.guests.values_mut() {
            if let Some(dev) = &mut g.dev {
                dev.flush_rx();
            }
        }
    }

    fn accept_device(&mut self, cid: u64) {
        let g = self.guests.get_mut(&cid).expect("known guest");
        if let Ok((ctl, _)) = g.vhost.accept() {
            g.dev = Some(Device::new(cid, ctl));
        }
    }

    fn control(&mut self, cid: u64) {
        let dev = self.guests.get_mut(&cid).and_then(|g| g.dev.as_mut()).expect("known device");
        if dev.handle_control().is_err() {
            self.guest_gone(cid);
        }
    }

    fn kick(&mut self, cid: u64, ring: usize) {
        let Some(dev) = self.guests.get_mut(&cid).and_then(|g| g.dev.as_mut()) else { return };
        dev.drain_kick(ring);
        match ring {
            TX => {
                for pkt in dev.take_tx() {
                    self.route(cid, pkt);
                }
            }
            RX => dev.flush_rx(),
            // Event-queue buffers are for transport resets, which the switch never sends.
            _ => {}
        }
    }

    fn send(&mut self, pkt: Packet) {
        if let Some(dev) = self.guests.get_mut(&pkt.hdr.dst_cid).and_then(|g| g.dev.as_mut()) {
            dev.rx_pending.push_back(pkt);
        }
    }

    /// A reset for `pkt`'s sender, as if from its destination.
    fn reset_for(&mut self, pkt: &Packet) {
        if pkt.hdr.op == OP_RST {
            return;
        }
        let h = &pkt.hdr;
        self.send(Packet::control(Header {
            src_cid: h.dst_cid,
            dst_cid: h.src_cid,
            src_port: h.dst_port,
            dst_port: h.src_port,
            type_: h.type_,
            op: OP_RST,
            ..Header::default()
        }));
    }

    fn route(&mut self, from: u64, pkt: Packet) {
        if pkt.hdr.src_cid != from {
            return; // a guest may only speak for itself
        }
        if pkt.hdr.type_ != TYPE_STREAM {
            return self.reset_for(&pkt);
        }
        let h = &pkt.hdr;
        // CID 2 is this machine's hybrid side, unless a VM host (a guest with CID 2) is in the
        // lab: then only the hybrid connections already open stay here.
        let to_hybrid_host = h.dst_cid == 2
            && (!self.guests.contains_key(&2) || self.conns.contains_key(&(from, h.src_port, h.dst_port)));
        match pkt.hdr.dst_cid {
            _ if to_hybrid_host => self.towards_host(from, pkt),
            dst if dst != from && self.guests.get(&dst).is_some_and(|g| g.dev.is_some()) => {
                let h = &pkt.hdr;
                let key = if (h.src_cid, h.src_port) < (h.dst_cid, h.dst_port) {
                    (h.src_cid, h.src_port, h.dst_cid, h.dst_port)
                } else {
                    (h.dst_cid, h.dst_port, h.src_cid, h.src_port)
                };
                match h.op {
                    OP_REQUEST => {
                        self.between.insert(key);
                    }
                    OP_RST => {
                        self.between.remove(&key);
                    }
                    _ => {}
                }
                self.send(pkt);
            }
            _ => self.reset_for(&pkt),
        }
    }

    fn towards_host(&mut self, cid: u64, pkt: Packet) {
        let key = (cid, pkt.hdr.src_port, pkt.hdr.dst_port);
        let mut out = Vec::new();
        if let Some(conn) = self.conns.get_mut(&key) {
            if let Verdict::Close = conn.on_guest_packet(pkt, &mut out) {
                self.conns.remove(&key);
            }
        } else if pkt.hdr.op == OP_REQUEST {
            let path = format!("{}_{}", self.guests[&cid].uds_path.display(), pkt.hdr.dst_port);
            match connect_now(Path::new(&path)) {
                Ok(uds) => {
                    let mut conn =
                        HostConn::new(cid, pkt.hdr.src_port, pkt.hdr.dst_port, uds, State::Established);
                    conn.keep_half_close = self.keep_half_close;
                    let response = conn.header(OP_RESPONSE);
                    out.push(Packet::control(response));
                    conn.on_guest_packet(
                        Packet::control(Header { op: OP_CREDIT_UPDATE, ..pkt.hdr }),
                        &mut out,
                    );
                    self.conns.insert(key, conn);
                }
                Err(_) => self.reset_for(&pkt),
            }
        } else {
            self.reset_for(&pkt);
        }
        for p in out {
            self.send(p);
        }
    }

    fn pump(&mut self, key: ConnKey) {
        let Some(conn) = self.conns.get_mut(&key) else { return };
        let mut out = Vec::new();
        if let Verdict::Close = conn.pump(&mut out) {
            self.conns.remove(&key);
        }
        for p in out {
            self.send(p);
        }
    }

    fn accept_host(&mut self, cid: u64) {
        let g = &self.guests[&cid];
        while let Ok((uds, _)) = g.uds.accept() {
            if uds.set_nonblocking(true).is_ok() {
                self.next_pending += 1;
                self.pending
                    .insert(self.next_pending, Pending { cid, uds, line: Vec::new(), since: Instant::now() });
            }
        }
    }

    /// Reads the host's `CONNECT <port>\n`; `Some(i)` when entry `i` is finished with.
    fn read_connect_line(&mut self, i: u64) -> Option<u64> {
        let p = self.pending.get_mut(&i)?; // gone with its guest earlier in this round
        let mut buf = [0u8; 512];
        match p.uds.read(&mut buf) {
            Ok(0) => return Some(i),
            Ok(n) => p.line.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(_) => return Some(i),
        }
        let Some(end) = p.line.iter().position(|&b| b == b'\n') else {
            return (p.line.len() > 64).then_some(i); // no line in 64 bytes: garbage
        };
        let line = String::from_utf8_lossy(&p.line[..end]).trim_end_matches('\r').to_string();
        let early = p.line[end + 1..].to_vec();
        let port = line.strip_prefix("CONNECT ").and_then(|n| n.trim().parse::<u32>().ok());
        let (Some(port), true) = (port, self.guests[&p.cid].dev.is_some()) else {
            return Some(i); // garbled, or no guest behind it: close, as Firecracker does
        };
        let cid = p.cid;
        let uds = p.uds.try_clone().ok()?;
        let host_port = self.next_port;
        self.next_port = self.next_port.wrapping_add(1).max(1 << 30);
        let mut conn = HostConn::new(cid, port, host_port, uds, State::Connecting).with_early(early);
        conn.keep_half_close = self.keep_half_close;
        self.send(Packet::control(conn.header(OP_REQUEST)));
        self.conns.insert((cid, port, host_port), conn);
        Some(i)
    }

    /// A guest went away: its host connections close, its guest peers get resets.
    fn guest_gone(&mut self, cid: u64) {
        if let Some(g) = self.guests.get_mut(&cid) {
            g.dev = None;
        }
        self.conns.retain(|k, _| k.0 != cid);
        self.pending.retain(|_, p| p.cid != cid);
        let dead: Vec<_> = self.between.iter().copied().filter(|k| k.0 == cid || k.2 == cid).collect();
        for k in dead {
            self.between.remove(&k);
            let (peer, peer_port, gone_port) = if k.0 == cid { (k.2, k.3, k.1) } else { (k.0, k.1, k.3) };
            self.send(Packet::control(Header {
                src_cid: cid,
                dst_cid: peer,
                src_port: gone_port,
                dst_port: peer_port,
                type_: TYPE_STREAM,
                op: OP_RST,
                ..Header::default()
            }));
        }
    }
}

/// Connects to a host listener without ever waiting on it: the switch serves every guest from
/// one thread, and one host listener whose backlog is full must not stall them all. A full
/// backlog (EAGAIN) is a refusal, as nothing listening is: the guest sees a reset and may retry.
fn connect_now(path: &Path) -> io::Result<UnixStream> {
    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.connect(&socket2::SockAddr::unix(path)?)?;
    Ok(UnixStream::from(std::os::fd::OwnedFd::from(socket)))
}
