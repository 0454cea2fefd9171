//! One guest's virtio-vsock device, as seen by its vhost-user frontend (the UML kernel).
//!
//! We answer the handful of vhost-user control messages ourselves: rust-vmm's `vhost` crate
//! rejects UML 6.1's SET_MEM_TABLE (its payload always has room for two regions). We offer the
//! BACKEND_REQ protocol feature (UML only wires the device's interrupt then) and keep the pipe
//! it hands over open for the whole session, and CONFIG (the guest reads its CID from it).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryMmap};

use super::packet::Packet;

const GET_FEATURES: u32 = 1;
const SET_MEM_TABLE: u32 = 5;
const SET_VRING_NUM: u32 = 8;
const SET_VRING_ADDR: u32 = 9;
const SET_VRING_BASE: u32 = 10;
const GET_VRING_BASE: u32 = 11;
const SET_VRING_KICK: u32 = 12;
const SET_VRING_CALL: u32 = 13;
const GET_PROTOCOL_FEATURES: u32 = 15;
const GET_QUEUE_NUM: u32 = 17;
const SET_BACKEND_REQ_FD: u32 = 21;
const GET_CONFIG: u32 = 24;

const VERSION: u32 = 0x1;
const REPLY: u32 = 0x4;
const F_VERSION_1: u64 = 1 << 32;
const F_PROTOCOL_FEATURES: u64 = 1 << 30;
/// VIRTIO_VSOCK_F_SEQPACKET: SOCK_SEQPACKET connections (guests, and the hybrid host).
const F_SEQPACKET: u64 = 1 << 1;
const PROTOCOL_F_BACKEND_REQ: u64 = 1 << 5;
const PROTOCOL_F_CONFIG: u64 = 1 << 9;
const VRING_NOFD: u64 = 0x100;

/// Regions a SET_MEM_TABLE may carry (vhost-user's own limit).
const MAX_REGIONS: usize = 8;
/// The device's config space: virtio_vsock_config is 8 bytes; no frontend asks past a page.
const CONFIG_SPACE: usize = 256;

/// A control message the device will not act on: the device closes, the switch goes on.
fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("bad vhost-user message: {what}"))
}

pub const RX: usize = 0;
pub const TX: usize = 1;
pub const EVENT: usize = 2;

#[derive(Default)]
struct Ring {
    size: u16,
    desc: u64,
    avail: u64,
    used: u64,
    base: u16,
    kick: Option<File>,
    call: Option<File>,
    queue: Option<Queue>,
}

struct Region {
    guest: u64,
    user: u64,
    size: u64,
}

/// A guest's device: control socket, memory, queues, and the packets waiting for its RX queue.
pub struct Device {
    pub cid: u64,
    ctl: UnixStream,
    mem: Option<GuestMemoryMmap>,
    regions: Vec<Region>,
    rings: [Ring; 3],
    /// UML drops the device when this pipe closes: held, never used.
    _backend_req: Option<OwnedFd>,
    /// Packets for this guest that its RX queue has had no room for yet.
    rx_pending: VecDeque<Packet>,
    /// What `rx_pending` holds, counting each packet's header: the figure the switch bounds.
    rx_bytes: usize,
    /// Payload bytes of the front packet already written to earlier RX buffers.
    rx_front_sent: usize,
    /// Chains taken from the TX queue since the guest was last told.
    tx_used: bool,
    /// Packets the guest had sent when it stopped its TX queue, not yet routed.
    tx_stopped: VecDeque<Packet>,
}

impl Device {
    pub fn new(cid: u64, ctl: UnixStream) -> Device {
        Device {
            cid,
            ctl,
            mem: None,
            regions: Vec::new(),
            rings: Default::default(),
            _backend_req: None,
            rx_pending: VecDeque::new(),
            rx_bytes: 0,
            rx_front_sent: 0,
            tx_used: false,
            tx_stopped: VecDeque::new(),
        }
    }

    /// Queues a packet for the guest's RX buffers.
    pub fn queue(&mut self, pkt: Packet) {
        self.rx_bytes += pkt.queued_size();
        self.rx_pending.push_back(pkt);
    }

