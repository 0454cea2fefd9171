//! vhost-user control messages from the frontend to the lab switch's device: every message is
//! handled or an error that closes the device; never a panic or an allocation it asked for.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hvsock_lab::switch::fuzzing::vhost_user(data);
});
