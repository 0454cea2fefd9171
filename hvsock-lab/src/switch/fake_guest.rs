//! A guest's side of a device, for unit tests: its memory, its three queues, and the
//! vhost-user messages UML 6.1 sends to set them up — so the device and the switch can be
//! tested here, without booting a guest.

use std::collections::BTreeMap;
use std::fs::File;
#[cfg(test)]
use std::io::Read;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use vm_memory::{Address, Bytes, FileOffset, GuestAddress, GuestMemoryMmap};

use super::device::{Device, RX, TX};
use super::packet::{Header, Packet};
#[cfg(test)]
use super::uds_path;
use super::{Core, Guest};

const MEM_SIZE: usize = 1 << 20;
pub const QUEUE_SIZE: u16 = 16;
const VRING_DESC_F_NEXT: u16 = 1;
const VRING_DESC_F_WRITE: u16 = 2;

/// Where queue `q`'s rings live in guest memory.
fn ring_base(q: usize) -> u64 {
    q as u64 * 0x4000
}

struct Ring {
    next_desc: u16,
    avail_idx: u16,
    used_seen: u16,
}

/// The frontend and guest of one device.
pub struct FakeGuest {
    ctl: UnixStream,
    pub mem: GuestMemoryMmap,
    kicks: Vec<File>,
    calls: Vec<File>,
    rings: [Ring; 3],
    /// Next free buffer address (buffers are never reused: tests are short).
    next_buf: u64,
    /// RX buffers offered and not yet used.
    rx_out: u16,
}