    /// Drops every packet waiting for the guest.
    #[cfg(fuzzing)]
    pub fn clear_rx(&mut self) {
        self.rx_pending.clear();
        (self.rx_bytes, self.rx_front_sent) = (0, 0);
    }

    /// Bytes waiting for the guest's RX buffers, headers included.
    pub fn queued_bytes(&self) -> usize {
        self.rx_bytes
    }

    pub fn ctl_fd(&self) -> RawFd {
        self.ctl.as_raw_fd()
    }

    pub fn kick_fd(&self, ring: usize) -> Option<RawFd> {
        self.rings[ring].kick.as_ref().map(|f| f.as_raw_fd())
    }

    /// Consumes a kick (eventfd counter).
    pub fn drain_kick(&mut self, ring: usize) {
        if let Some(kick) = &mut self.rings[ring].kick {
            let mut n = [0u8; 8];
            let _ = kick.read(&mut n);
        }
    }

    /// One control message; `Err` when the frontend is gone (the guest died or shut down).
    pub fn handle_control(&mut self) -> io::Result<()> {
        let mut hdr = [0u8; 12];
        let fds = recv_with_fds(&self.ctl, &mut hdr)?;
        let request = u32::from_le_bytes(hdr[0..4].try_into().unwrap());
        let size = u32::from_le_bytes(hdr[8..12].try_into().unwrap()) as usize;
        if size > 4096 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "vhost-user payload too large"));
        }
        let mut payload = vec![0u8; size];
        (&self.ctl).read_exact(&mut payload)?;
        let u32_at =
            |at: usize| payload.get(at..at + 4).map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()));
        let u64_at =
            |at: usize| payload.get(at..at + 8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()));
        let mut fds = fds.into_iter();
        match request {
            GET_FEATURES => self.reply_u64(request, F_VERSION_1 | F_PROTOCOL_FEATURES | F_SEQPACKET)?,
            GET_PROTOCOL_FEATURES => self.reply_u64(request, PROTOCOL_F_BACKEND_REQ | PROTOCOL_F_CONFIG)?,
            GET_QUEUE_NUM => self.reply_u64(request, 3)?,
            SET_BACKEND_REQ_FD => self._backend_req = fds.next(),
            SET_MEM_TABLE => {
                // UML sends room for two regions and says how many it filled.
                let n = u32_at(0) as usize;
                if n == 0 || n > MAX_REGIONS || payload.len() < 8 + 32 * n {
                    return Err(bad(format!("SET_MEM_TABLE with {n} regions in {} bytes", payload.len())));
                }
                let mut ranges = Vec::new();
                self.regions.clear();
                for i in 0..n {
                    let at = 8 + i * 32;
                    let (guest, size, user, offset) =
                        (u64_at(at), u64_at(at + 8), u64_at(at + 16), u64_at(at + 24));
                    let fd = fds
                        .next()
                        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "region without fd"))?;
                    ranges.push((
                        GuestAddress(guest),
                        size as usize,
                        Some(FileOffset::new(File::from(fd), offset)),
                    ));
                    self.regions.push(Region { guest, user, size });
                }
                self.mem = Some(
                    GuestMemoryMmap::from_ranges_with_files(ranges)
                        .map_err(|e| io::Error::other(format!("cannot map guest memory: {e}")))?,
                );
            }
            SET_VRING_NUM => self.ring(u32_at(0))?.size = u32_at(4) as u16,
            SET_VRING_BASE => self.ring(u32_at(0))?.base = u32_at(4) as u16,
            SET_VRING_ADDR => {
                let (desc, used, avail) =
                    (self.to_guest(u64_at(8)), self.to_guest(u64_at(16)), self.to_guest(u64_at(24)));
                let ring = self.ring(u32_at(0))?;
                (ring.desc, ring.used, ring.avail) = (desc, used, avail);
            }
            GET_VRING_BASE => {
                let index = u32_at(0);
                if index as usize == TX {
                    // A frontend that stops the queue (vhost-user's way to stop one) may do so before
                    // the switch has seen its last kick: what it had sent still goes. (UML
                    // 6.1 powering off sends no GET_VRING_BASE; it just goes.)
                    while let Some(p) = self.pop_ring_tx() {
                        self.tx_stopped.push_back(p);
                    }
                }
                let ring = self.ring(index)?;
                let base = ring.queue.take().map_or(ring.base, |q| q.next_avail());
                let mut body = index.to_le_bytes().to_vec();
                body.extend_from_slice(&(base as u32).to_le_bytes());
                self.reply(request, &body)?;
            }
            SET_VRING_KICK | SET_VRING_CALL => {
                let v = u64_at(0);
                let fd = if v & VRING_NOFD == 0 { fds.next().map(File::from) } else { None };
                let index = (v & 0xff) as u32;
                if request == SET_VRING_KICK {
                    self.ring(index)?.kick = fd;
                    self.start_queue(index as usize)?;
                } else {
                    self.ring(index)?.call = fd;
                }
            }
            GET_CONFIG => {
                // virtio_vsock_config: le64 guest_cid.
                let (offset, len) = (u32_at(0) as usize, u32_at(4) as usize);
                if payload.len() < 12 || offset.checked_add(len).is_none_or(|end| end > CONFIG_SPACE) {
                    return Err(bad(format!(
                        "GET_CONFIG of {len} bytes at {offset} in {} bytes",
                        payload.len()
                    )));
                }
                let mut config = vec![0u8; offset + len];
                let cid = self.cid.to_le_bytes();
                for (i, b) in config.iter_mut().enumerate().take(8) {
                    *b = cid[i];
                }
                let mut body = payload[..12].to_vec();
                body.extend_from_slice(&config[offset..]);
                self.reply(request, &body)?;
            }
            // SET_OWNER, SET_FEATURES, SET_PROTOCOL_FEATURES, SET_VRING_ENABLE, SET_VRING_ERR,
            // SET_CONFIG and the rest need no action from a device that offers nothing else.
            _ => {}
        }
        Ok(())
    }

    fn ring(&mut self, index: u32) -> io::Result<&mut Ring> {
        self.rings
            .get_mut(index as usize)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no queue {index}")))
    }

    /// Frontend (UML) addresses to guest-physical ones; UML makes them equal, but say it.
    fn to_guest(&self, user: u64) -> u64 {
        self.regions
            .iter()
            .find(|r| user >= r.user && user < r.user + r.size)
            .map_or(user, |r| r.guest + (user - r.user))
    }

    fn start_queue(&mut self, index: usize) -> io::Result<()> {
        let mem = self
            .mem
            .as_ref()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "kick before memory"))?;
        let ring = &mut self.rings[index];
        let mut q = Queue::new(256).map_err(|e| io::Error::other(e.to_string()))?;
        q.set_size(ring.size);
        let split = |a: u64| (Some(a as u32), Some((a >> 32) as u32));
        let (lo, hi) = split(ring.desc);
        q.set_desc_table_address(lo, hi);
        let (lo, hi) = split(ring.avail);
        q.set_avail_ring_address(lo, hi);
        let (lo, hi) = split(ring.used);
        q.set_used_ring_address(lo, hi);
        q.set_next_avail(ring.base);
        q.set_ready(true);
        if !q.is_valid(mem) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("queue {index} is not valid")));
        }
        ring.queue = Some(q);
        Ok(())
    }

    /// The next packet the guest has queued for sending; chains that are not well-formed
    /// packets are consumed and skipped. Call [`Device::tx_done`] after a batch.
    pub fn pop_tx(&mut self) -> Option<Packet> {
        self.tx_stopped.pop_front().or_else(|| self.pop_ring_tx())
    }

    /// Whether packets sent before the guest stopped its TX queue are still to be routed.
    pub fn has_stopped_tx(&self) -> bool {
        !self.tx_stopped.is_empty()
    }

    fn pop_ring_tx(&mut self) -> Option<Packet> {
        let (mem, q) = (self.mem.as_ref()?, self.rings[TX].queue.as_mut()?);
        while let Some(mut chain) = q.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let pkt = Packet::from_tx(mem, &mut chain);
            let _ = q.add_used(mem, head, 0);
            self.tx_used = true;
            match pkt {
                Some(p) => return Some(p),
                None => tracing::debug!(
                    "switch: guest {}: dropped a TX chain that is not a vsock packet",
                    self.cid
                ),
            }
        }
        None
    }

    /// Tells the guest its TX buffers are free again.
    pub fn tx_done(&mut self) {
        if std::mem::take(&mut self.tx_used) {
            signal(self.mem.as_ref(), &mut self.rings[TX]);
        }
    }

    /// Moves pending packets into the guest's RX buffers, splitting payloads to what each
    /// buffer takes; what does not fit waits for the next RX kick.
    pub fn flush_rx(&mut self) {
        let (Some(mem), Some(q)) = (self.mem.as_ref(), self.rings[RX].queue.as_mut()) else { return };
        let mut used = false;
        while let Some(front) = self.rx_pending.front() {
            let Some(mut chain) = q.pop_descriptor_chain(mem) else { break };
            let head = chain.head_index();
            match front.write_rx(self.rx_front_sent, mem, &mut chain) {
                Some((len, taken)) => {
                    let _ = q.add_used(mem, head, len);
                    self.rx_front_sent += taken;
                    if self.rx_front_sent == front.data.len() {
                        self.rx_front_sent = 0;
                        if let Some(done) = self.rx_pending.pop_front() {
                            self.rx_bytes -= done.queued_size();
                        }
                    }
                }
                None => {
                    let _ = q.add_used(mem, head, 0);
                }
            }
            used = true;
        }
        if used {
            signal(Some(mem), &mut self.rings[RX]);
        }
    }

    fn reply_u64(&mut self, request: u32, v: u64) -> io::Result<()> {
        self.reply(request, &v.to_le_bytes())
    }

    fn reply(&mut self, request: u32, body: &[u8]) -> io::Result<()> {
        let mut msg = Vec::with_capacity(12 + body.len());
        msg.extend_from_slice(&request.to_le_bytes());
        msg.extend_from_slice(&(VERSION | REPLY).to_le_bytes());
        msg.extend_from_slice(&(body.len() as u32).to_le_bytes());
        msg.extend_from_slice(body);
        (&self.ctl).write_all(&msg)
    }
}

