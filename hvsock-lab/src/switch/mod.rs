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
//! One guest cannot take the switch down for the others: a bad control message closes only
//! its device; a guest that sends past its peer's credit gets its connection reset; each
//! guest's queue of packets waiting for its RX buffers is bounded ([`RX_QUEUE_LIMIT`]) — when
//! it is full, the switch stops reading that guest's TX queue and holds back any sender's
//! packet for it (as vhost-vsock stops a guest's TX while replies for it are queued), and
//! reads no more host data for it; host-initiated connections the guest does not answer
//! end after [`CONNECT_TIMEOUT`], or as soon as their host client leaves. Each such decision
//! is logged at debug level (`hvsock lab run -v`).
//!
//! Per guest CID: `vhost-<cid>.sock` (the device, for UML's `virtio_uml.device=`) and
//! `vm<cid>.sock` (the hybrid socket) in the switch's directory.

mod between;
pub(crate) mod device;
#[cfg(any(test, fuzzing))]
mod fake_guest;
#[cfg(fuzzing)]
pub mod fuzzing;
mod host;
mod packet;

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use between::Between;
use device::{Device, EVENT, RX, TX};
pub use host::CONNECT_TIMEOUT;
use host::{HostConn, State, Verdict};
use hvsock::line::{Fed, Line};
use packet::*;

/// The most a guest's queue in the switch holds (payload and headers) before the switch
/// makes senders wait. Honest senders stay within the credit the guest offered; this bounds
/// what a guest that stops taking packets can make the switch keep.
pub const RX_QUEUE_LIMIT: usize = 16 << 20;

/// The longest `CONNECT <port>` line a host connection may send.
const CONNECT_MAX: usize = 64;
/// How long a host connection may take to send its `CONNECT <port>` line.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The device socket UML connects to for guest `cid`.
pub fn vhost_path(dir: &Path, cid: u32) -> PathBuf {
    dir.join(format!("vhost-{cid}.sock"))
}

/// The hybrid socket of guest `cid`: connect here to reach the guest; the guest's connections
/// to the host's port P arrive at `<this path>_P`.
pub fn uds_path(dir: &Path, cid: u32) -> PathBuf {
    dir.join(format!("vm{cid}.sock"))
}

/// How the switch plays the hybrid-vsock host.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Pass a host's half-close to a guest as SHUTDOWN SEND alone (real VMMs send RCV|SEND).
    pub keep_half_close: bool,
    /// Each guest's hybrid socket (`vmN.sock`) takes SOCK_SEQPACKET connections, which reach
    /// the guest's SEQPACKET listeners, instead of SOCK_STREAM ones — the device-wide choice
    /// Firecracker's proposed `vsock_type` makes. A guest's connections to the host follow
    /// their own type either way.
    pub hybrid_seqpacket: bool,
}

