//! The relay's allow files (YAML as vsock-proxy writes them, or TOML) and entries: never a
//! panic; every entry taken has a host and a port.
#![no_main]

#[path = "../../hvsock-relay/src/allowlist.rs"]
#[allow(dead_code)]
mod allowlist;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, &str)| {
    let (format, text) = input;
    let ext = ["yaml", "toml", "txt"][usize::from(format % 3)];
    let _ = allowlist::parse_file(text, ext);
    let _ = allowlist::Entry::parse(text);
});
