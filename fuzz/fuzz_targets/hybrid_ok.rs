//! A VMM's answer to `CONNECT <port>` on a hybrid-vsock socket: never a panic; a port only for
//! an `OK <port>` line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    if let Ok(port) = hvsock::fuzzing::hybrid_ok_line(line) {
        let text = String::from_utf8_lossy(line);
        assert!(text.starts_with("OK "), "{text:?} gave port {port}");
    }
});
