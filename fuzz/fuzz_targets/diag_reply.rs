//! The kernel's netlink reply to a vsock_diag dump, as `hvsock list` reads it: malformed
//! messages are errors, never a panic or an endless loop.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|msgs: &[u8]| {
    let _ = hvsock::fuzzing::diag_reply(msgs);
});
