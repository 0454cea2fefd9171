//! A connection between two guests, as the switch sees it pass: each side's credit, so a guest
//! that sends past what its peer offered is caught at the switch instead of filling the
//! switch's queue for that peer.

use super::packet::{Header, Packet, OP_RW};

/// One end: what it offered (its receive buffer and how much of it it has freed) and what it
/// has sent. Counters are u32 byte counts for the connection's life and wrap.
#[derive(Default, Debug, Clone, Copy)]
struct End {
    /// The largest buffer this end has offered: a guest may shrink its buffer while its
    /// peer still acts on the older, larger figure.
    buf_alloc: u32,
    fwd_cnt: u32,
    tx_cnt: u32,
}

/// The two ends, lower (cid, port) first, and the connection's socket type (a reset the
/// switch sends must carry it, or the guest ignores it).
#[derive(Default, Debug)]
pub struct Between {
    ends: [End; 2],
    pub type_: u16,
}

/// The ends of the connection `hdr` belongs to, lower (cid, port) first: the key the switch
/// files it under.
pub fn key(hdr: &Header) -> (u64, u32, u64, u32) {
    if (hdr.src_cid, hdr.src_port) < (hdr.dst_cid, hdr.dst_port) {
        (hdr.src_cid, hdr.src_port, hdr.dst_cid, hdr.dst_port)
    } else {
        (hdr.dst_cid, hdr.dst_port, hdr.src_cid, hdr.src_port)
    }
}

impl Between {
    /// A new connection of socket type `type_`, its counters at 0.
    pub fn new(type_: u16) -> Between {
        Between { type_, ..Between::default() }
    }

    /// Notes a packet passing from one end to the other. `Err(credit)` when it carries more
    /// data than the receiver offered (`credit` bytes): the sender broke the protocol.
    pub fn pass(&mut self, pkt: &Packet) -> Result<(), u32> {
        let h = &pkt.hdr;
        let from = usize::from((h.src_cid, h.src_port) > (h.dst_cid, h.dst_port));
        let (sender, receiver) = (self.ends[from], self.ends[1 - from]);
        if h.op == OP_RW {
            let credit = receiver.buf_alloc.saturating_sub(sender.tx_cnt.wrapping_sub(receiver.fwd_cnt));
            if pkt.data.len() > credit as usize {
                return Err(credit);
            }
        }
        let sender = &mut self.ends[from];
        sender.buf_alloc = sender.buf_alloc.max(h.buf_alloc);
        sender.fwd_cnt = h.fwd_cnt;
        if h.op == OP_RW {
            sender.tx_cnt = sender.tx_cnt.wrapping_add(pkt.data.len() as u32);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::packet::{OP_CREDIT_UPDATE, OP_REQUEST, OP_RESPONSE};
    use super::*;

    fn pkt(from: (u64, u32), to: (u64, u32), op: u16, buf_alloc: u32, fwd_cnt: u32, len: usize) -> Packet {
        Packet::stream(from, to, op, buf_alloc, fwd_cnt, vec![0; len])
    }

    const A: (u64, u32) = (3, 1000);
    const B: (u64, u32) = (4, 5000);

    #[test]
    fn data_within_credit_passes_and_past_it_is_caught() {
        let mut c = Between::default();
        c.pass(&pkt(A, B, OP_REQUEST, 4096, 0, 0)).unwrap();
        c.pass(&pkt(B, A, OP_RESPONSE, 1000, 0, 0)).unwrap();
        c.pass(&pkt(A, B, OP_RW, 4096, 0, 600)).unwrap();
        assert_eq!(c.pass(&pkt(A, B, OP_RW, 4096, 0, 401)), Err(400));
        c.pass(&pkt(A, B, OP_RW, 4096, 0, 400)).unwrap();
        // B reads 300 bytes and says so: 300 more may come.
        c.pass(&pkt(B, A, OP_CREDIT_UPDATE, 1000, 300, 0)).unwrap();
        assert_eq!(c.pass(&pkt(A, B, OP_RW, 4096, 0, 301)), Err(300));
        c.pass(&pkt(A, B, OP_RW, 4096, 0, 300)).unwrap();
        // The other direction has its own account: A offered 4096.
        c.pass(&pkt(B, A, OP_RW, 1000, 300, 4096)).unwrap();
        assert_eq!(c.pass(&pkt(B, A, OP_RW, 1000, 300, 1)), Err(0));
    }

    #[test]
    fn data_before_the_peer_offered_anything_is_caught() {
        let mut c = Between::default();
        c.pass(&pkt(A, B, OP_REQUEST, 4096, 0, 0)).unwrap();
        assert_eq!(c.pass(&pkt(A, B, OP_RW, 4096, 0, 1)), Err(0));
    }

    /// The counters are u32 for a connection's whole life: past 4 GiB they wrap, and the
    /// credit must come out the same as before the wrap.
    #[test]
    fn credit_holds_across_counter_wrap() {
        let mut c = Between::default();
        c.pass(&pkt(B, A, OP_RESPONSE, 65536, 0, 0)).unwrap();
        c.ends[0].tx_cnt = u32::MAX - 100; // A has sent nearly 4 GiB ...
        c.pass(&pkt(B, A, OP_CREDIT_UPDATE, 65536, u32::MAX - 1000, 0)).unwrap(); // ... B read most
                                                                                  // In flight: 900 bytes; credit 65536 - 900.
        c.pass(&pkt(A, B, OP_RW, 0, 0, 65536 - 900)).unwrap();
        assert_eq!(c.ends[0].tx_cnt, (u32::MAX - 100).wrapping_add(65536 - 900));
        assert_eq!(c.pass(&pkt(A, B, OP_RW, 0, 0, 1)), Err(0));
        c.pass(&pkt(B, A, OP_CREDIT_UPDATE, 65536, (u32::MAX - 1000).wrapping_add(10_000), 0)).unwrap();
        assert_eq!(c.pass(&pkt(A, B, OP_RW, 0, 0, 10_001)), Err(10_000));
    }

    #[test]
    fn a_shrunk_buffer_is_not_held_against_a_sender_that_has_not_seen_it() {
        let mut c = Between::default();
        c.pass(&pkt(B, A, OP_RESPONSE, 8192, 0, 0)).unwrap();
        c.pass(&pkt(B, A, OP_CREDIT_UPDATE, 1024, 0, 0)).unwrap();
        c.pass(&pkt(A, B, OP_RW, 0, 0, 8192)).unwrap();
    }
}
