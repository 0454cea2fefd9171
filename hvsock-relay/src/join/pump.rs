//! One direction of a joined connection: read, write what was read, pass the end on as the
//! receiving side's half-close mode says. It reports what happened and decides nothing beyond
//! the bytes: what an end or an error means for the connection is the policy's.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::flow::{Ended, Flow};
use crate::conn::{HalfCloseMode, Reader, Unread, Writer};
use crate::held_up::telling;
use crate::zero_copy::Spliceable;

/// Each direction's buffer starts this small (a relay may hold thousands of quiet
/// connections) and grows, while reads fill it, up to `MAX_BUF` (a bulk stream then moves in
/// reads as large as a vsock socket gives at once, as socat -b 1048576 does).
const FIRST_BUF: usize = 16 * 1024;
/// The largest buffer a direction grows to.
pub const MAX_BUF: usize = 1 << 20;
/// A read that fills this much (at least) is a bulk stream's: splice it, where both sides can
/// be spliced (Linux). Not less: a Unix socket's reads come in at most its ~200 KiB buffer.
#[cfg(target_os = "linux")]
const BULK: usize = 64 * 1024;
/// A byte stream copied to a message connection becomes one message per read, of at most
/// this much (well inside the 256 KiB a vsock peer takes by default).
pub const STREAM_MESSAGE: usize = 64 * 1024;

/// How a direction's copy ended.
#[derive(Debug)]
pub enum PumpEnd {
    /// Its reader ended, everything was written and the end passed on.
    Ended,
    ReadFailed(std::io::Error),
    WriteFailed(std::io::Error),
    /// The driver gave up its held-up write (see [`Flow::refuse`]).
    Refused,
}

/// One direction's buffer: its first size and the sizes it moves between.
pub struct Sizes {
    first: usize,
    least: usize,
    most: usize,
}

impl Sizes {
    /// From what the reading and the writing side carry (`Some(max)`: messages of at most max).
    pub fn new(reads: Option<usize>, writes: Option<usize>) -> Sizes {
        match (reads, writes) {
            // Room for the largest message, always: a read is one message, never a part.
            (Some(max), _) => Sizes { first: max, least: max, most: max },
            // One read, one message: reads are capped.
            (None, Some(_)) => Sizes { first: FIRST_BUF, least: FIRST_BUF, most: STREAM_MESSAGE },
            (None, None) => Sizes { first: FIRST_BUF, least: FIRST_BUF, most: MAX_BUF },
        }
    }
}

/// What one direction needs to know and tell.
pub struct Way<'a> {
    pub sizes: Sizes,
    /// The receiving side's.
    pub half_close: HalfCloseMode,
    /// Whether the receiving side is a socket (not our stdio or a command).
    pub to_socket: bool,
    pub count: &'a AtomicU64,
    /// This direction's news, and the opposite one's.
    pub this: &'a Flow,
    pub back: &'a Flow,
    /// Both sides again, when splice(2) can join them (see `zero_copy`).
    pub splice: Option<(Spliceable, Spliceable)>,
    /// The receiving side's [`Conn::unread`](crate::Conn::unread).
    pub unread: Option<Unread>,
}

/// One direction, until its reader ends (the end passed on), a read or write fails, or the
/// driver refuses it. The reader comes back, for a refused direction to read on.
pub async fn pump(mut from: Reader, to: Writer, way: Way<'_>) -> (PumpEnd, Reader) {
    let this = way.this;
    let end = {
        let _ended = Ended(this);
        tokio::select! {
            end = copy(&mut from, to, way) => end,
            () = this.until_refused() => PumpEnd::Refused,
        }
    };
    this.set_writing(false);
    (end, from)
}

/// After a refusal: what comes is read and dropped (so a command is not stopped by a full
/// pipe, nor a peer by a full window) until it ends, or the driver stops it.
pub async fn drop_rest(mut from: Reader, flow: &Flow) {
    let mut buf = Vec::with_capacity(FIRST_BUF);
    loop {
        buf.clear();
        if !matches!(from.read_buf(&mut buf).await, Ok(n) if n > 0) {
            return;
        }
        flow.moved();
        // A reader that is always ready (stdin from /dev/zero) must not starve the way back.
        tokio::task::coop::consume_budget().await;
    }
}

async fn until_unread(unread: &mut Option<Unread>) {
    match unread {
        Some(f) => f.as_mut().await,
        None => std::future::pending().await,
    }
}

