//! The host end of a guest's vsock connection: the switch is the vsock peer, and the data
//! goes to and from a Unix socket, the hybrid-vsock way (Firecracker, Cloud Hypervisor).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;

use super::packet::*;

/// What we offer the guest to fill: our receive buffer per connection.
pub const BUF_ALLOC: u32 = 256 * 1024;
/// Tell the guest about freed room at least this often.
const CREDIT_STEP: u32 = 64 * 1024;

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
    /// Bytes for the Unix socket before any data: the handshake's `OK <port>\n`.
    preface: Vec<u8>,
    /// Data from the guest not yet written to the Unix socket.
    to_uds: VecDeque<u8>,
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
    /// Tell the guest a host half-close as SHUTDOWN SEND only; real VMMs send RCV|SEND.
    pub keep_half_close: bool,
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
            preface: Vec::new(),
            to_uds: VecDeque::new(),
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
        }
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
            type_: TYPE_STREAM,
            op,
            flags: 0,
            buf_alloc: BUF_ALLOC,
            fwd_cnt: self.fwd_cnt,
        }
    }

    fn credit(&self) -> u32 {
        self.peer_buf_alloc.saturating_sub(self.tx_cnt.wrapping_sub(self.peer_fwd_cnt))
    }

    /// Wants to read its Unix socket now.
    pub fn wants_read(&self) -> bool {
        self.state == State::Established && !self.uds_eof && !self.guest_done_receiving && self.credit() > 0
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
                if self.to_uds.len() + pkt.data.len() > BUF_ALLOC as usize {
                    // More than the credit we gave: the guest broke the protocol.
                    out.push(Packet::control(self.header(OP_RST)));
                    return Verdict::Close;
                }
                self.to_uds.extend(pkt.data);
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
        self.pump(out)
    }

    /// Moves what can move now: guest data to the Unix socket, Unix data to the guest.
    pub fn pump(&mut self, out: &mut Vec<Packet>) -> Verdict {
        // Towards the Unix socket.
        while !self.preface.is_empty() {
            match self.uds.write(&self.preface) {
                Ok(n) => drop(self.preface.drain(..n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return self.reset(out),
            }
        }
        while self.preface.is_empty() && !self.to_uds.is_empty() {
            let (front, _) = self.to_uds.as_slices();
            match self.uds.write(front) {
                Ok(n) => {
                    self.to_uds.drain(..n);
                    self.fwd_cnt = self.fwd_cnt.wrapping_add(n as u32);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return self.reset(out),
            }
        }
        let freed = self.fwd_cnt.wrapping_sub(self.fwd_cnt_sent);
        if freed >= CREDIT_STEP || (freed > 0 && self.to_uds.is_empty()) {
            self.fwd_cnt_sent = self.fwd_cnt;
            out.push(Packet::control(self.header(OP_CREDIT_UPDATE)));
        }
        if self.guest_done_sending
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
        // Towards the guest, as far as its credit goes.
        let mut buf = [0u8; MAX_PAYLOAD as usize];
        while self.wants_read() {
            let room = (self.credit() as usize).min(buf.len());
            match self.uds.read(&mut buf[..room]) {
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
                    out.push(Packet { hdr: self.header(OP_RW), data: buf[..n].to_vec() });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return self.reset(out),
            }
        }
        Verdict::Keep
    }

    fn reset(&mut self, out: &mut Vec<Packet>) -> Verdict {
        out.push(Packet::control(self.header(OP_RST)));
        Verdict::Close
    }
}
