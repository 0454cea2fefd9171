//! The host end of a guest's vsock connection: the switch is the vsock peer, and the data
//! goes to and from a Unix socket, the hybrid-vsock way (Firecracker, Cloud Hypervisor).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::packet::*;

/// What we offer the guest to fill: our receive buffer per connection.
pub const BUF_ALLOC: u32 = 256 * 1024;
/// The guest hears of freed room once it believes less than this is left of our buffer:
/// Linux's own rule (it waits for less than 64 KiB), with half the buffer so that a guest
/// streaming at full speed never stalls. One credit update per half buffer, not one per
/// packet: each is an interrupt in the guest.
const CREDIT_LOW: u32 = BUF_ALLOC / 2;
/// How long a host-initiated connection waits for the guest's answer. A guest answers at once
/// (RESPONSE, or RST when nothing listens); only a stopped or hung guest takes longer, and the
/// host client must not wait on it for ever.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(PartialEq, Eq, Debug, Clone, Copy)]
pub enum State {
    /// Host-initiated: REQUEST sent, waiting for the guest's RESPONSE.
    Connecting,
    Established,
}

pub struct HostConn {
    pub cid: u64,
    pub guest_port: u32,
    pub host_port: u32,
    pub uds: UnixStream,
    pub state: State,
    /// When the connection was made (the deadline of `Connecting` counts from it).
    since: Instant,
    /// Bytes for the Unix socket before any data: the handshake's `OK <port>\n`.
    preface: Vec<u8>,
    /// Data from the guest not yet written to the Unix socket: the packets' own buffers, as
    /// they came (no copy, and no buffer that keeps its largest size for ever).
    to_uds: VecDeque<Vec<u8>>,
    /// Bytes of the front buffer already written.
    to_uds_sent: usize,
    /// Bytes in `to_uds` not yet written.
    to_uds_len: usize,
    /// Data from the host that arrived with the CONNECT line, for the guest once connected.
    early: Vec<u8>,
    peer_buf_alloc: u32,
    peer_fwd_cnt: u32,
    tx_cnt: u32,
    fwd_cnt: u32,
    fwd_cnt_sent: u32,
    /// The guest sends no more (its SHUTDOWN SEND).
    guest_done_sending: bool,
    /// The guest reads no more (its SHUTDOWN RCV).
    guest_done_receiving: bool,
    uds_write_shut: bool,
    /// The Unix side sent its end-of-file; the guest has been told.
    uds_eof: bool,
    /// Pass half-closes on as a Linux peer would: a host's as SHUTDOWN SEND only, a guest's as
    /// the host socket's end-of-file. Real VMMs (Firecracker, vhost-device-vsock) turn a host's
    /// half-close into SHUTDOWN RCV|SEND and drop a guest's; so does the switch without this.
    pub keep_half_close: bool,
    /// TYPE_STREAM, or TYPE_SEQPACKET: the Unix socket is then SOCK_SEQPACKET, each of the
    /// guest's messages one message on it and each of its messages one to the guest.
    pub type_: u16,
    /// SEQPACKET: the guest's message arriving, until its EOM packet.
    partial: Vec<u8>,
    /// SEQPACKET: the host's message going to the guest, and how much of it has gone.
    from_host: Vec<u8>,
    from_host_sent: usize,
}

/// What a pump asks of the switch.
pub enum Verdict {
    Keep,
    /// Forget the connection (the guest has been sent what it needs).
    Close,
}

impl HostConn {
    pub fn new(cid: u64, guest_port: u32, host_port: u32, uds: UnixStream, state: State) -> HostConn {
        HostConn {
            cid,
            guest_port,
            host_port,
            uds,
            state,
            since: Instant::now(),
            preface: Vec::new(),
            to_uds: VecDeque::new(),
            to_uds_sent: 0,
            to_uds_len: 0,
            early: Vec::new(),
            peer_buf_alloc: 0,
            peer_fwd_cnt: 0,
            tx_cnt: 0,
            fwd_cnt: 0,
            fwd_cnt_sent: 0,
            guest_done_sending: false,
            guest_done_receiving: false,
            uds_write_shut: false,
            uds_eof: false,
            keep_half_close: false,
            type_: TYPE_STREAM,
            partial: Vec::new(),
            from_host: Vec::new(),
            from_host_sent: 0,
        }
    }

