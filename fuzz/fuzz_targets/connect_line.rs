//! A relay client's `CONNECT HOST:PORT` line against wildcard targets and an allowlist: never a
//! panic; whatever it grants is on the allowlist.
#![no_main]

#[path = "../../hvsock-relay/src/allowlist.rs"]
#[allow(dead_code)]
mod allowlist;
#[path = "../../hvsock-relay/src/wildcard.rs"]
#[allow(dead_code)]
mod wildcard;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, &str, &[u8])| {
    let (which, to, line) = input;
    let allow = allowlist::Allowlist::new(
        &["127.0.0.1:80".into(), "localhost:443".into(), "3:5000".into(), "[::1]:8080".into()],
        None,
    )
    .unwrap();
    // The TO text itself is fuzzed too (what a user types).
    let _ = wildcard::Target::wildcard(to);
    let target = ["tcp:*:*", "tcp:localhost:*", "vsock:3:*", "vsock:*:*"][usize::from(which % 4)];
    let target = wildcard::Target::wildcard(target).unwrap();
    if let Ok(ep) = target.request(line, &allow) {
        let shown = ep.to_string();
        let (host, port) = shown.split_once(':').unwrap().1.rsplit_once(':').unwrap();
        assert!(allow.allows(host, port.parse().unwrap()), "{line:?} granted {shown}");
    }
});
