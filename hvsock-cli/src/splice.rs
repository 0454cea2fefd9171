//! Joins two connections: both directions copied at once, end-of-file passed on as a
//! half-close (where the receiving side takes one: see `Conn::half_close`), an error on one
//! side passed on as a reset of the other, an idle limit.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::endpoints::{Conn, HalfCloseMode, Kind, Reader, SocketHandle, Unread, Writer};
use crate::zero_copy::Spliceable;

/// Each direction's buffer starts this small (a relay may hold thousands of quiet
/// connections) and grows, while reads fill it, up to `MAX_BUF` (a bulk stream then moves in
/// reads as large as a vsock socket gives at once, as socat -b 1048576 does).
const FIRST_BUF: usize = 16 * 1024;
pub const MAX_BUF: usize = 1 << 20;
/// A read that fills this much (at least) is a bulk stream's: splice it, where both sides can
/// be spliced (Linux). Not less: a Unix socket's reads come in at most its ~200 KiB buffer.
#[cfg(target_os = "linux")]
const BULK: usize = 64 * 1024;
/// A byte stream copied to a message connection becomes one message per read, of at most
/// this much (well inside the 256 KiB a vsock peer takes by default).
pub const STREAM_MESSAGE: usize = 64 * 1024;

/// How often a connection checks that its peers are still there (well inside the 8 s a
/// closing vsock peer waits before it resets).
const GONE_PROBE: Duration = Duration::from_secs(2);

/// How long our stdin may stay quiet once its peer is found gone at its end-of-file: what was
/// already on its way (an end-of-file a moment behind) still goes, as in socat's 0.5 s `-t`.
const SETTLE: Duration = Duration::from_millis(500);
/// The same for a command (or another side that cannot be told of the end): it may still be at
/// work on what it was sent (saving an upload), silently, on a loaded machine; it is ended well
/// inside the 8 s a closing vsock peer waits before it resets.
const SETTLE_COMMAND: Duration = GONE_PROBE;

/// Bytes moved, counted as they go so a summary can read them at any time.
#[derive(Default, Debug)]
pub struct Counters {
    pub a_to_b: AtomicU64,
    pub b_to_a: AtomicU64,
}

/// How a splice ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// Both directions reached end-of-file.
    Clean,
    /// Side A's data ended and `stop_after_b` was set (stdio: the peer is done).
    PeerDone,
    /// A read or write failed; the other side was reset.
    Error(String),
    /// Nothing moved for the idle limit.
    Idle,
}

