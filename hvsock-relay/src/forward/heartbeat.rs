//! The heartbeat: a peer that vanished (a VM powered off, a host side killed with its socket
//! left half open) sends nothing, not even a close; only silence where an answer was due tells.
//! The client sends a byte each period on the `HELLO` stream and the serving end sends it back.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::mux::MuxStream;

/// Periods of silence after which the peer is taken for dead.
pub const MISSED: u32 = 3;

/// The client's side: returns, with the reason, once the serving end has not answered for
/// [`MISSED`] periods, or the stream ended.
pub async fn beat(stream: MuxStream, every: Duration) -> String {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = [0u8; 64];
    let mut silent = 0u32;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if silent >= MISSED {
                    return format!("no heartbeat from the serving end in {} s", (every * MISSED).as_secs_f64());
                }
                silent += 1;
                // A write held up (the connection's own writes are) is a beat missed, not a hang.
                if let Ok(Err(e)) = tokio::time::timeout(every, writer.write_all(b".")).await {
                    return format!("heartbeat: {e}");
                }
            }
            r = reader.read(&mut buf) => match r {
                Ok(0) => return "the serving end ended the heartbeat".into(),
                Ok(_) => silent = 0,
                Err(e) => return format!("heartbeat: {e}"),
            },
        }
    }
}

/// The serving end's side: sends each byte back; returns, with the reason, once the client has
/// sent nothing for [`MISSED`] of its periods (and one more, for its clock and ours), or the
/// stream ended.
pub async fn answer(mut stream: MuxStream, every: Duration) -> String {
    let mut buf = [0u8; 64];
    let within = every * (MISSED + 1);
    loop {
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Err(_) => return format!("no heartbeat from the client in {} s", within.as_secs_f64()),
            Ok(Ok(0)) => return "the client ended the heartbeat".into(),
            Ok(Ok(n)) => {
                if let Ok(Err(e)) = tokio::time::timeout(every, stream.write_all(&buf[..n])).await {
                    return format!("heartbeat: {e}");
                }
            }
            Ok(Err(e)) => return format!("heartbeat: {e}"),
        }
    }
}