fn eventfd() -> File {
    // SAFETY: eventfd returns a new descriptor we own, or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    assert!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
    // SAFETY: fd is ours and open.
    File::from(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn memfd(size: usize) -> File {
    // SAFETY: the name is a NUL-terminated string; memfd_create returns a new fd or -1.
    let fd = unsafe { libc::memfd_create(c"fake-guest".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: fd is ours and open.
    let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    file.set_len(size as u64).unwrap();
    file
}

/// A vhost-user message as a frontend writes it, with descriptors attached.
pub fn send_message(ctl: &UnixStream, request: u32, payload: &[u8], fds: &[RawFd]) {
    let mut msg = request.to_le_bytes().to_vec();
    msg.extend_from_slice(&1u32.to_le_bytes());
    msg.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    msg.extend_from_slice(payload);
    let mut cmsg = [0u64; 16];
    let mut iov = libc::iovec { iov_base: msg.as_mut_ptr().cast(), iov_len: msg.len() };
    // SAFETY: msghdr points at our iovec and an aligned cmsg buffer with room for the fds,
    // all alive for the call.
    let sent = unsafe {
        let mut m: libc::msghdr = std::mem::zeroed();
        m.msg_iov = &mut iov;
        m.msg_iovlen = 1;
        if !fds.is_empty() {
            let bytes = std::mem::size_of_val(fds) as u32;
            m.msg_control = cmsg.as_mut_ptr().cast();
            m.msg_controllen = libc::CMSG_SPACE(bytes) as usize;
            let c = libc::CMSG_FIRSTHDR(&m);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(bytes) as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c).cast::<RawFd>(), fds.len());
        }
        libc::sendmsg(ctl.as_raw_fd(), &m, 0)
    };
    assert_eq!(sent, msg.len() as isize, "sendmsg: {}", std::io::Error::last_os_error());
}

impl FakeGuest {
    /// A device for guest `cid`, set up the way UML 6.1 sets one up.
    pub fn new(cid: u64) -> (Device, FakeGuest) {
        let (mut dev, mut guest) = FakeGuest::with_memory(cid);
        for q in 0..3usize {
            let base = ring_base(q);
            guest.send(
                &mut dev,
                8,
                &[(q as u32).to_le_bytes(), u32::from(QUEUE_SIZE).to_le_bytes()].concat(),
                &[],
            );
            let addr: Vec<u8> = [q as u64, base, base + 0x2000, base + 0x1000, 0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            guest.send(&mut dev, 9, &addr, &[]);
            let (kick, call) = (eventfd(), eventfd());
            guest.send(&mut dev, 13, &(q as u64).to_le_bytes(), &[call.as_raw_fd()]);
            guest.send(&mut dev, 12, &(q as u64).to_le_bytes(), &[kick.as_raw_fd()]);
            guest.kicks.push(kick);
            guest.calls.push(call);
        }
        (dev, guest)
    }

    /// Starts every queue afresh, empty, at index 0 (as a guest driver that resets its
    /// device does): for the next fuzz input on the same device.
    #[cfg(fuzzing)]
    pub fn restart(&mut self, dev: &mut Device) {
        for q in 0..3usize {
            self.mem.write_slice(&[0u8; 0x4000], GuestAddress(ring_base(q))).unwrap();
            self.rings[q] = Ring { next_desc: 0, avail_idx: 0, used_seen: 0 };
            self.send(dev, 10, &[(q as u32).to_le_bytes(), [0; 4]].concat(), &[]);
            let kick = self.kicks[q].as_raw_fd();
            self.send(dev, 12, &(q as u64).to_le_bytes(), &[kick]);
        }
        self.rx_out = 0;
    }

    /// A device for guest `cid` that has its memory table and nothing else yet.
    pub fn with_memory(cid: u64) -> (Device, FakeGuest) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut dev = Device::new(cid, ours);
        let file = memfd(MEM_SIZE);
        let mem = GuestMemoryMmap::from_ranges_with_files([(
            GuestAddress(0),
            MEM_SIZE,
            Some(FileOffset::new(file.try_clone().unwrap(), 0)),
        )])
        .unwrap();
        let mut guest = FakeGuest {
            ctl: theirs,
            mem,
            kicks: Vec::new(),
            calls: Vec::new(),
            rings: std::array::from_fn(|_| Ring { next_desc: 0, avail_idx: 0, used_seen: 0 }),
            next_buf: 0x10000,
            rx_out: 0,
        };
        // UML 6.1's SET_MEM_TABLE: 72 bytes, room for two regions, one filled; user address
        // equal to the guest address.
        let mut table = [1u32.to_le_bytes(), [0; 4]].concat();
        for v in [0u64, MEM_SIZE as u64, 0, 0] {
            table.extend_from_slice(&v.to_le_bytes());
        }
        table.resize(72, 0);
        guest.send(&mut dev, 5, &table, &[file.as_raw_fd()]);
        (dev, guest)
    }

    /// Sends one control message and has the device handle it.
    pub fn send(&mut self, dev: &mut Device, request: u32, payload: &[u8], fds: &[RawFd]) {
        send_message(&self.ctl, request, payload, fds);
        dev.handle_control().unwrap();
    }

    /// Stops queue `q` (GET_VRING_BASE, vhost-user's way to stop a queue), for the
    /// switch to handle as its next control message.
    #[cfg(test)]
    pub fn stop_queue(&self, q: usize) {
        send_message(&self.ctl, 11, &[(q as u32).to_le_bytes(), [0; 4]].concat(), &[]);
    }

    /// Room for a buffer; memory is reused from the start when it runs out (buffers are
    /// short-lived in tests).
    fn alloc(&mut self, len: usize) -> u64 {
        let len = len.next_multiple_of(64) as u64;
        if self.next_buf + len > MEM_SIZE as u64 {
            self.next_buf = 0x10000;
        }
        let at = self.next_buf;
        self.next_buf += len;
        at
    }

    /// The frontend's end of the control socket.
    #[cfg(fuzzing)]
    pub fn control_socket(&self) -> UnixStream {
        self.ctl.try_clone().unwrap()
    }

    /// Lays `data` over the TX queue as it comes: descriptor table, then the available ring
    /// (its index included), then buffer memory; and kicks.
    #[cfg(fuzzing)]
    pub fn raw_tx(&mut self, data: &[u8]) {
        let base = ring_base(TX);
        let table = 16 * usize::from(QUEUE_SIZE);
        let (desc, rest) = data.split_at(data.len().min(table));
        self.mem.write_slice(desc, GuestAddress(base)).unwrap();
        let avail = 4 + 2 * usize::from(QUEUE_SIZE);
        let (ring, rest) = rest.split_at(rest.len().min(avail));
        self.mem.write_slice(ring, GuestAddress(base + 0x1000)).unwrap();
        self.mem.write_slice(rest, GuestAddress(0x10000)).unwrap();
        (&self.kicks[TX]).write_all(&1u64.to_ne_bytes()).unwrap();
    }

    /// Makes a chain of buffers available on queue `q`: (address, length, device-writable).
    fn offer(&mut self, q: usize, bufs: &[(u64, u32, bool)]) {
        let base = GuestAddress(ring_base(q));
        let ring = &mut self.rings[q];
        let head = ring.next_desc;
        for (i, &(addr, len, write)) in bufs.iter().enumerate() {
            let index = (head + i as u16) % QUEUE_SIZE;
            let last = i + 1 == bufs.len();
            let flags = if write { VRING_DESC_F_WRITE } else { 0 } | if last { 0 } else { VRING_DESC_F_NEXT };
            let next = (index + 1) % QUEUE_SIZE;
            let mut desc = addr.to_le_bytes().to_vec();
            desc.extend_from_slice(&len.to_le_bytes());
            desc.extend_from_slice(&flags.to_le_bytes());
            desc.extend_from_slice(&next.to_le_bytes());
            self.mem.write_slice(&desc, base.unchecked_add(16 * u64::from(index))).unwrap();
        }
        ring.next_desc = (head + bufs.len() as u16) % QUEUE_SIZE;
        let avail = base.unchecked_add(0x1000);
        let slot = avail.unchecked_add(4 + 2 * u64::from(ring.avail_idx % QUEUE_SIZE));
        self.mem.write_obj(head.to_le(), slot).unwrap();
        ring.avail_idx = ring.avail_idx.wrapping_add(1);
        self.mem.write_obj(ring.avail_idx.to_le(), avail.unchecked_add(2)).unwrap();
        (&self.kicks[q]).write_all(&1u64.to_ne_bytes()).unwrap();
    }

    /// Queues a packet for the device to take from TX: header and payload in two buffers.
    pub fn transmit(&mut self, pkt: &Packet) {
        let (h, d) = (self.alloc(44), self.alloc(pkt.data.len().max(1)));
        self.mem.write_slice(&encode(&pkt.hdr, pkt.data.len() as u32), GuestAddress(h)).unwrap();
        self.mem.write_slice(&pkt.data, GuestAddress(d)).unwrap();
        let mut bufs = vec![(h, 44, false)];
        if !pkt.data.is_empty() {
            bufs.push((d, pkt.data.len() as u32, false));
        }
        self.offer(TX, &bufs);
    }

    /// Offers one RX buffer of `len` bytes (header and payload in one, as Linux 6.2+ does),
    /// unless every descriptor is offered already; `false` then.
    pub fn post_rx(&mut self, len: u32) -> bool {
        if self.rx_out == QUEUE_SIZE {
            return false;
        }
        self.rx_out += 1;
        let at = self.alloc(len as usize);
        self.offer(RX, &[(at, len, true)]);
        true
    }

    /// The packets the device has put in RX buffers since the last call, one per buffer
    /// (buffers handed back unused are left out).
    pub fn received(&mut self) -> Vec<Packet> {
        let used = GuestAddress(ring_base(RX) + 0x2000);
        let idx = u16::from_le(self.mem.read_obj::<u16>(used.unchecked_add(2)).unwrap());
        let mut out = Vec::new();
        let ring = &mut self.rings[RX];
        while ring.used_seen != idx {
            let elem = used.unchecked_add(4 + 8 * u64::from(ring.used_seen % QUEUE_SIZE));
            let id = u32::from_le(self.mem.read_obj::<u32>(elem).unwrap());
            let len = u32::from_le(self.mem.read_obj::<u32>(elem.unchecked_add(4)).unwrap());
            ring.used_seen = ring.used_seen.wrapping_add(1);
            self.rx_out -= 1;
            let desc = GuestAddress(ring_base(RX) + 16 * u64::from(id));
            let addr = u64::from_le(self.mem.read_obj::<u64>(desc).unwrap());
            let mut bytes = vec![0u8; len as usize];
            self.mem.read_slice(&mut bytes, GuestAddress(addr)).unwrap();
            if len > 0 {
                out.push(decode(&bytes));
            }
        }
        out
    }

    /// Sets or clears VRING_AVAIL_F_NO_INTERRUPT on queue `q`, as a driver does while it works.
    #[cfg(test)]
    pub fn set_no_interrupt(&mut self, q: usize, on: bool) {
        self.mem.write_obj(u16::from(on), GuestAddress(ring_base(q) + 0x1000)).unwrap();
    }

    /// How many times the device has signalled queue `q` (and clears the count).
    #[cfg(test)]
    pub fn signals(&mut self, q: usize) -> u64 {
        let mut n = [0u8; 8];
        match (&self.calls[q]).read(&mut n) {
            Ok(8) => u64::from_ne_bytes(n),
            _ => 0,
        }
    }
}

/// A virtio-vsock header, little-endian, with payload length `len`.
pub fn encode(h: &Header, len: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(44);
    b.extend_from_slice(&h.src_cid.to_le_bytes());
    b.extend_from_slice(&h.dst_cid.to_le_bytes());
    b.extend_from_slice(&h.src_port.to_le_bytes());
    b.extend_from_slice(&h.dst_port.to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(&h.type_.to_le_bytes());
    b.extend_from_slice(&h.op.to_le_bytes());
    b.extend_from_slice(&h.flags.to_le_bytes());
    b.extend_from_slice(&h.buf_alloc.to_le_bytes());
    b.extend_from_slice(&h.fwd_cnt.to_le_bytes());
    b
}

/// A header and the payload its length field names.
pub fn decode(b: &[u8]) -> Packet {
    let len = u32::from_le_bytes(b[24..28].try_into().unwrap()) as usize;
    Packet { hdr: decode_header(b), data: b[44..44 + len].to_vec() }
}

/// The header fields of a little-endian virtio-vsock header (its length field aside).
pub fn decode_header(b: &[u8]) -> Header {
    let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let u16_at = |at: usize| u16::from_le_bytes(b[at..at + 2].try_into().unwrap());
    Header {
        src_cid: u64::from_le_bytes(b[0..8].try_into().unwrap()),
        dst_cid: u64::from_le_bytes(b[8..16].try_into().unwrap()),
        src_port: u32_at(16),
        dst_port: u32_at(20),
        type_: u16_at(28),
        op: u16_at(30),
        flags: u32_at(32),
        buf_alloc: u32_at(36),
        fwd_cnt: u32_at(40),
    }
}

/// A switch core serving fake guests `cids`, and the guests.
pub struct Rig {
    pub core: Core,
    pub guests: BTreeMap<u64, FakeGuest>,
    pub dir: PathBuf,
}

impl Rig {
    pub fn new(cids: &[u32]) -> Rig {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        // A directory whose name is not UTF-8 (a VMM's socket path may be any bytes): the
        // switch must name its sockets byte for byte.
        use std::os::unix::ffi::OsStrExt;
        let name =
            format!("hvsock-switch-test-{}-{}-", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let name = [name.as_bytes(), b"\xff"].concat();
        let dir = std::env::temp_dir().join(std::ffi::OsStr::from_bytes(&name));
        std::fs::create_dir_all(&dir).unwrap();
        let (mut slots, mut guests) = (BTreeMap::new(), BTreeMap::new());
        for &cid in cids {
            let mut slot = Guest::bind(&dir, cid, false).unwrap();
            let (dev, guest) = FakeGuest::new(cid as u64);
            slot.dev = Some(dev);
            slots.insert(cid as u64, slot);
            guests.insert(cid as u64, guest);
        }
        Rig { core: Core::new(slots, false), guests, dir }
    }

    pub fn guest(&mut self, cid: u64) -> &mut FakeGuest {
        self.guests.get_mut(&cid).unwrap()
    }

    /// Guest `cid` sends `pkt`; the switch takes it at once, as on a kick.
    pub fn transmit(&mut self, cid: u64, pkt: Packet) {
        self.guest(cid).transmit(&pkt);
        self.core.kick(cid, TX);
    }

    /// Guest `cid` offers `n` RX buffers and takes what the switch puts there.
    pub fn receive(&mut self, cid: u64, n: usize) -> Vec<Packet> {
        for _ in 0..n {
            self.guest(cid).post_rx(44 + 4096);
        }
        self.core.kick(cid, RX);
        self.guest(cid).received()
    }

    pub fn queued(&self, cid: u64) -> usize {
        self.core.guests[&cid].dev.as_ref().unwrap().queued_bytes()
    }

    /// A host client that has sent `CONNECT port` to guest `cid`, its request passed on.
    /// Forgets every connection and queued packet, for the next fuzz input on the same rig.
    #[cfg(fuzzing)]
    pub fn reset(&mut self) {
        self.core.conns.clear();
        self.core.pending.clear();
        self.core.between.clear();
        for (cid, g) in self.core.guests.iter_mut() {
            g.held = None;
            g.tx_stalled = false;
            if let Some(dev) = &mut g.dev {
                dev.clear_rx();
                self.guests.get_mut(cid).unwrap().restart(dev);
            }
        }
    }

    #[cfg(test)]
    pub fn host_connects(&mut self, cid: u64, port: u32) -> UnixStream {
        let mut host = UnixStream::connect(uds_path(&self.dir, cid as u32)).unwrap();
        writeln!(host, "CONNECT {port}").unwrap();
        for _ in 0..20 {
            self.core.turn(10);
            if !self.core.conns.is_empty() {
                break;
            }
        }
        assert_eq!(self.core.conns.len(), 1, "the switch took the CONNECT line");
        host
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