/// `VRING_AVAIL_F_NO_INTERRUPT`: the driver is taking used buffers and looks again before it
/// waits (Linux's vsock workers set it while they run).
const AVAIL_F_NO_INTERRUPT: u16 = 1;

/// The guest's interrupt, unless its driver says it needs none now: in a UML guest each one
/// is a signal that stops whatever runs there, and an interrupt per batch halved the rate
/// of a guest sending to the host. UML's call "eventfd" is a pipe reading 8 bytes at a time.
fn signal(mem: Option<&GuestMemoryMmap>, ring: &mut Ring) {
    // The used entries must be visible before the driver's flag is read (virtio's rule).
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    let busy = mem.is_some_and(|m| {
        m.read_obj::<u16>(GuestAddress(ring.avail)).is_ok_and(|flags| flags & AVAIL_F_NO_INTERRUPT != 0)
    });
    if busy {
        return;
    }
    if let Some(call) = &mut ring.call {
        let _ = call.write(&1u64.to_ne_bytes());
    }
}

/// Reads exactly `buf.len()` bytes, collecting the fds that arrive with them.
pub(crate) fn recv_with_fds(sock: &UnixStream, buf: &mut [u8]) -> io::Result<Vec<OwnedFd>> {
    let mut fds = Vec::new();
    let mut got = 0;
    while got < buf.len() {
        let mut cmsg = [0u64; 64]; // room for 8+ fds, aligned
        let mut iov = libc::iovec { iov_base: buf[got..].as_mut_ptr().cast(), iov_len: buf.len() - got };
        // SAFETY: msghdr points at our iovec and cmsg buffer, both alive for the call.
        let n = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cmsg.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&cmsg);
            let n = libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n > 0 {
                let mut c = libc::CMSG_FIRSTHDR(&msg);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                        let data = libc::CMSG_DATA(c) as *const RawFd;
                        let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                            / std::mem::size_of::<RawFd>();
                        for i in 0..count {
                            fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                        }
                    }
                    c = libc::CMSG_NXTHDR(&msg, c);
                }
            }
            n
        };
        match n {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            n => got += n as usize,
        }
    }
    Ok(fds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(request: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = request.to_le_bytes().to_vec();
        m.extend_from_slice(&VERSION.to_le_bytes());
        m.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        m.extend_from_slice(payload);
        m
    }

    /// A frontend's bad numbers close the device with an error; they never panic the switch
    /// or make it allocate what the frontend asked for.
    #[test]
    fn bad_control_messages_are_errors() {
        let config = |offset: u32, len: u32| [offset.to_le_bytes(), len.to_le_bytes(), [0; 4]].concat();
        for bad in [
            message(GET_CONFIG, &config(u32::MAX, 16)),
            message(GET_CONFIG, &config(0, 1 << 30)),
            message(GET_CONFIG, &[1, 2, 3]),
            message(SET_MEM_TABLE, &[0xff, 0xff, 0, 0, 0, 0, 0, 0]),
            message(SET_MEM_TABLE, &[1, 0, 0, 0, 0, 0, 0, 0]),
            message(GET_FEATURES, &vec![0; 5000]),
        ] {
            let (ours, theirs) = UnixStream::pair().unwrap();
            let mut dev = Device::new(3, ours);
            (&theirs).write_all(&bad).unwrap();
            assert_eq!(dev.handle_control().unwrap_err().kind(), io::ErrorKind::InvalidData);
        }
    }

    #[test]
    fn get_config_answers_the_cid() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut dev = Device::new(7, ours);
        (&theirs)
            .write_all(&message(GET_CONFIG, &[[0u8; 4], 8u32.to_le_bytes(), [0; 4], [0; 4], [0; 4]].concat()))
            .unwrap();
        dev.handle_control().unwrap();
        let mut reply = [0u8; 12 + 12 + 8];
        (&theirs).read_exact(&mut reply).unwrap();
        assert_eq!(&reply[24..32], &7u64.to_le_bytes());
    }

    use super::super::fake_guest::FakeGuest;
    use super::super::packet::{Header, OP_RW, TYPE_STREAM};

    fn rw(len: usize) -> Packet {
        let hdr = Header {
            src_cid: 2,
            dst_cid: 3,
            src_port: 1024,
            dst_port: 5000,
            type_: TYPE_STREAM,
            op: OP_RW,
            flags: 0,
            buf_alloc: 262144,
            fwd_cnt: 77,
        };
        Packet { hdr, data: (0..len).map(|i| (i * 7 % 251) as u8).collect() }
    }

    /// UML 6.1 sets the device up with a 72-byte SET_MEM_TABLE and one region; after that
    /// the guest's packets come out of TX whole, header fields and payload as sent.
    #[test]
    fn takes_packets_from_tx_as_uml_sets_it_up() {
        let (mut dev, mut guest) = FakeGuest::new(3);
        let sent = [rw(0), rw(1), rw(65536)];
        for p in &sent {
            guest.transmit(&Packet { hdr: Header { src_cid: 3, dst_cid: 2, ..p.hdr }, ..p.clone() });
        }
        for p in &sent {
            let got = dev.pop_tx().expect("a packet");
            assert_eq!(got.hdr, Header { src_cid: 3, dst_cid: 2, ..p.hdr });
            assert_eq!(got.data, p.data);
        }
        assert!(dev.pop_tx().is_none());
        dev.tx_done();
        assert_eq!(guest.signals(TX), 1, "the guest is told once per batch");
    }

    /// A driver that says it is busy taking used buffers (VRING_AVAIL_F_NO_INTERRUPT) gets no
    /// interrupt; once it clears the flag it gets them again.
    #[test]
    fn no_interrupt_while_the_driver_says_it_needs_none() {
        let (mut dev, mut guest) = FakeGuest::new(3);
        for busy in [true, false] {
            guest.set_no_interrupt(TX, busy);
            guest.set_no_interrupt(RX, busy);
            guest.transmit(&Packet { hdr: Header { src_cid: 3, dst_cid: 2, ..rw(1).hdr }, data: vec![1] });
            assert!(dev.pop_tx().is_some());
            dev.tx_done();
            dev.queue(rw(10));
            guest.post_rx(44 + 64);
            dev.flush_rx();
            assert_eq!(guest.received().len(), 1, "the packet is delivered either way");
            let told = u64::from(!busy);
            assert_eq!((guest.signals(TX), guest.signals(RX)), (told, told), "busy: {busy}");
        }
    }

    /// A payload larger than an RX buffer is split over several, each fragment under the
    /// packet's header with its own length; what does not fit waits for the next buffers.
    #[test]
    fn splits_payloads_over_rx_buffers_in_order() {
        let (mut dev, mut guest) = FakeGuest::new(3);
        let big = rw(250);
        dev.queue(big.clone());
        dev.queue(rw(0));
        assert_eq!(dev.queued_bytes(), 44 + 250 + 44);
        guest.post_rx(44 + 100);
        guest.post_rx(44 + 100);
        dev.flush_rx();
        let got = guest.received();
        assert_eq!(got.iter().map(|p| p.data.len()).collect::<Vec<_>>(), [100, 100]);
        assert!(got.iter().all(|p| p.hdr == big.hdr));
        assert_eq!(dev.queued_bytes(), 44 + 250 + 44, "a packet counts until its last byte leaves");
        guest.post_rx(44 + 100);
        guest.post_rx(44 + 100);
        dev.flush_rx();
        let rest = guest.received();
        assert_eq!(rest.iter().map(|p| p.data.len()).collect::<Vec<_>>(), [50, 0]);
        let whole: Vec<u8> = got.iter().chain(&rest[..1]).flat_map(|p| p.data.clone()).collect();
        assert_eq!(whole, big.data);
        assert_eq!(dev.queued_bytes(), 0);
        assert!(guest.signals(RX) > 0);
    }

    /// A SEQPACKET message split over several RX buffers is marked ended (EOM, EOR) on its last
    /// fragment only: the guest would take every marked fragment for a whole message.
    #[test]
    fn a_split_message_ends_on_its_last_fragment_only() {
        use super::super::packet::{SEQ_EOM, SEQ_EOR, TYPE_SEQPACKET};
        let (mut dev, mut guest) = FakeGuest::new(3);
        let mut msg = rw(250);
        msg.hdr.type_ = TYPE_SEQPACKET;
        msg.hdr.flags = SEQ_EOM | SEQ_EOR;
        dev.queue(msg.clone());
        for _ in 0..3 {
            guest.post_rx(44 + 100);
        }
        dev.flush_rx();
        let got = guest.received();
        assert_eq!(
            got.iter().map(|p| (p.data.len(), p.hdr.flags)).collect::<Vec<_>>(),
            [(100, 0), (100, 0), (50, SEQ_EOM | SEQ_EOR)]
        );
        assert!(got.iter().all(|p| p.hdr.type_ == TYPE_SEQPACKET));
    }

    /// An RX buffer too small for a header is handed back unused; the packet waits.
    #[test]
    fn an_rx_buffer_without_room_for_a_header_is_skipped() {
        let (mut dev, mut guest) = FakeGuest::new(3);
        dev.queue(rw(10));
        guest.post_rx(20);
        dev.flush_rx();
        assert_eq!(dev.queued_bytes(), 44 + 10);
        guest.post_rx(44 + 64);
        dev.flush_rx();
        let got = guest.received();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data, rw(10).data);
        assert_eq!(dev.queued_bytes(), 0);
    }
}