/// Copies A->B and B->A until both end. With `stop_when_b_ends`, the splice ends as soon as
/// B's data has all reached A (`connect`/`listen` with a terminal on stdin: the peer closing
/// ends the session while the terminal could stay open forever).
pub async fn splice(
    a: Conn,
    b: Conn,
    idle: Option<Duration>,
    counters: &Counters,
    stop_when_b_ends: bool,
) -> End {
    // A side that is a socket (of any kind) and takes our half-close learns from it that its
    // peer's data has ended, and, if it sends on, fails on the write the gone peer refuses: as
    // TCP tells a peer of a closed socket. Only a side that cannot be told so (a command, our
    // stdio, or --no-shutdown) is ended when its peer is gone, or it might wait for ever.
    let told_by_eof = |c: &Conn| c.kind == Kind::Socket && c.half_close != HalfCloseMode::Never;
    // B (the peer: only B is ever so) closed at the end of A's data ends the splice there.
    debug_assert!(a.half_close != HalfCloseMode::Close, "only side B is closed at the other's end");
    let b_closes = b.half_close == HalfCloseMode::Close;
    let (a_told, b_told) = (told_by_eof(&a), told_by_eof(&b));
    let probed = |c: &Conn| c.socket.clone().filter(|_| c.probed);
    let (a_probe, b_probe) = (probed(&a), probed(&b));
    let (a_reset, b_reset) = (a.socket, b.socket);
    let (a_stdio, b_stdio) = (a.kind == Kind::Stdio, b.kind == Kind::Stdio);
    let settle_for = |stdio: bool| if stdio { SETTLE } else { SETTLE_COMMAND };
    let (a_settle, b_settle) = (settle_for(a_stdio), settle_for(b_stdio));
    // Set while one direction has its last moment (SETTLE*) after the other's peer was found
    // gone: the probe must not end the connection under it.
    let settling = AtomicBool::new(false);

    // Set once we have half-closed that side: its peer then rightly refuses our sends.
    let (a_write_closed, b_write_closed) = (AtomicBool::new(false), AtomicBool::new(false));
    let (a_to_b, b_to_a) = (Flow::new(), Flow::new());
    let pair = |x: &Option<Spliceable>, y: &Option<Spliceable>| x.clone().zip(y.clone());
    let (a_b_splice, b_a_splice) = (pair(&a.splice, &b.splice), pair(&b.splice, &a.splice));
    let forward = pump(
        a.reader,
        b.writer,
        Way {
            sizes: Sizes::new(a.messages, b.messages),
            from: a.kind,
            to: b.kind,
            half_close: b.half_close,
            count: &counters.a_to_b,
            to_closed: &b_write_closed,
            this: &a_to_b,
            back: &b_to_a,
            splice: a_b_splice,
            unread: b.unread,
        },
    );
    let backward = pump(
        b.reader,
        a.writer,
        Way {
            sizes: Sizes::new(b.messages, a.messages),
            from: b.kind,
            to: a.kind,
            half_close: a.half_close,
            count: &counters.b_to_a,
            to_closed: &a_write_closed,
            this: &b_to_a,
            back: &a_to_b,
            splice: b_a_splice,
            unread: a.unread,
        },
    );
    // A peer that went away, while the other side (one that cannot be told by end-of-file:
    // a command) still runs, is found by probing now and then: the connection ends once the
    // gone peer's data has all been delivered, or has stopped moving (the command no longer
    // reads it). Not before: a peer that sends and closes at once has not failed. Our own
    // stdio is not failed by it either: the peer has closed, and the session ends once its data
    // is all out and stdin is quiet (stdout that is slow to take it only waits); input held up
    // in a write the gone peer will never take is refused, not quiet.
    let gone = async {
        if a_told && b_told {
            // Both learn of a gone peer by end-of-file: no probe, and no timer.
            return std::future::pending().await;
        }
        let (mut a_seen, mut b_seen) = (a_to_b.moves(), b_to_a.moves());
        loop {
            tokio::time::sleep(GONE_PROBE).await;
            let (a_quiet, b_quiet) =
                (a_to_b.delivered_or_stuck(&mut a_seen), b_to_a.delivered_or_stuck(&mut b_seen));
            if settling.load(Ordering::Relaxed) {
                continue;
            }
            if !b_told && !a_write_closed.load(Ordering::Relaxed) && peer_gone(a_probe.as_deref()) {
                if !b_stdio && a_quiet {
                    return Err((went_away(&a.peer), Side::B));
                }
                if b_stdio && a_to_b.has_ended() && b_quiet {
                    return if b_to_a.is_writing() { Err((went_away(&a.peer), Side::B)) } else { Ok(false) };
                }
            }
            if !a_told && !b_write_closed.load(Ordering::Relaxed) && peer_gone(b_probe.as_deref()) {
                if !a_stdio && b_quiet {
                    return Err((went_away(&b.peer), Side::A));
                }
                if a_stdio && b_to_a.has_ended() && a_quiet {
                    return if a_to_b.is_writing() { Err((went_away(&b.peer), Side::A)) } else { Ok(false) };
                }
            }
        }
    };
    let both = async {
        tokio::pin!(forward, backward);
        let (mut f_done, mut b_done) = (false, false);
        // A->B: a read error is A's failure, a write error B's (a socket's refusal is told at
        // the end, see `pump`); the other side is reset.
        let forward_failed = |(e, failed)| (e, if failed == Failed::Reader { Side::B } else { Side::A });
        let backward_failed = |(e, failed)| (e, if failed == Failed::Reader { Side::A } else { Side::B });
        while !f_done || !b_done {
            tokio::select! {
                r = &mut forward, if !f_done => {
                    r.map_err(forward_failed)?;
                    f_done = true;
                    if b_closes {
                        // B's peer may still send: it is read on (and dropped) until it has
                        // taken all of ours, or a close would be a reset that loses the rest.
                        if let Some(s) = b_reset.as_deref() {
                            let taken = crate::delivery::taken(s);
                            tokio::pin!(taken);
                            let r = if b_done {
                                (&mut taken).await
                            } else {
                                tokio::select! {
                                    r = &mut backward => { r.map_err(backward_failed)?; (&mut taken).await }
                                    r = &mut taken => r,
                                }
                            };
                            r.map_err(|e| (format!("write: {e}"), Side::A))?;
                            crate::delivery::drain(s);
                        }
                        return Ok(false);
                    }
                    // A's end of data may be A gone altogether, with B still to be heard: B's
                    // data already on its way still goes, then B is ended.
                    if !b_done && !b_told && peer_gone(a_probe.as_deref()) {
                        settling.store(true, Ordering::Relaxed);
                        tokio::select! {
                            biased;
                            r = &mut backward => { r.map_err(backward_failed)?; b_done = true; }
                            () = b_to_a.pause(b_settle) => {
                                let refused = !b_stdio || b_to_a.is_writing();
                                return if refused { Err((went_away(&a.peer), Side::B)) } else { Ok(false) };
                            }
                        }
                    }
                }
                r = &mut backward, if !b_done => {
                    r.map_err(backward_failed)?;
                    b_done = true;
                    if stop_when_b_ends { return Ok(true); }
                    if !f_done && !a_told && peer_gone(b_probe.as_deref()) {
                        settling.store(true, Ordering::Relaxed);
                        tokio::select! {
                            biased;
                            r = &mut forward => { r.map_err(forward_failed)?; f_done = true; }
                            () = a_to_b.pause(a_settle) => {
                                let refused = !a_stdio || a_to_b.is_writing();
                                return if refused { Err((went_away(&b.peer), Side::A)) } else { Ok(false) };
                            }
                        }
                    }
                }
            }
        }
        Ok(false)
    };
    // Idle: nothing moved either way for a whole `idle` (counted in moves, not clock reads).
    let watchdog = async {
        let Some(idle) = idle else { return std::future::pending().await };
        let mut seen = a_to_b.moves() + b_to_a.moves();
        loop {
            tokio::time::sleep(idle).await;
            let now = a_to_b.moves() + b_to_a.moves();
            if now == seen {
                return;
            }
            seen = now;
        }
    };
    let end = tokio::select! {
        r = both => r,
        r = gone => r,
        () = watchdog => {
            for s in [&a_reset, &b_reset].into_iter().flatten() {
                let _ = s.sock().set_linger(Some(Duration::ZERO));
            }
            return End::Idle;
        }
    };
    // A refusal (see `pump`) fails the session, once all else has been delivered.
    let refusal = |flow: &Flow, probe: &Option<Arc<dyn SocketHandle>>, peer: &str| {
        let e = flow.refused.get()?;
        Some(if peer_gone(probe.as_deref()) { went_away(peer) } else { e.clone() })
    };
    let end = match end {
        Ok(_) => match (refusal(&a_to_b, &b_probe, &b.peer), refusal(&b_to_a, &a_probe, &a.peer)) {
            (Some(e), _) => Err((e, Side::A)),
            (None, Some(e)) => Err((e, Side::B)),
            (None, None) => end,
        },
        Err(_) => end,
    };
    match end {
        Ok(false) => End::Clean,
        Ok(true) => End::PeerDone,
        Err((e, reset)) => {
            // The side that did not fail learns of it as a reset, not as a clean end: once it
            // has taken what it was sent (a reset throws that away), or a moment has passed.
            let target = if reset == Side::A { &a_reset } else { &b_reset };
            if let Some(s) = target {
                let _ = tokio::time::timeout(SETTLE_COMMAND, crate::delivery::taken(s.as_ref())).await;
                let _ = s.sock().set_linger(Some(Duration::ZERO));
            }
            End::Error(e)
        }
    }
}