/// [`pump`]'s copy.
async fn copy(from: &mut Reader, mut to: Writer, way: Way<'_>) -> PumpEnd {
    #[cfg_attr(not(target_os = "linux"), allow(unused_mut, unused_variables))]
    let Way { sizes, half_close, to_socket, count, this, back, mut splice, mut unread } = way;
    // Read into spare capacity: no zeroing, and no memory for a connection that moves little
    // (a message connection's large buffer is only touched as far as its messages reach).
    let mut buf: Vec<u8> = Vec::with_capacity(sizes.first);
    loop {
        buf.clear();
        let n = tokio::select! {
            biased;
            r = from.read_buf(&mut buf) => match r {
                Ok(n) => n,
                Err(e) => return PumpEnd::ReadFailed(e),
            },
            // Nothing will read what we would write: this direction is done, as when a write
            // finds a command that stopped reading.
            () = until_unread(&mut unread) => return PumpEnd::Ended,
        };
        if n == 0 {
            break;
        }
        this.moved();
        // Every chunk read goes out now: stdout is line-buffered by std, and an interactive or
        // binary protocol must not wait for a newline that may never come.
        this.set_writing(true);
        if let Err(e) = telling(write(&mut to, &buf), || this.held_up()).await {
            return PumpEnd::WriteFailed(e);
        }
        this.set_writing(false);
        count.fetch_add(n as u64, Ordering::Relaxed);
        // Grow while reads fill the buffer; shrink back when they use a sliver of it, so many
        // slow connections do not each keep a bulk stream's buffer.
        if n == buf.capacity() && n < sizes.most {
            // A bulk stream between two sockets goes on in the kernel, if a pipe can be had.
            #[cfg(target_os = "linux")]
            if n >= BULK {
                if let Some(((from_s, to_s), pipe)) =
                    splice.take().and_then(|e| Some((e, crate::zero_copy::Pipe::new()?)))
                {
                    use crate::zero_copy::{SpliceError, Spliced};
                    drop(std::mem::take(&mut buf));
                    tracing::debug!("a bulk stream: splicing it");
                    let writing = |w| this.set_writing(w);
                    let held_up = || this.held_up();
                    let moved = |n: usize| {
                        this.moved();
                        count.fetch_add(n as u64, Ordering::Relaxed);
                    };
                    match crate::zero_copy::copy(&from_s, &to_s, pipe, writing, held_up, moved).await {
                        Ok(Spliced::End) => break,
                        Ok(Spliced::Unsupported(stranded)) => {
                            tracing::debug!("no splice between these sockets: copying");
                            this.set_writing(true);
                            if let Err(e) = telling(write(&mut to, &stranded), || this.held_up()).await {
                                return PumpEnd::WriteFailed(e);
                            }
                            this.set_writing(false);
                            count.fetch_add(stranded.len() as u64, Ordering::Relaxed);
                        }
                        Err(SpliceError::Read(e)) => return PumpEnd::ReadFailed(e),
                        Err(SpliceError::Write(e)) => return PumpEnd::WriteFailed(e),
                    }
                }
            }
            buf = Vec::with_capacity((4 * n).min(sizes.most));
        } else if buf.capacity() > sizes.least && n <= buf.capacity() / 16 {
            buf = Vec::with_capacity(sizes.least);
        }
    }
    if let Err(e) = to.flush().await {
        return PumpEnd::WriteFailed(e);
    }
    match half_close {
        HalfCloseMode::Never => return PumpEnd::Ended, // `to` ends when its peer closes
        HalfCloseMode::AfterQuiet(quiet) => back.pause(quiet).await,
        HalfCloseMode::Now | HalfCloseMode::Close => {}
    }
    if to_socket && half_close == HalfCloseMode::Now && back.has_ended() {
        // Both ways are over, so the connection is closed next, and a close is this end of
        // data (nothing of the peer's is left unread: its end came first): one system call
        // fewer per connection, as HAProxy closes rather than shuts down a finished one.
        return PumpEnd::Ended;
    }
    match to.shutdown().await {
        Ok(()) => PumpEnd::Ended,
        Err(e) => PumpEnd::WriteFailed(e),
    }
}

async fn write(to: &mut Writer, buf: &[u8]) -> std::io::Result<()> {
    to.write_all(buf).await?;
    to.flush().await
}
