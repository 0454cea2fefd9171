//! A guest's TX queue (descriptor table, available ring, buffers) as the lab switch reads it:
//! bad chains are skipped, never a panic or a read outside guest memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hvsock_lab::switch::fuzzing::tx_chains(data);
});