fn went_away(peer: &str) -> String {
    format!("{peer} went away (closed both ways) before the other side had finished")
}

/// Whether the socket's peer has closed both directions, not just its sending one. A vsock
/// peer that closes (or is killed) sends SHUTDOWN with RCV and SEND, and its reader sees only
/// end-of-file, as after a half-close; a zero-length send tells them apart (EPIPE: the peer
/// reads no more). Other sockets answer it with 0 and keep today's half-close handling.
fn peer_gone(socket: Option<&dyn SocketHandle>) -> bool {
    #[cfg(unix)]
    let flags = libc::MSG_NOSIGNAL;
    #[cfg(not(unix))]
    let flags = 0;
    socket.is_some_and(
        |s| matches!(s.sock().send_with_flags(&[], flags), Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe),
    )
}

async fn until_unread(unread: &mut Option<Unread>) {
    match unread {
        Some(f) => f.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Which side to reset after a failure: the one that did not fail.
#[derive(PartialEq, Eq, Clone, Copy)]
enum Side {
    A,
    B,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Failed {
    Reader,
    Writer,
}

/// One direction's news, for the other direction's half-close and the probes: how many
/// chunks it has moved (a counter the data path bumps; watchers compare it over time instead
/// of reading the clock per chunk), and whether it has ended.
struct Flow {
    moves: AtomicU64,
    ended: AtomicBool,
    /// Set while a chunk is being written: input that is quiet only because its peer does not
    /// take it is not done.
    writing: AtomicBool,
    /// Told when `ended` is set.
    ending: tokio::sync::Notify,
    /// Why the receiving socket took no more (see `drop_rest`), once it has refused a write.
    refused: std::sync::OnceLock<String>,
}

impl Flow {
    fn new() -> Flow {
        Flow {
            moves: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            writing: AtomicBool::new(false),
            ending: tokio::sync::Notify::new(),
            refused: std::sync::OnceLock::new(),
        }
    }

    /// Returns once this direction has ended.
    async fn until_ended(&self) {
        let ending = self.ending.notified();
        tokio::pin!(ending);
        ending.as_mut().enable();
        if !self.has_ended() {
            ending.await;
        }
    }

    fn moved(&self) {
        self.moves.fetch_add(1, Ordering::Relaxed);
    }

    fn moves(&self) -> u64 {
        self.moves.load(Ordering::Relaxed)
    }

    fn is_writing(&self) -> bool {
        self.writing.load(Ordering::Relaxed)
    }

    fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }

    /// This direction has ended, or has moved nothing since `seen` (which is brought up to
    /// date).
    fn delivered_or_stuck(&self, seen: &mut u64) -> bool {
        let now = self.moves();
        let stuck = now == *seen;
        *seen = now;
        self.ended.load(Ordering::Relaxed) || stuck
    }

    /// Returns once this direction has ended, or has moved nothing for a whole `quiet`.
    async fn pause(&self, quiet: Duration) {
        loop {
            if self.ended.load(Ordering::Relaxed) {
                return;
            }
            let before = self.moves();
            tokio::time::sleep(quiet).await;
            if self.moves() == before {
                return;
            }
        }
    }
}

/// One direction's buffer: its first size and the sizes it moves between.
struct Sizes {
    first: usize,
    least: usize,
    most: usize,
}

impl Sizes {
    /// From what the reading and the writing side carry (`Some(max)`: messages of at most max).
    fn new(reads: Option<usize>, writes: Option<usize>) -> Sizes {
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
struct Way<'a> {
    sizes: Sizes,
    /// What this direction reads from and writes to.
    from: Kind,
    to: Kind,
    half_close: HalfCloseMode,
    count: &'a AtomicU64,
    /// Set when we half-close the receiving side.
    to_closed: &'a AtomicBool,
    /// This direction's news, and the opposite one's.
    this: &'a Flow,
    back: &'a Flow,
    /// Both sides again, when splice(2) can join them (see `zero_copy`).
    splice: Option<(Spliceable, Spliceable)>,
    /// The receiving side's [`Conn::unread`](crate::endpoints::Conn::unread).
    unread: Option<Unread>,
}

/// Marks a direction ended however its pump returns.
struct Ended<'a>(&'a Flow);

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        self.0.ended.store(true, Ordering::Relaxed);
        self.0.ending.notify_waiters();
    }
}

