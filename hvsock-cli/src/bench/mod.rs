//! `hvsock bench`: throughput, round-trip latency and connection rate over any endpoint, every
//! byte checked (see [`pattern`]).

pub mod client;
mod pattern;
pub mod server;
pub mod wire;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use pattern::Pattern;

/// Reads this much at a time: what one read can take from a vsock socket at full speed.
const READ_BUF: usize = 1 << 20;

/// Writes `bytes` of the pattern in writes of `size`, counting them in `moved`.
fn send(s: &mut impl Write, p: &Pattern, bytes: u64, size: usize, moved: &AtomicU64) -> std::io::Result<()> {
    let mut at = 0;
    while at < bytes {
        let n = (bytes - at).min(size as u64) as usize;
        s.write_all(p.at(at, n))?;
        at += n as u64;
        moved.fetch_add(n as u64, Ordering::Relaxed);
    }
    Ok(())
}

/// Reads exactly `bytes` and checks each against the pattern; the first fault, said in words.
/// With `messages` (the writes' size) every read must be one whole write: a lost boundary is
/// a fault too.
fn receive(
    s: &mut impl Read,
    p: &Pattern,
    bytes: u64,
    moved: &AtomicU64,
    messages: Option<usize>,
) -> Result<(), String> {
    let mut buf = vec![0u8; READ_BUF.max(messages.unwrap_or(0))];
    let mut at = 0;
    while at < bytes {
        let want = (bytes - at).min(buf.len() as u64) as usize;
        let n = s.read(&mut buf[..want]).map_err(|e| format!("read after {at} bytes: {e}"))?;
        if n == 0 {
            return Err(format!("the stream ended after {at} of {bytes} bytes"));
        }
        if let Some(size) = messages {
            let sent = (bytes - at).min(size as u64) as usize;
            if n != sent {
                return Err(format!("a message of {n} bytes at offset {at}, where one of {sent} was sent"));
            }
        }
        p.check(at, &buf[..n]).map_err(|off| format!("a wrong byte at offset {off}"))?;
        at += n as u64;
        moved.fetch_add(n as u64, Ordering::Relaxed);
    }
    Ok(())
}
