//! virtio-vsock packets as the switch keeps them: an owned header and payload, read from a
//! guest's TX chain and written (split if need be) into a guest's RX chains.

use virtio_queue::DescriptorChain;
use virtio_vsock::packet::VsockPacket;
pub use virtio_vsock::packet::PKT_HEADER_SIZE;
use vm_memory::{Bytes, GuestMemoryMmap};

pub const OP_REQUEST: u16 = 1;
pub const OP_RESPONSE: u16 = 2;
pub const OP_RST: u16 = 3;
pub const OP_SHUTDOWN: u16 = 4;
pub const OP_RW: u16 = 5;
pub const OP_CREDIT_UPDATE: u16 = 6;
pub const OP_CREDIT_REQUEST: u16 = 7;
pub const TYPE_STREAM: u16 = 1;
pub const TYPE_SEQPACKET: u16 = 2;
/// RW flags of a SEQPACKET connection: the packet ends a message, and a record (`MSG_EOR`).
pub const SEQ_EOM: u32 = 1;
pub const SEQ_EOR: u32 = 2;
/// SHUTDOWN flags: the sender will receive no more / send no more.
pub const SHUTDOWN_RCV: u32 = 1;
pub const SHUTDOWN_SEND: u32 = 2;
/// The largest payload Linux puts in one packet.
pub const MAX_PAYLOAD: u32 = 64 * 1024;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub src_cid: u64,
    pub dst_cid: u64,
    pub src_port: u32,
    pub dst_port: u32,
    pub type_: u16,
    pub op: u16,
    pub flags: u32,
    pub buf_alloc: u32,
    pub fwd_cnt: u32,
}

#[derive(Clone, Debug)]
pub struct Packet {
    pub hdr: Header,
    pub data: Vec<u8>,
}

impl Packet {
    pub fn control(hdr: Header) -> Packet {
        Packet { hdr, data: Vec::new() }
    }

    /// A stream packet from (cid, port) to (cid, port), for tests.
    #[cfg(test)]
    pub fn stream(
        from: (u64, u32),
        to: (u64, u32),
        op: u16,
        buf_alloc: u32,
        fwd_cnt: u32,
        data: Vec<u8>,
    ) -> Packet {
        let hdr = Header {
            src_cid: from.0,
            src_port: from.1,
            dst_cid: to.0,
            dst_port: to.1,
            type_: TYPE_STREAM,
            op,
            flags: 0,
            buf_alloc,
            fwd_cnt,
        };
        Packet { hdr, data }
    }

    /// What this packet costs a guest's RX queue in the switch: payload and header.
    pub fn queued_size(&self) -> usize {
        PKT_HEADER_SIZE + self.data.len()
    }

    /// Reads a TX chain; `None` for a chain that is not a well-formed packet.
    pub fn from_tx<C>(mem: &GuestMemoryMmap, chain: &mut DescriptorChain<C>) -> Option<Packet>
    where
        C: std::ops::Deref,
        C::Target: vm_memory::GuestMemory,
    {
        let pkt = VsockPacket::from_tx_virtq_chain(mem, chain, MAX_PAYLOAD).ok()?;
        let mut data = vec![0u8; pkt.len() as usize];
        if let Some(slice) = pkt.data_slice() {
            slice.read_slice(&mut data[..slice.len().min(pkt.len() as usize)], 0).ok()?;
        }
        Some(Packet {
            hdr: Header {
                src_cid: pkt.src_cid(),
                dst_cid: pkt.dst_cid(),
                src_port: pkt.src_port(),
                dst_port: pkt.dst_port(),
                type_: pkt.type_(),
                op: pkt.op(),
                flags: pkt.flags(),
                buf_alloc: pkt.buf_alloc(),
                fwd_cnt: pkt.fwd_cnt(),
            },
            data,
        })
    }

    /// Writes the payload from byte `from` on, as much as the RX chain holds, under this
    /// packet's header; returns the bytes used in the chain and the payload bytes taken (the
    /// caller keeps the rest for the next chain). `None`: the chain cannot hold a packet.
    pub fn write_rx<C>(
        &self,
        from: usize,
        mem: &GuestMemoryMmap,
        chain: &mut DescriptorChain<C>,
    ) -> Option<(u32, usize)>
    where
        C: std::ops::Deref,
        C::Target: vm_memory::GuestMemory,
    {
        let mut pkt = VsockPacket::from_rx_virtq_chain(mem, chain, MAX_PAYLOAD).ok()?;
        pkt.header_slice().write_slice(&[0u8; PKT_HEADER_SIZE], 0).ok()?;
        let room = pkt.data_slice().map_or(0, |s| s.len());
        let rest = self.data.get(from..)?;
        let take = rest.len().min(room);
        if take > 0 {
            pkt.data_slice()?.write_slice(&rest[..take], 0).ok()?;
        }
        let h = &self.hdr;
        // A message's end is marked on its last fragment only, as vhost-vsock does: the
        // receiver would take every marked fragment for a whole message.
        let last = from + take == self.data.len();
        let flags = if last || h.op != OP_RW { h.flags } else { h.flags & !(SEQ_EOM | SEQ_EOR) };
        pkt.set_src_cid(h.src_cid)
            .set_dst_cid(h.dst_cid)
            .set_src_port(h.src_port)
            .set_dst_port(h.dst_port)
            .set_type(h.type_)
            .set_op(h.op)
            .set_flags(flags)
            .set_buf_alloc(h.buf_alloc)
            .set_fwd_cnt(h.fwd_cnt)
            .set_len(take as u32);
        Some(((PKT_HEADER_SIZE + take) as u32, take))
    }
}