/// One direction: read until end-of-file, then half-close the writer as its mode says.
async fn pump(mut from: Reader, to: Writer, way: Way<'_>) -> Result<(), (String, Failed)> {
    let (this, back, from_kind, to_kind) = (way.this, way.back, way.from, way.to);
    let _ended = Ended(this);
    match copy(&mut from, to, way).await {
        // A socket that refuses a write (its peer closed both ways, or reset) takes nothing
        // more, but the way back may still be bringing its last data, and a command its last
        // work: ending here would lose them (a guest's greeting refused by a host that had
        // sent and closed killed the command saving the upload). The refusal is told at the end.
        Err((e, Failed::Writer)) if to_kind == Kind::Socket => {
            let _ = this.refused.set(e);
            drop_rest(&mut from, back, (from_kind == Kind::Command).then_some(SETTLE_COMMAND)).await;
            Ok(())
        }
        r => r,
    }
}

/// After a refusal: what comes is read and dropped (so a command is not stopped by a full pipe)
/// until it ends, or the way back has ended: at once then, or, for a command, within `settle`.
async fn drop_rest(from: &mut Reader, back: &Flow, settle: Option<Duration>) {
    let mut buf = Vec::with_capacity(FIRST_BUF);
    let dropping = async {
        loop {
            buf.clear();
            if !matches!(from.read_buf(&mut buf).await, Ok(n) if n > 0) {
                return;
            }
            // A reader that is always ready (stdin from /dev/zero) must not starve the way back.
            tokio::task::coop::consume_budget().await;
        }
    };
    tokio::pin!(dropping);
    tokio::select! {
        () = &mut dropping => return,
        () = back.until_ended() => {}
    }
    if let Some(settle) = settle {
        let _ = tokio::time::timeout(settle, dropping).await;
    }
}

