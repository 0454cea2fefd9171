//! What the fuzzers under `fuzz/` drive (built only with `--cfg fuzzing`): a device fed
//! arbitrary control messages, arbitrary TX descriptor chains, and a switch fed arbitrary
//! packets from two guests. Anything but a clean return is a fault.

use std::cell::RefCell;
use std::io::Write;
use std::net::Shutdown;

use super::device::Device;
use super::fake_guest::{decode_header, FakeGuest, Rig};
use super::packet::{Packet, PKT_HEADER_SIZE};

/// `data` as the frontend's control messages, to a device set up as UML sets one up.
pub fn vhost_user(data: &[u8]) {
    // Memory comes with descriptors, which a fuzzer cannot send: the table is set already.
    let (mut dev, guest) = FakeGuest::with_memory(3);
    let mut ctl = guest.control_socket();
    ctl.write_all(data).unwrap();
    ctl.shutdown(Shutdown::Write).unwrap();
    // Every message is handled or an error; the end of the input is an error too.
    while dev.handle_control().is_ok() {}
}

/// `data` as the guest's TX queue: descriptor table, available ring and buffer memory.
pub fn tx_chains(data: &[u8]) {
    // One device for every input (setting one up costs more than a run), its queues
    // restarted for each.
    thread_local!(static DEVICE: RefCell<(Device, FakeGuest)> = RefCell::new(FakeGuest::new(3)));
    DEVICE.with_borrow_mut(|(dev, guest)| {
        guest.restart(dev);
        guest.raw_tx(data);
        while dev.pop_tx().is_some() {}
        dev.tx_done();
    });
}

/// `data` as a run of steps between two guests (3 and 4) and the switch: packets with
/// arbitrary headers and payloads, RX buffers offered, rounds of the switch.
pub fn switch_packets(data: &[u8]) {
    thread_local!(static RIG: RefCell<Rig> = RefCell::new(Rig::new(&[3, 4])));
    RIG.with_borrow_mut(|rig| {
        rig.reset();
        rig.core.rx_limit = 8192;
        run_steps(rig, data);
    });
}

fn run_steps(rig: &mut Rig, data: &[u8]) {
    let mut rest = data;
    while let Some((&step, tail)) = rest.split_first() {
        rest = tail;
        let cid = 3 + u64::from(step & 1);
        match step >> 1 & 3 {
            0 | 1 => {
                let Some((raw, tail)) = rest.split_at_checked(PKT_HEADER_SIZE) else { return };
                rest = tail;
                let mut hdr = decode_header(raw);
                hdr.op %= 9; // mostly ops the switch knows
                             // Mostly speak as the sender, to reach past the forged-source check.
                if step & 0x80 == 0 {
                    hdr.src_cid = cid;
                }
                if step & 0x40 == 0 {
                    hdr.dst_cid = [2, 3, 4, 5][usize::from(step >> 3 & 3)];
                }
                let len = (usize::from(raw[24]) * 61).min(rest.len());
                let (payload, tail) = rest.split_at(len);
                rest = tail;
                rig.transmit(cid, Packet { hdr, data: payload.to_vec() });
            }
            2 => {
                rig.receive(cid, usize::from(step >> 3 & 7) + 1);
            }
            _ => {
                rig.core.turn(0);
                rig.core.expire_connecting(std::time::Instant::now() + super::CONNECT_TIMEOUT * 2);
            }
        }
    }
    // Whatever was sent, the queues stay bounded.
    for cid in [3, 4] {
        assert!(rig.queued(cid) <= 8192 + 2 * (PKT_HEADER_SIZE + 65536), "queue for {cid} grew");
    }
}
