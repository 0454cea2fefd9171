//! Two guests sending the lab switch arbitrary vsock packets (any op, flags, credit, CIDs,
//! ports, payload) while taking RX buffers at any pace: no panic, and the switch's queues stay
//! bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hvsock_lab::switch::fuzzing::switch_packets(data);
});