    /// Makes this a SEQPACKET connection (its Unix socket is SOCK_SEQPACKET).
    pub fn seqpacket(mut self) -> HostConn {
        self.type_ = TYPE_SEQPACKET;
        self
    }

    fn is_seqpacket(&self) -> bool {
        self.type_ == TYPE_SEQPACKET
    }

    pub fn with_early(mut self, early: Vec<u8>) -> HostConn {
        self.early = early;
        self
    }

    pub fn header(&self, op: u16) -> Header {
        Header {
            src_cid: 2,
            dst_cid: self.cid,
            src_port: self.host_port,
            dst_port: self.guest_port,
            type_: self.type_,
            op,
            flags: 0,
            buf_alloc: BUF_ALLOC,
            fwd_cnt: self.fwd_cnt,
        }
    }

    /// What the guest can take now: its buffer less what is in flight. The counters wrap
    /// (they are u32 byte counts for the connection's whole life).
    fn credit(&self) -> u32 {
        self.peer_buf_alloc.saturating_sub(self.tx_cnt.wrapping_sub(self.peer_fwd_cnt))
    }

    /// A host-initiated connection the guest has not answered within [`CONNECT_TIMEOUT`].
    pub fn connect_expired(&self, now: Instant) -> bool {
        self.state == State::Connecting && now.duration_since(self.since) > CONNECT_TIMEOUT
    }

    /// Wants to read its Unix socket now.
    pub fn wants_read(&self) -> bool {
        self.state == State::Established
            && !self.uds_eof
            && !self.guest_done_receiving
            && self.credit() > 0
            && self.from_host.is_empty()
    }

    pub fn wants_write(&self) -> bool {
        !self.preface.is_empty() || !self.to_uds.is_empty()
    }

    /// A packet from the guest for this connection; packets for the guest go to `out`.
    pub fn on_guest_packet(&mut self, pkt: Packet, out: &mut Vec<Packet>) -> Verdict {
        self.peer_buf_alloc = pkt.hdr.buf_alloc;
        self.peer_fwd_cnt = pkt.hdr.fwd_cnt;
        match pkt.hdr.op {
            OP_RESPONSE if self.state == State::Connecting => {
                self.state = State::Established;
                self.preface = format!("OK {}\n", self.host_port).into_bytes();
                let early = std::mem::take(&mut self.early);
                if !early.is_empty() {
                    self.tx_cnt = self.tx_cnt.wrapping_add(early.len() as u32);
                    out.push(Packet { hdr: self.header(OP_RW), data: early });
                }
            }
            OP_RW => {
                if self.to_uds_len + self.partial.len() + pkt.data.len() > BUF_ALLOC as usize {
                    // More than the credit we gave: the guest broke the protocol.
                    tracing::debug!(
                        "switch: guest {} port {} sent past its credit to the host's port {}: reset",
                        self.cid,
                        self.guest_port,
                        self.host_port
                    );
                    return self.abort(out);
                }
                if self.is_seqpacket() {
                    // One message for the Unix socket once its last packet is here.
                    self.partial.extend_from_slice(&pkt.data);
                    if pkt.hdr.flags & SEQ_EOM != 0 {
                        let msg = std::mem::take(&mut self.partial);
                        self.to_uds_len += msg.len();
                        self.to_uds.push_back(msg);
                    }
                } else if !pkt.data.is_empty() {
                    self.to_uds_len += pkt.data.len();
                    self.to_uds.push_back(pkt.data);
                }
            }
            OP_CREDIT_REQUEST => out.push(Packet::control(self.header(OP_CREDIT_UPDATE))),
            OP_SHUTDOWN => {
                self.guest_done_sending |= pkt.hdr.flags & SHUTDOWN_SEND != 0;
                self.guest_done_receiving |= pkt.hdr.flags & SHUTDOWN_RCV != 0;
                if self.guest_done_receiving {
                    let _ = self.uds.shutdown(Shutdown::Read);
                }
            }
            OP_RST => return Verdict::Close,
            _ => {}
        }
        // The guest's own queue has room, or the switch would not be reading its packets; the
        // switch bounds its reply by one packet past the limit.
        self.pump(MAX_PAYLOAD as usize + PKT_HEADER_SIZE + 1, out)
    }