/// A running switch; dropping it stops the thread.
pub struct Switch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Switch {
    /// Listens for guests `cids` in `dir` and serves them on a thread of its own.
    pub fn start(dir: &Path, cids: &[u32], options: Options) -> io::Result<Switch> {
        let mut guests = BTreeMap::new();
        for &cid in cids {
            guests.insert(cid as u64, Guest::bind(dir, cid, options.hybrid_seqpacket)?);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("vsock-switch".into()).spawn(move || {
            let mut core = Core::new(guests, options.keep_half_close);
            while !flag.load(Ordering::Relaxed) {
                core.turn(100);
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
    /// `uds` is a SOCK_SEQPACKET listener ([`Options::hybrid_seqpacket`]).
    seqpacket: bool,
    dev: Option<Device>,
    /// A packet from this guest whose destination's queue was full: it goes first, and the
    /// guest's TX queue is not read until it has gone.
    held: Option<Packet>,
    /// This guest's TX queue was left unread (its own queue was full, or a packet is held):
    /// read it again once there is room, without waiting for a kick.
    tx_stalled: bool,
}

impl Guest {
    /// Guest `cid`'s two listening sockets in `dir`.
    fn bind(dir: &Path, cid: u32, seqpacket: bool) -> io::Result<Guest> {
        let vhost = UnixListener::bind(vhost_path(dir, cid))?;
        let uds_path = uds_path(dir, cid);
        let uds = if seqpacket {
            // std's listener only accepts: it serves a SOCK_SEQPACKET one as well.
            UnixListener::from(std::os::fd::OwnedFd::from(hvsock::unix::listen_seqpacket(&uds_path)?))
        } else {
            hvsock::unix::listen(&uds_path)?
        };
        uds.set_nonblocking(true)?;
        Ok(Guest { vhost, uds, uds_path, seqpacket, dev: None, held: None, tx_stalled: false })
    }
}

/// Where a packet from a guest goes.
#[derive(PartialEq, Eq, Clone, Copy)]
enum Dest {
    /// This machine's hybrid side (CID 2 without a VM host, or a connection already open there).
    HybridHost,
    Guest(u64),
    /// No one: the sender gets a reset.
    Nowhere,
}

/// A host connection that has not sent its `CONNECT <port>` line yet.
struct Pending {
    cid: u64,
    uds: UnixStream,
    line: Line,
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
    /// Guest-to-guest connections, (cid, port, cid, port) lowest end first: their credit,
    /// and their ends for teardown.
    between: HashMap<(u64, u32, u64, u32), Between>,
    next_port: u32,
    keep_half_close: bool,
    /// [`RX_QUEUE_LIMIT`]; smaller in tests.
    rx_limit: usize,
    /// Connections or queued packets at the end of the last round.
    busy: bool,
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
    fn new(guests: BTreeMap<u64, Guest>, keep_half_close: bool) -> Core {
        Core {
            guests,
            conns: HashMap::new(),
            pending: HashMap::new(),
            next_pending: 0,
            between: HashMap::new(),
            next_port: 1 << 30,
            keep_half_close,
            rx_limit: RX_QUEUE_LIMIT,
            busy: false,
        }
    }

    /// One round: wait for something to happen (at most `wait_ms`), then handle it.
    fn turn(&mut self, wait_ms: i32) {
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
            let events = if c.wants_read() && self.has_room(c.cid) { libc::POLLIN } else { 0 }
                | if c.wants_write() { libc::POLLOUT } else { 0 };
            // Connecting: no events, but poll reports a host client that hangs up.
            if events != 0 || c.state == State::Connecting {
                add(c.uds.as_raw_fd(), events, Tag::Conn(*key));
            }
        }
        // SAFETY: fds is a valid array of pollfd for the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
        if n < 0 {
            return;
        }
        let ready: Vec<(Tag, i16)> =
            fds.iter().zip(&tags).filter(|(f, _)| f.revents != 0).map(|(f, t)| (*t, f.revents)).collect();
        let mut pending_done = Vec::new();
        for (tag, revents) in ready {
            match tag {
                Tag::VhostListen(cid) => self.accept_device(cid),
                Tag::Control(cid) => self.control(cid),
                Tag::Kick(cid, ring) => self.kick(cid, ring),
                Tag::UdsListen(cid) => self.accept_host(cid),
                Tag::Pending(i) => pending_done.extend(self.read_connect_line(i)),
                Tag::Conn(key) => self.pump(key, revents),
            }
        }
        // Handshakes that finished, failed or timed out leave the pending list.
        let now = Instant::now();
        self.pending.retain(|id, p| {
            let expired = now.duration_since(p.since) > HANDSHAKE_TIMEOUT;
            if expired {
                tracing::debug!(
                    "switch: guest {}: a host connection sent no CONNECT line in time: closed",
                    p.cid
                );
            }
            !pending_done.contains(id) && !expired
        });
        self.expire_connecting(now);
        for g in self.guests.values_mut() {
            if let Some(dev) = &mut g.dev {
                dev.flush_rx();
            }
        }
        // Room may have come back for a guest whose sending was stopped.
        let stalled: Vec<u64> = self.guests.iter().filter(|(_, g)| g.tx_stalled).map(|(&c, _)| c).collect();
        for cid in stalled {
            self.drain_tx(cid);
        }
        self.settle();
    }

    /// After a burst, gives the memory its packets took back to the system: glibc keeps freed
    /// heap for reuse, and a lab's switch may sit idle for long after a soak.
    fn settle(&mut self) {
        let busy = !self.conns.is_empty()
            || self.guests.values().any(|g| g.dev.as_ref().is_some_and(|d| d.queued_bytes() > 0));
        if self.busy && !busy {
            #[cfg(target_env = "gnu")]
            // SAFETY: malloc_trim only releases free heap memory; no pointer is involved.
            unsafe {
                libc::malloc_trim(0);
            }
        }
        self.busy = busy;
    }

    /// What guest `cid`'s queue in the switch takes before it is full ([`RX_QUEUE_LIMIT`]).
    fn room(&self, cid: u64) -> usize {
        self.guests
            .get(&cid)
            .and_then(|g| g.dev.as_ref())
            .map_or(0, |d| self.rx_limit.saturating_sub(d.queued_bytes()))
    }

    fn has_room(&self, cid: u64) -> bool {
        self.room(cid) > 0
    }

    /// Host-initiated connections the guest has not answered in time: the host client is
    /// closed, the guest told to forget the request.
    fn expire_connecting(&mut self, now: Instant) {
        let late: Vec<ConnKey> =
            self.conns.iter().filter(|(_, c)| c.connect_expired(now)).map(|(k, _)| *k).collect();
        for key in late {
            tracing::debug!(
                "switch: guest {} did not answer a host connection to its port {} within {:?}: closed",
                key.0,
                key.1,
                CONNECT_TIMEOUT
            );
            self.abort(key);
        }
    }

    /// Drops a host connection, with a reset for the guest.
    fn abort(&mut self, key: ConnKey) {
        if let Some(mut conn) = self.conns.remove(&key) {
            let mut out = Vec::new();
            conn.abort(&mut out);
            for p in out {
                self.send(p);
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
        let handled = dev.handle_control();
        if handled.is_ok() && dev.has_stopped_tx() {
            self.drain_tx(cid);
        }
        if let Err(e) = handled {
            if e.kind() == io::ErrorKind::InvalidData {
                tracing::debug!("switch: guest {cid}'s device: {e}: closed");
            } else {
                // Powered off: what it queued before going still goes (its memory is mapped
                // until the device is dropped), as the last bytes of a server that answered
                // and exited at once.
                self.drain_tx(cid);
            }
            self.guest_gone(cid);
        }
    }

    fn kick(&mut self, cid: u64, ring: usize) {
        let Some(dev) = self.guests.get_mut(&cid).and_then(|g| g.dev.as_mut()) else { return };
        dev.drain_kick(ring);
        match ring {
            TX => self.drain_tx(cid),
            RX => dev.flush_rx(),
            // Event-queue buffers are for transport resets, which the switch never sends.
            _ => {}
        }
    }

    /// Routes what guest `cid` has sent, as far as there is room where it goes.
    fn drain_tx(&mut self, cid: u64) {
        loop {
            // Replies to a guest go to its own queue: while that is full, it waits.
            let own_room = self.has_room(cid);
            let Some(g) = self.guests.get_mut(&cid) else { return };
            let Some(dev) = g.dev.as_mut() else { return };
            let pkt = match g.held.take() {
                Some(p) => p,
                None if !own_room => {
                    if !g.tx_stalled {
                        tracing::debug!(
                            "switch: guest {cid} takes no packets and its queue is full: its sending waits"
                        );
                    }
                    g.tx_stalled = true;
                    break;
                }
                None => match dev.pop_tx() {
                    Some(p) => p,
                    None => {
                        g.tx_stalled = false;
                        break;
                    }
                },
            };
            if let Dest::Guest(dst) = self.dest(cid, &pkt.hdr) {
                if !self.has_room(dst) {
                    let g = self.guests.get_mut(&cid).expect("known guest");
                    if !g.tx_stalled {
                        tracing::debug!("switch: guest {dst} takes no packets and its queue is full: guest {cid}'s sending waits");
                    }
                    g.held = Some(pkt);
                    g.tx_stalled = true;
                    break;
                }
            }
            self.route(cid, pkt);
        }
        if let Some(dev) = self.guests.get_mut(&cid).and_then(|g| g.dev.as_mut()) {
            dev.tx_done();
        }
    }

    fn send(&mut self, pkt: Packet) {
        if let Some(dev) = self.guests.get_mut(&pkt.hdr.dst_cid).and_then(|g| g.dev.as_mut()) {
            dev.queue(pkt);
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

    /// Where a packet from guest `from` goes. CID 2 is this machine's hybrid side, unless a VM
    /// host (a guest with CID 2) is in the lab: then only the hybrid connections already open
    /// stay here.
    fn dest(&self, from: u64, h: &Header) -> Dest {
        if h.dst_cid == 2
            && (!self.guests.contains_key(&2) || self.conns.contains_key(&(from, h.src_port, h.dst_port)))
        {
            Dest::HybridHost
        } else if h.dst_cid != from && self.guests.get(&h.dst_cid).is_some_and(|g| g.dev.is_some()) {
            Dest::Guest(h.dst_cid)
        } else {
            Dest::Nowhere
        }
    }

    fn route(&mut self, from: u64, pkt: Packet) {
        let h = pkt.hdr;
        if h.src_cid != from {
            tracing::debug!("switch: guest {from} sent a packet as CID {}: dropped", h.src_cid);
            return;
        }
        if h.type_ != TYPE_STREAM && h.type_ != TYPE_SEQPACKET {
            tracing::debug!(
                "switch: guest {from} port {}: socket type {} is not offered: reset",
                h.src_port,
                h.type_
            );
            return self.reset_for(&pkt);
        }
        match self.dest(from, &h) {
            Dest::HybridHost => self.towards_host(from, pkt),
            Dest::Guest(_) => {
                let key = between::key(&h);
                if h.op == OP_REQUEST {
                    // A new connection, perhaps on the ports of an old one: counters from 0.
                    self.between.insert(key, Between::new(h.type_));
                }
                let conn = self.between.get_mut(&key);
                let Some(conn) = conn else {
                    // Not a connection we carried: the guests sort it out (a reset is answered
                    // with nothing, anything else with a reset), as on a wire.
                    return self.send(pkt);
                };
                if let Err(credit) = conn.pass(&pkt) {
                    tracing::debug!(
                        "switch: guest {from} port {} sent {} bytes to {}:{} past its credit of {credit}: reset",
                        h.src_port,
                        pkt.data.len(),
                        h.dst_cid,
                        h.dst_port
                    );
                    self.between.remove(&key);
                    self.reset_for(&pkt);
                    self.send(Packet::control(Header { op: OP_RST, flags: 0, ..h }));
                    return;
                }
                if h.op == OP_RST {
                    self.between.remove(&key);
                }
                self.send(pkt);
            }
            Dest::Nowhere => {
                if h.op != OP_RST {
                    tracing::debug!(
                        "switch: guest {from} port {}: no guest {} to reach: reset",
                        h.src_port,
                        h.dst_cid
                    );
                }
                self.reset_for(&pkt);
            }
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
            // The VMM's own naming (hybrid vsock's `UDS_PORT`), byte for byte: a path that is
            // not UTF-8 stays the path it was.
            let path = hvsock::hybrid::listen_path(&self.guests[&cid].uds_path, pkt.hdr.dst_port);
            // The host's listener must be of the guest socket's type: a SOCK_STREAM one
            // refuses a SOCK_SEQPACKET connect (EPROTOTYPE), and the guest gets a reset.
            let seqpacket = pkt.hdr.type_ == TYPE_SEQPACKET;
            match connect_now(&path, seqpacket) {
                Ok(uds) => {
                    let mut conn =
                        HostConn::new(cid, pkt.hdr.src_port, pkt.hdr.dst_port, uds, State::Established);
                    if seqpacket {
                        conn = conn.seqpacket();
                    }
                    conn.keep_half_close = self.keep_half_close;
                    let response = conn.header(OP_RESPONSE);
                    out.push(Packet::control(response));
                    conn.on_guest_packet(
                        Packet::control(Header { op: OP_CREDIT_UPDATE, ..pkt.hdr }),
                        &mut out,
                    );
                    self.conns.insert(key, conn);
                }
                Err(e) => {
                    tracing::debug!(
                        "switch: guest {cid} connecting to the host's port {}: {}: {e}: reset",
                        pkt.hdr.dst_port,
                        path.display()
                    );
                    self.reset_for(&pkt);
                }
            }
        } else {
            self.reset_for(&pkt);
        }
        for p in out {
            self.send(p);
        }
    }

    fn pump(&mut self, key: ConnKey, revents: i16) {
        let room = self.room(key.0);
        let Some(conn) = self.conns.get_mut(&key) else { return };
        if conn.state == State::Connecting && revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            tracing::debug!(
                "switch: the host client connecting to guest {} port {} left before the guest answered",
                key.0,
                key.1
            );
            return self.abort(key);
        }
        let mut out = Vec::new();
        if let Verdict::Close = conn.pump(room, &mut out) {
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
                self.pending.insert(
                    self.next_pending,
                    Pending { cid, uds, line: Line::new(CONNECT_MAX), since: Instant::now() },
                );
            }
        }
    }

    /// Reads the host's `CONNECT <port>\n`; `Some(i)` when entry `i` is finished with.
    fn read_connect_line(&mut self, i: u64) -> Option<u64> {
        let p = self.pending.get_mut(&i)?; // gone with its guest earlier in this round
        let mut buf = [0u8; 512];
        let n = match p.uds.read(&mut buf) {
            Ok(0) => return Some(i),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(_) => return Some(i),
        };
        let (line, early) = match p.line.feed(&buf[..n]) {
            Ok(Fed::More) => return None,
            Ok(Fed::Done(taken)) => (p.line.text(), buf[taken..n].to_vec()),
            Err(_) => {
                tracing::debug!(
                    "switch: guest {}: a host connection sent no line in {CONNECT_MAX} bytes: closed",
                    p.cid
                );
                return Some(i);
            }
        };
        let port = line.strip_prefix("CONNECT ").and_then(|n| n.trim().parse::<u32>().ok());
        let (Some(port), true) = (port, self.guests[&p.cid].dev.is_some()) else {
            // Garbled, or no guest behind it: close, as Firecracker does.
            tracing::debug!(
                "switch: guest {}: host connection sent `{}`: closed",
                p.cid,
                hvsock::Printable::new(&line)
            );
            return Some(i);
        };
        let cid = p.cid;
        let seqpacket = self.guests[&cid].seqpacket;
        if seqpacket && !early.is_empty() {
            // The CONNECT line is a message of its own on a SOCK_SEQPACKET socket.
            tracing::debug!("switch: guest {cid}: a host connection sent more than its CONNECT line in one message: closed");
            return Some(i);
        }
        let uds = p.uds.try_clone().ok()?;
        let host_port = self.next_port;
        self.next_port = self.next_port.wrapping_add(1).max(1 << 30);
        let mut conn = HostConn::new(cid, port, host_port, uds, State::Connecting).with_early(early);
        if seqpacket {
            conn = conn.seqpacket();
        }
        conn.keep_half_close = self.keep_half_close;
        self.send(Packet::control(conn.header(OP_REQUEST)));
        self.conns.insert((cid, port, host_port), conn);
        Some(i)
    }

    /// A guest went away: its host connections close, its guest peers get resets.
    fn guest_gone(&mut self, cid: u64) {
        tracing::debug!("switch: guest {cid} is gone: its connections are reset");
        if let Some(g) = self.guests.get_mut(&cid) {
            g.dev = None;
            g.held = None;
            g.tx_stalled = false;
        }
        // Its packets held back by other guests go nowhere now.
        for g in self.guests.values_mut() {
            if g.held.as_ref().is_some_and(|p| p.hdr.dst_cid == cid) {
                g.held = None;
            }
        }
        // Its host connections end; what they hold for the host is written first, as far as
        // the host takes it now.
        let gone: Vec<ConnKey> = self.conns.keys().copied().filter(|k| k.0 == cid).collect();
        for key in gone {
            if let Some(mut conn) = self.conns.remove(&key) {
                conn.pump(0, &mut Vec::new());
            }
        }
        self.pending.retain(|_, p| p.cid != cid);
        let dead: Vec<_> = self.between.keys().copied().filter(|k| k.0 == cid || k.2 == cid).collect();
        for k in dead {
            let type_ = self.between.remove(&k).map_or(TYPE_STREAM, |b| b.type_);
            let (peer, peer_port, gone_port) = if k.0 == cid { (k.2, k.3, k.1) } else { (k.0, k.1, k.3) };
            self.send(Packet::control(Header {
                src_cid: cid,
                dst_cid: peer,
                src_port: gone_port,
                dst_port: peer_port,
                type_,
                op: OP_RST,
                ..Header::default()
            }));
        }
    }
}

/// Connects to a host listener without ever waiting on it: the switch serves every guest from
/// one thread, and one host listener whose backlog is full must not stall them all. A full
/// backlog (EAGAIN) is a refusal, as nothing listening is: the guest sees a reset and may retry.
fn connect_now(path: &Path, seqpacket: bool) -> io::Result<UnixStream> {
    let socket = if seqpacket {
        hvsock::unix::seqpacket()?
    } else {
        socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?
    };
    socket.set_nonblocking(true)?;
    socket.connect(&socket2::SockAddr::unix(path)?)?;
    Ok(UnixStream::from(std::os::fd::OwnedFd::from(socket)))
}

#[cfg(test)]
mod tests {
    use super::fake_guest::Rig;
    use super::*;
    use std::io::Write;

    fn pkt(from: (u64, u32), to: (u64, u32), op: u16, buf_alloc: u32, data: Vec<u8>) -> Packet {
        Packet::stream(from, to, op, buf_alloc, 0, data)
    }

    const A: (u64, u32) = (3, 1025);
    const B: (u64, u32) = (4, 5000);

    /// A guest that sends its last bytes and powers off at once (its device closes in the
    /// same round as its last kick): the bytes still reach the host, then end of file.
    #[test]
    fn a_guests_last_bytes_before_power_off_reach_the_host() {
        let mut b = Rig::new(&[3]);
        let listener = std::os::unix::net::UnixListener::bind(b.dir.join("vm3.sock_5000")).unwrap();
        b.transmit(3, pkt(A, (2, 5000), OP_REQUEST, 4096, vec![]));
        let (mut host, _) = listener.accept().unwrap();
        b.guest(3).transmit(&pkt(A, (2, 5000), OP_RW, 4096, b"last words".to_vec()));
        drop(b.guests.remove(&3)); // power-off: the control socket closes
        b.core.turn(100);
        let mut got = Vec::new();
        host.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"last words");
    }

    /// The host client of a connection the guest has not answered goes away: the switch
    /// forgets the connection and tells the guest, instead of keeping it for ever.
    #[test]
    fn a_host_client_leaving_before_the_guest_answers_is_noticed() {
        let mut b = Rig::new(&[3]);
        let host = b.host_connects(3, 5000);
        let got = b.receive(3, 1);
        assert_eq!(got.iter().map(|p| p.hdr.op).collect::<Vec<_>>(), [OP_REQUEST]);
        drop(host);
        b.core.turn(100);
        assert!(b.core.conns.is_empty(), "the connection is forgotten");
        let got = b.receive(3, 1);
        assert_eq!(got.iter().map(|p| (p.hdr.op, p.hdr.dst_port)).collect::<Vec<_>>(), [(OP_RST, 5000)]);
    }

    /// A guest that never answers a host's connection: after the deadline the host client
    /// is closed and the guest told to forget the request.
    #[test]
    fn a_host_connection_the_guest_never_answers_ends_at_the_deadline() {
        let mut b = Rig::new(&[3]);
        let mut host = b.host_connects(3, 5000);
        b.core.turn(100);
        assert_eq!(b.core.conns.len(), 1, "still waiting for the guest");
        b.core.expire_connecting(Instant::now() + CONNECT_TIMEOUT + Duration::from_millis(1));
        assert!(b.core.conns.is_empty());
        let mut rest = Vec::new();
        host.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "the host client sees end of file, no OK");
        let ops: Vec<u16> = b.receive(3, 2).iter().map(|p| p.hdr.op).collect();
        assert_eq!(ops, [OP_REQUEST, OP_RST]);
    }

    /// A guest that stops its TX queue (GET_VRING_BASE) before the switch has taken what it
    /// kicked for: that still reaches its peer.
    #[test]
    fn what_a_guest_sent_before_stopping_its_queue_still_goes() {
        let mut b = Rig::new(&[3, 4]);
        b.transmit(3, pkt(A, B, OP_REQUEST, 4096, vec![]));
        b.transmit(4, pkt(B, A, OP_RESPONSE, 4096, vec![]));
        b.guest(3).transmit(&pkt(A, B, OP_RW, 4096, vec![7; 600]));
        b.guest(3).stop_queue(TX);
        b.core.control(3);
        let to_b: Vec<(u16, usize)> = b.receive(4, 8).iter().map(|p| (p.hdr.op, p.data.len())).collect();
        assert_eq!(to_b, [(OP_REQUEST, 0), (OP_RW, 600)]);
    }

    /// A guest that sends another guest more than it offered: the connection is reset at
    /// both ends and the excess never reaches the receiver.
    #[test]
    fn a_guest_sending_past_its_peers_credit_is_reset() {
        let mut b = Rig::new(&[3, 4]);
        b.transmit(3, pkt(A, B, OP_REQUEST, 4096, vec![]));
        b.transmit(4, pkt(B, A, OP_RESPONSE, 1000, vec![]));
        b.transmit(3, pkt(A, B, OP_RW, 4096, vec![1; 600]));
        b.transmit(3, pkt(A, B, OP_RW, 4096, vec![2; 401]));
        let to_b: Vec<(u16, usize)> = b.receive(4, 8).iter().map(|p| (p.hdr.op, p.data.len())).collect();
        assert_eq!(to_b, [(OP_REQUEST, 0), (OP_RW, 600), (OP_RST, 0)]);
        let to_a: Vec<u16> = b.receive(3, 8).iter().map(|p| p.hdr.op).collect();
        assert_eq!(to_a, [OP_RESPONSE, OP_RST]);
        assert!(b.core.between.is_empty());
    }

    /// A guest that posts no RX buffers (while offering plenty of credit): the switch keeps
    /// at most its limit (and one packet) for it, holds the sender back instead of growing,
    /// and once buffers come everything arrives in order, nothing lost.
    #[test]
    fn a_guest_that_takes_no_packets_holds_senders_back_without_growing() {
        let mut b = Rig::new(&[3, 4]);
        b.core.rx_limit = 4096;
        b.transmit(3, pkt(A, B, OP_REQUEST, 4096, vec![]));
        b.transmit(4, pkt(B, A, OP_RESPONSE, 1 << 30, vec![]));
        let sent: Vec<u8> = (0..6000u32).map(|i| (i % 253) as u8).collect();
        for chunk in sent.chunks(1000) {
            b.guest(3).transmit(&pkt(A, B, OP_RW, 4096, chunk.to_vec()));
        }
        b.core.kick(3, TX);
        assert!(b.queued(4) <= 4096 + 44 + 1000, "queue for 4 bounded: {}", b.queued(4));
        assert!(b.core.guests[&3].tx_stalled, "guest 3's sending waits");
        let mut got = Vec::new();
        for _ in 0..10 {
            got.extend(b.receive(4, 4));
            b.core.turn(100);
        }
        assert_eq!(got[0].hdr.op, OP_REQUEST);
        let data: Vec<u8> = got[1..].iter().flat_map(|p| p.data.clone()).collect();
        assert_eq!(data, sent);
        assert!(!b.core.guests[&3].tx_stalled);
        assert_eq!(b.queued(4), 0);
    }

    /// Host data for a guest that posts no RX buffers: the switch stops reading the host's
    /// socket when the guest's queue is full (the host's writes block), and resumes after.
    #[test]
    fn host_data_waits_for_a_guest_that_takes_no_packets() {
        let mut b = Rig::new(&[3]);
        b.core.rx_limit = 4096;
        let mut host = b.host_connects(3, 5000);
        let request = b.receive(3, 1).pop().unwrap();
        let (h, g) = ((request.hdr.src_cid, request.hdr.src_port), (3, 5000));
        b.transmit(3, pkt(g, h, OP_RESPONSE, 1 << 30, vec![]));
        let sent: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let writer = {
            let sent = sent.clone();
            let mut host = host.try_clone().unwrap();
            std::thread::spawn(move || host.write_all(&sent).unwrap())
        };
        for _ in 0..5 {
            b.core.turn(100);
        }
        assert!(b.queued(3) <= 4096 + 44 + 65536, "queue for 3 bounded: {}", b.queued(3));
        let mut data = Vec::new();
        while data.len() < sent.len() {
            for p in b.receive(3, 16) {
                if p.hdr.op == OP_RW {
                    data.extend(p.data);
                }
            }
            b.core.turn(100);
        }
        writer.join().unwrap();
        assert_eq!(data, sent);
        let mut ok = [0u8; 14];
        host.read_exact(&mut ok).unwrap();
        assert_eq!(&ok, b"OK 1073741824\n");
    }
}