/// [`pump`]'s copy.
async fn copy(from: &mut Reader, mut to: Writer, way: Way<'_>) -> Result<(), (String, Failed)> {
    #[cfg_attr(not(target_os = "linux"), allow(unused_mut, unused_variables))]
    let Way { sizes, to: to_kind, half_close, count, to_closed, this, back, mut splice, mut unread, .. } =
        way;
    let stops_reading_ok = to_kind == Kind::Command;
    // Read into spare capacity: no zeroing, and no memory for a connection that moves little
    // (a message connection's large buffer is only touched as far as its messages reach).
    let mut buf: Vec<u8> = Vec::with_capacity(sizes.first);
    let read_err = |e: std::io::Error| (format!("read: {e}"), Failed::Reader);
    let write_err = |e: std::io::Error| (format!("write: {e}"), Failed::Writer);
    // A write refused by a command that stopped reading its input ends this direction only.
    let write_failed = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::BrokenPipe if stops_reading_ok => Ok(()),
        _ => Err(write_err(e)),
    };
    loop {
        buf.clear();
        let n = tokio::select! {
            biased;
            r = from.read_buf(&mut buf) => r.map_err(read_err)?,
            // Nothing will read what we would write: this direction is done, as when a write
            // finds a command that stopped reading.
            () = until_unread(&mut unread) => return Ok(()),
        };
        if n == 0 {
            break;
        }
        this.moved();
        // Every chunk read goes out now: stdout is line-buffered by std, and an interactive or
        // binary protocol must not wait for a newline that may never come.
        this.writing.store(true, Ordering::Relaxed);
        match to.write_all(&buf).await {
            Ok(()) => to.flush().await.map_err(write_err)?,
            Err(e) => return write_failed(e),
        }
        this.writing.store(false, Ordering::Relaxed);
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
                    drop(std::mem::take(&mut buf));
                    let moved = |n: usize| {
                        this.moved();
                        count.fetch_add(n as u64, Ordering::Relaxed);
                    };
                    tracing::debug!("a bulk stream: splicing it");
                    match crate::zero_copy::copy(&from_s, &to_s, pipe, moved).await {
                        Ok(crate::zero_copy::Spliced::End) => break,
                        Ok(crate::zero_copy::Spliced::Unsupported(stranded)) => {
                            tracing::debug!("no splice between these sockets: copying");
                            if let Err(e) = to.write_all(&stranded).await {
                                return write_failed(e);
                            }
                            count.fetch_add(stranded.len() as u64, Ordering::Relaxed);
                        }
                        Err(crate::zero_copy::SpliceError::Read(e)) => return Err(read_err(e)),
                        Err(crate::zero_copy::SpliceError::Write(e)) => return write_failed(e),
                    }
                }
            }
            buf = Vec::with_capacity((4 * n).min(sizes.most));
        } else if buf.capacity() > sizes.least && n <= buf.capacity() / 16 {
            buf = Vec::with_capacity(sizes.least);
        }
    }
    to.flush().await.map_err(write_err)?;
    match half_close {
        HalfCloseMode::Never => return Ok(()), // `to` ends when its peer closes
        HalfCloseMode::AfterQuiet(quiet) => back.pause(quiet).await,
        HalfCloseMode::Now | HalfCloseMode::Close => {}
    }
    to_closed.store(true, Ordering::Relaxed);
    to.shutdown().await.map_err(write_err)?;
    Ok(())
}