    /// Moves what can move now: guest data to the Unix socket, and Unix data to the guest up
    /// to `room` bytes of packets (what the guest's queue in the switch has left).
    pub fn pump(&mut self, mut room: usize, out: &mut Vec<Packet>) -> Verdict {
        // Towards the Unix socket.
        while !self.preface.is_empty() {
            match self.uds.write(&self.preface) {
                Ok(n) => drop(self.preface.drain(..n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return self.abort(out),
            }
        }
        while self.preface.is_empty() && self.is_seqpacket() {
            let Some(msg) = self.to_uds.front() else { break };
            // A Unix SOCK_SEQPACKET send takes the whole message or nothing.
            match socket2::SockRef::from(&self.uds).send_with_flags(msg, libc::MSG_NOSIGNAL) {
                Ok(_) => {
                    let n = msg.len();
                    self.to_uds.pop_front();
                    self.to_uds_len -= n;
                    self.fwd_cnt = self.fwd_cnt.wrapping_add(n as u32);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return self.abort(out),
            }
        }
        while self.preface.is_empty() && !self.is_seqpacket() && !self.to_uds.is_empty() {
            let mut slices = [io::IoSlice::new(&[]); 16];
            let mut count = 0;
            for (i, chunk) in self.to_uds.iter().take(slices.len()).enumerate() {
                let from = if i == 0 { self.to_uds_sent } else { 0 };
                slices[i] = io::IoSlice::new(&chunk[from..]);
                count += 1;
            }
            match self.uds.write_vectored(&slices[..count]) {
                Ok(n) => {
                    self.to_uds_len -= n;
                    self.fwd_cnt = self.fwd_cnt.wrapping_add(n as u32);
                    let mut n = n + self.to_uds_sent;
                    while let Some(front) = self.to_uds.front() {
                        if n < front.len() {
                            break;
                        }
                        n -= front.len();
                        self.to_uds.pop_front();
                    }
                    self.to_uds_sent = n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return self.abort(out),
            }
        }
        let freed = self.fwd_cnt.wrapping_sub(self.fwd_cnt_sent);
        // What the guest has sent since it last heard from us, as it sees it.
        let held = self.to_uds_len + self.partial.len();
        let unheard = self.fwd_cnt.wrapping_add(held as u32).wrapping_sub(self.fwd_cnt_sent);
        if freed > 0 && BUF_ALLOC.saturating_sub(unheard) < CREDIT_LOW {
            self.fwd_cnt_sent = self.fwd_cnt;
            out.push(Packet::control(self.header(OP_CREDIT_UPDATE)));
        }
        if self.guest_done_sending
            && self.keep_half_close
            && self.to_uds.is_empty()
            && self.preface.is_empty()
            && !self.uds_write_shut
        {
            self.uds_write_shut = true;
            let _ = self.uds.shutdown(Shutdown::Write);
        }
        if self.guest_done_sending && self.guest_done_receiving && self.to_uds.is_empty() {
            // The guest closed its socket and waits for our RST to finish.
            out.push(Packet::control(self.header(OP_RST)));
            return Verdict::Close;
        }
        if self.is_seqpacket() {
            return self.messages_to_guest(room, out);
        }
        // Towards the guest, as far as its credit goes.
        let mut buf = [0u8; MAX_PAYLOAD as usize];
        while room > PKT_HEADER_SIZE && self.wants_read() {
            let take = (self.credit() as usize).min(buf.len()).min(room - PKT_HEADER_SIZE);
            match self.uds.read(&mut buf[..take]) {
                Ok(0) => {
                    self.uds_eof = true;
                    let mut h = self.header(OP_SHUTDOWN);
                    // Firecracker and vhost-device-vsock turn the host's half-close into
                    // SHUTDOWN of both directions: the guest can send no more after it.
                    h.flags = if self.keep_half_close { SHUTDOWN_SEND } else { SHUTDOWN_SEND | SHUTDOWN_RCV };
                    out.push(Packet::control(h));
                }
                Ok(n) => {
                    self.tx_cnt = self.tx_cnt.wrapping_add(n as u32);
                    room -= PKT_HEADER_SIZE + n;
                    out.push(Packet { hdr: self.header(OP_RW), data: buf[..n].to_vec() });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return self.abort(out),
            }
        }
        Verdict::Keep
    }

    /// SEQPACKET towards the guest: one message at a time from the Unix socket, sent in
    /// packets as the guest's credit and queue allow, EOM on the last. A message larger than
    /// the guest's whole buffer could never be received there: the connection is reset.
    fn messages_to_guest(&mut self, mut room: usize, out: &mut Vec<Packet>) -> Verdict {
        loop {
            if self.from_host.is_empty() {
                if !self.wants_read() {
                    return Verdict::Keep;
                }
                let limit = self.peer_buf_alloc as usize;
                let sock = socket2::SockRef::from(&self.uds);
                // The next message's length first (MSG_TRUNC with MSG_PEEK), then the message.
                let mut probe = [0u8; 1];
                let peeked = hvsock::recv::recv_with_flags(
                    &sock,
                    &mut probe,
                    libc::MSG_TRUNC | libc::MSG_PEEK | libc::MSG_DONTWAIT,
                );
                match peeked {
                    Ok(0) if peer_closed(&self.uds) => {
                        self.uds_eof = true;
                        let mut h = self.header(OP_SHUTDOWN);
                        h.flags =
                            if self.keep_half_close { SHUTDOWN_SEND } else { SHUTDOWN_SEND | SHUTDOWN_RCV };
                        out.push(Packet::control(h));
                        return Verdict::Keep;
                    }
                    // An empty message: vsock carries none (Linux drops them on send too).
                    Ok(0) => {
                        let _ = hvsock::recv::recv_with_flags(&sock, &mut probe, libc::MSG_DONTWAIT);
                        continue;
                    }
                    Ok(n) if n > limit => {
                        tracing::debug!(
                            "switch: the host sent guest {} port {} a message of {n} bytes, more than its buffer of {limit}: reset",
                            self.cid,
                            self.guest_port
                        );
                        return self.abort(out);
                    }
                    Ok(n) => {
                        let mut msg = vec![0u8; n];
                        match hvsock::recv::recv_with_flags(&sock, &mut msg, libc::MSG_DONTWAIT) {
                            Ok(got) if got == n => {}
                            _ => return self.abort(out),
                        }
                        self.from_host = msg;
                        self.from_host_sent = 0;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Verdict::Keep,
                    Err(_) => return self.abort(out),
                }
            }
            while self.from_host_sent < self.from_host.len() {
                let rest = self.from_host.len() - self.from_host_sent;
                let take = rest
                    .min(self.credit() as usize)
                    .min(MAX_PAYLOAD as usize)
                    .min(room.saturating_sub(PKT_HEADER_SIZE));
                if take == 0 {
                    return Verdict::Keep;
                }
                let chunk = self.from_host[self.from_host_sent..self.from_host_sent + take].to_vec();
                self.from_host_sent += take;
                self.tx_cnt = self.tx_cnt.wrapping_add(take as u32);
                room -= PKT_HEADER_SIZE + take;
                let mut hdr = self.header(OP_RW);
                if self.from_host_sent == self.from_host.len() {
                    hdr.flags = SEQ_EOM | SEQ_EOR;
                }
                out.push(Packet { hdr, data: chunk });
            }
            self.from_host = Vec::new();
        }
    }

    /// Gives up on the connection: the guest gets a reset, the Unix side is closed by the
    /// caller dropping it.
    pub fn abort(&mut self, out: &mut Vec<Packet>) -> Verdict {
        out.push(Packet::control(self.header(OP_RST)));
        Verdict::Close
    }
}

/// A SOCK_SEQPACKET receive of 0 bytes is an empty message or the peer's end: the peer has
/// ended when the socket polls as hung up for reading.
fn peer_closed(uds: &UnixStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd { fd: uds.as_raw_fd(), events: libc::POLLRDHUP, revents: 0 };
    // SAFETY: one pollfd, ours, for the call; no waiting.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n < 0 || p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM: usize = usize::MAX;

    /// A guest-initiated connection to a host listener, established; the test holds the
    /// host's end.
    fn established() -> (HostConn, UnixStream) {
        let (ours, host) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        host.set_nonblocking(true).unwrap();
        (HostConn::new(3, 1024, 5000, ours, State::Established), host)
    }

    fn from_guest(c: &HostConn, op: u16, flags: u32, buf_alloc: u32, fwd_cnt: u32, data: &[u8]) -> Packet {
        let mut hdr = c.header(op);
        (hdr.src_cid, hdr.dst_cid, hdr.src_port, hdr.dst_port) = (c.cid, 2, c.guest_port, c.host_port);
        hdr.flags = flags;
        hdr.buf_alloc = buf_alloc;
        hdr.fwd_cnt = fwd_cnt;
        Packet { hdr, data: data.to_vec() }
    }

    fn ops(out: &[Packet]) -> Vec<u16> {
        out.iter().map(|p| p.hdr.op).collect()
    }

    fn read_all(host: &mut UnixStream) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        while let Ok(n) = host.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    #[test]
    fn guest_data_reaches_the_host_and_its_credit_comes_back() {
        let (mut c, mut host) = established();
        let mut out = Vec::new();
        let p = from_guest(&c, OP_RW, 0, 4096, 0, b"hello");
        assert!(matches!(c.on_guest_packet(p, &mut out), Verdict::Keep));
        assert_eq!(read_all(&mut host), b"hello");
        // The guest still has most of its credit: no update (it would be an interrupt).
        assert_eq!(ops(&out), [] as [u16; 0]);
        // Once it believes less than half the buffer is left, it hears of all the freed room.
        let p = from_guest(&c, OP_RW, 0, 4096, 0, &vec![7; CREDIT_LOW as usize]);
        c.on_guest_packet(p, &mut out);
        assert_eq!(read_all(&mut host).len(), CREDIT_LOW as usize);
        assert_eq!(ops(&out), [OP_CREDIT_UPDATE]);
        assert_eq!((out[0].hdr.fwd_cnt, out[0].hdr.buf_alloc), (5 + CREDIT_LOW, BUF_ALLOC));
    }

    /// Guest packets the host is slow to take wait, and come out whole and in order across
    /// partial writes; the guest's credit comes back as they go.
    #[test]
    fn guest_data_waits_for_a_slow_host_in_order() {
        let (mut c, mut host) = established();
        let sent: Vec<u8> = (0..250_000u32).map(|i| (i % 251) as u8).collect();
        let mut out = Vec::new();
        for chunk in sent.chunks(65536) {
            c.on_guest_packet(from_guest(&c, OP_RW, 0, 4096, 0, chunk), &mut out);
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 7000];
        while got.len() < sent.len() {
            match host.read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.pump(ROOM, &mut out);
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, sent);
        c.pump(ROOM, &mut out);
        let last = out.iter().rev().find(|p| p.hdr.op == OP_CREDIT_UPDATE).unwrap();
        // The guest, having sent everything, believes at least half the buffer is free.
        assert!(BUF_ALLOC - (250_000 - last.hdr.fwd_cnt) >= CREDIT_LOW, "{}", last.hdr.fwd_cnt);
    }

    #[test]
    fn a_guest_sending_past_the_offered_buffer_is_reset() {
        let (mut c, _host) = established();
        let mut out = Vec::new();
        let p = from_guest(&c, OP_RW, 0, 4096, 0, &vec![0; BUF_ALLOC as usize + 1]);
        assert!(matches!(c.on_guest_packet(p, &mut out), Verdict::Close));
        assert_eq!(ops(&out), [OP_RST]);
    }

    /// Host data goes to the guest only as far as the guest's credit goes, and as far as
    /// the switch's queue for the guest has room.
    #[test]
    fn host_data_stays_within_the_guests_credit_and_the_queues_room() {
        let (mut c, mut host) = established();
        host.write_all(&[7u8; 10_000]).unwrap();
        let mut out = Vec::new();
        c.on_guest_packet(from_guest(&c, OP_CREDIT_UPDATE, 0, 3000, 0, b""), &mut out);
        assert_eq!(out.iter().map(|p| p.data.len()).sum::<usize>(), 3000);
        out.clear();
        // The guest read 1000: 1000 more, no further.
        c.on_guest_packet(from_guest(&c, OP_CREDIT_UPDATE, 0, 3000, 1000, b""), &mut out);
        assert_eq!(out.iter().map(|p| p.data.len()).sum::<usize>(), 1000);
        out.clear();
        c.peer_buf_alloc = 1 << 30;
        assert!(matches!(c.pump(PKT_HEADER_SIZE + 100, &mut out), Verdict::Keep));
        assert_eq!(out.iter().map(|p| p.data.len()).collect::<Vec<_>>(), [100]);
        out.clear();
        c.pump(ROOM, &mut out);
        assert_eq!(out.iter().map(|p| p.data.len()).sum::<usize>(), 10_000 - 4100);
    }

    /// The counters are u32 for the connection's life; credit is right across their wrap.
    #[test]
    fn credit_to_the_guest_holds_across_counter_wrap() {
        let (mut c, mut host) = established();
        c.tx_cnt = u32::MAX - 9; // nearly 4 GiB sent ...
        host.write_all(&[1u8; 100]).unwrap();
        let mut out = Vec::new();
        // ... of which the guest has taken all but 10, with a 30-byte buffer: 20 more.
        c.on_guest_packet(from_guest(&c, OP_CREDIT_UPDATE, 0, 30, u32::MAX - 19, b""), &mut out);
        assert_eq!(out.iter().map(|p| p.data.len()).sum::<usize>(), 20);
        assert_eq!(c.tx_cnt, 10);
    }

    #[test]
    fn the_hosts_half_close_reaches_the_guest_as_real_vmms_send_it() {
        for (keep, flags) in [(false, SHUTDOWN_SEND | SHUTDOWN_RCV), (true, SHUTDOWN_SEND)] {
            let (mut c, host) = established();
            c.keep_half_close = keep;
            host.shutdown(Shutdown::Write).unwrap();
            let mut out = Vec::new();
            c.on_guest_packet(from_guest(&c, OP_CREDIT_UPDATE, 0, 4096, 0, b""), &mut out);
            assert_eq!(ops(&out), [OP_SHUTDOWN]);
            assert_eq!(out[0].hdr.flags, flags);
        }
    }

    /// The guest's half-close reaches the host only with keep_half_close: real VMMs drop it.
    #[test]
    fn the_guests_half_close_reaches_the_host_only_when_kept() {
        for keep in [false, true] {
            let (mut c, mut host) = established();
            c.keep_half_close = keep;
            let mut out = Vec::new();
            c.on_guest_packet(from_guest(&c, OP_RW, 0, 4096, 0, b"data"), &mut out);
            let shut = from_guest(&c, OP_SHUTDOWN, SHUTDOWN_SEND, 4096, 0, b"");
            assert!(!matches!(c.on_guest_packet(shut, &mut out), Verdict::Close));
            host.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 16];
            assert_eq!(host.read(&mut buf).unwrap(), 4);
            match host.read(&mut buf) {
                Ok(0) => assert!(keep, "end-of-file reached the host"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => assert!(!keep, "no end-of-file"),
                other => panic!("{other:?}"),
            }
        }
    }

    /// The guest's close: SHUTDOWN of both directions; the host sees end of file after the
    /// data, and the guest gets the RST that completes its close.
    #[test]
    fn the_guests_close_ends_the_connection_after_its_data() {
        let (mut c, mut host) = established();
        let mut out = Vec::new();
        c.on_guest_packet(from_guest(&c, OP_RW, 0, 4096, 0, b"last"), &mut out);
        out.clear();
        let shut = from_guest(&c, OP_SHUTDOWN, SHUTDOWN_SEND | SHUTDOWN_RCV, 4096, 0, b"");
        assert!(matches!(c.on_guest_packet(shut, &mut out), Verdict::Close));
        assert_eq!(ops(&out), [OP_RST]);
        assert_eq!(read_all(&mut host), b"last"); // then end of file
    }

    /// Host-initiated: nothing reaches the host before the guest answers; then `OK <port>`
    /// and the bytes that came with the CONNECT line go to the guest first.
    #[test]
    fn a_host_initiated_connection_answers_ok_then_carries_early_bytes() {
        let (ours, mut host) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        host.set_nonblocking(true).unwrap();
        let mut c = HostConn::new(3, 5000, 1 << 30, ours, State::Connecting).with_early(b"early".to_vec());
        assert!(!c.wants_read() && !c.wants_write());
        let mut out = Vec::new();
        c.on_guest_packet(from_guest(&c, OP_RESPONSE, 0, 4096, 0, b""), &mut out);
        assert_eq!(c.state, State::Established);
        assert_eq!(ops(&out), [OP_RW]);
        assert_eq!(out[0].data, b"early");
        assert_eq!(read_all(&mut host), format!("OK {}\n", 1 << 30).as_bytes());
    }

    #[test]
    fn a_connection_the_guest_does_not_answer_expires() {
        let (ours, _host) = UnixStream::pair().unwrap();
        let c = HostConn::new(3, 5000, 1 << 30, ours, State::Connecting);
        let now = Instant::now();
        assert!(!c.connect_expired(now));
        assert!(c.connect_expired(now + CONNECT_TIMEOUT + Duration::from_millis(1)));
        let (ours, _host) = UnixStream::pair().unwrap();
        let c = HostConn::new(3, 5000, 1 << 30, ours, State::Established);
        assert!(!c.connect_expired(now + CONNECT_TIMEOUT * 2));
    }
}
