//! Joins two connections: both directions copied at once, end-of-file passed on as a
//! half-close (where the receiving side takes one: see [`HalfCloseMode`]), an error on one
//! side passed on as a reset of the other, a peer that went away found and acted on, an idle
//! limit, a stop.
//!
//! This file is the driver: it runs each direction's copy (`pump`), watches the clock and the
//! sockets, and hands every event to the [`policy`], doing what it says. It decides nothing.

mod events;
mod flow;
pub mod policy;
mod pump;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

pub(crate) use flow::Flow;
use policy::{Action, Dir, Event, Outcome, Probe, ProbeTimer, Reset, Settle, Side, SideInfo, State, Why};
use pump::{drop_rest, pump, PumpEnd, Sizes, Way};
pub use pump::{MAX_BUF, STREAM_MESSAGE};

use crate::conn::{Conn, HalfCloseMode, Kind, Reader, SocketHandle};

/// Bytes moved, counted as they go so a summary can read them at any time.
#[derive(Default, Debug)]
pub struct Counters {
    /// From A to B.
    pub a_to_b: AtomicU64,
    /// From B to A.
    pub b_to_a: AtomicU64,
}

/// How a joined connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// Both directions reached end-of-file.
    Clean,
    /// B's data ended and [`Options::stop_when_b_ends`] was set.
    PeerDone,
    /// A side failed (a read or write error, a refusal, a peer gone before the other side had
    /// finished, a stop); the other side was reset.
    Error(String),
    /// Nothing moved for the idle limit; both sides were reset.
    Idle,
}

/// How two connections are joined.
#[derive(Default, Clone)]
pub struct Options {
    /// End (resetting both) when nothing moves either way for this long.
    pub idle: Option<Duration>,
    /// End as soon as B's data has all reached A (`connect`/`listen` with a terminal on stdin:
    /// the peer closing ends the session while the terminal could stay open for ever).
    pub stop_when_b_ends: bool,
    /// Cut the connection (both sides reset, [`End::Error`]) once this turns true: a server's
    /// grace period is over.
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
}

type Task<'f, T> = Pin<Box<dyn Future<Output = T> + Send + 'f>>;

/// What one direction is doing: copying, or reading and dropping after a refusal.
struct Lane<'f> {
    dir: Dir,
    flow: &'f Flow,
    copy: Option<Task<'f, (PumpEnd, Reader)>>,
    /// The reader of a copy whose write failed, should the policy refuse the direction.
    held: Option<Reader>,
    dropping: Option<Task<'f, ()>>,
}

enum News {
    Copied(PumpEnd, Reader),
    Drained,
}

impl<'f> Lane<'f> {
    fn new(dir: Dir, copy: Task<'f, (PumpEnd, Reader)>, flow: &'f Flow) -> Lane<'f> {
        Lane { dir, flow, copy: Some(copy), held: None, dropping: None }
    }

    async fn next(&mut self) -> News {
        if let Some(copy) = &mut self.copy {
            let (end, reader) = copy.await;
            self.copy = None;
            return News::Copied(end, reader);
        }
        if let Some(dropping) = &mut self.dropping {
            dropping.await;
            self.dropping = None;
            return News::Drained;
        }
        std::future::pending().await
    }

    fn drop_from(&mut self, reader: Reader) {
        self.dropping = Some(Box::pin(drop_rest(reader, self.flow)));
    }

    /// The policy's refusal: the held-up write is given up (or the failed one's reader taken)
    /// and what comes is dropped.
    fn refuse(&mut self) {
        match self.held.take() {
            Some(reader) => self.drop_from(reader),
            None => self.flow.refuse(),
        }
    }
}

/// Copies A->B and B->A until the policy says the connection is over (see [`policy`]).
///
/// ```no_run
/// # async fn demo() -> anyhow::Result<()> {
/// use hvsock_relay::{connect, join, Conn, Counters, Options};
/// // `hvsock connect`, in a few lines: stdin/stdout joined to a guest's port 5000.
/// let peer = connect(&"vsock:3:5000".parse()?, std::time::Duration::from_secs(5), 0).await?;
/// let end = join(Conn::stdio(), peer, Options::default(), &Counters::default()).await;
/// println!("{end:?}");
/// # Ok(()) }
/// ```
pub async fn join(a: Conn, b: Conn, options: Options, counters: &Counters) -> End {
    debug_assert!(a.half_close != HalfCloseMode::Close, "only side B is closed at the other's end");
    let info = |c: &Conn| SideInfo {
        kind: c.kind,
        told_by_eof: c.kind == Kind::Socket && c.half_close != HalfCloseMode::Never,
        closes: c.half_close == HalfCloseMode::Close,
    };
    let mut state = State::new(info(&a), info(&b), options.stop_when_b_ends);
    let probed = |c: &Conn| c.socket.clone().filter(|_| c.probed);
    let probes = [probed(&a), probed(&b)];
    let resets = [a.socket.clone(), b.socket.clone()];
    let peers = [a.peer.clone(), b.peer.clone()];
    let flows = [Flow::default(), Flow::default()];
    // A direction reads `from` and writes `to`; its news is `this`, the way back's `back`.
    let way = |from: &Conn, to: &mut Conn, count, this, back| Way {
        sizes: Sizes::new(from.messages, to.messages),
        half_close: to.half_close,
        to_socket: to.kind == Kind::Socket,
        count,
        this,
        back,
        splice: from.splice.clone().zip(to.splice.clone()),
        unread: to.unread.take(),
    };
    let (mut a, mut b) = (a, b);
    let ab = way(&a, &mut b, &counters.a_to_b, &flows[0], &flows[1]);
    let ba = way(&b, &mut a, &counters.b_to_a, &flows[1], &flows[0]);
    let mut lanes = [
        Lane::new(Dir(Side::A), Box::pin(pump(a.reader, b.writer, ab)), &flows[0]),
        Lane::new(Dir(Side::B), Box::pin(pump(b.reader, a.writer, ba)), &flows[1]),
    ];
    // The errors met, for the end's one line: per direction, and the delivery's.
    let mut errors: [Option<String>; 2] = [None, None];
    let mut undelivered = None;
    let mut settle: Option<(Dir, Task<'_, ()>)> = None;
    let mut delivery: Option<Task<'_, std::io::Result<()>>> = None;
    let gone = |side: Side| peer_gone(probes[side as usize].as_deref());

    // A timer only when a decision can read the check (see ProbeTimer): a thousand idle TCP
    // connections would otherwise wake the relay 500 times a second for nothing, and a
    // pending timer costs a clock read at each of the runtime's wake-ups.
    let timer = state.probe_timer(probes.each_ref().map(Option::is_some));
    let every = || {
        let mut every =
            tokio::time::interval_at(tokio::time::Instant::now() + policy::PROBE_EVERY, policy::PROBE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every
    };
    let mut next_probe = (timer == ProbeTimer::Always).then(every);
    let held_up = || async {
        tokio::select! {
            () = flows[0].until_held_up() => {}
            () = flows[1].until_held_up() => {}
        }
    };
    let mut seen = [0u64; 2];
    let moves = || flows[0].moves() + flows[1].moves();
    let idle = async {
        let Some(idle) = options.idle else { return std::future::pending().await };
        let mut seen = moves();
        loop {
            tokio::time::sleep(idle).await;
            let now = moves();
            if now == seen {
                return;
            }
            seen = now;
        }
    };
    tokio::pin!(idle);
    let mut stop = options.stop.clone();
    let stopped = async {
        match &mut stop {
            Some(stop) => {
                let _ = stop.wait_for(|s| *s).await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stopped);

    let outcome = 'events: loop {
        let [ab_lane, ba_lane] = &mut lanes;
        let event = tokio::select! {
            news = ab_lane.next() => news_event(ab_lane, news, &mut errors, &gone),
            news = ba_lane.next() => news_event(ba_lane, news, &mut errors, &gone),
            () = async { settle.as_mut().expect("guarded").1.as_mut().await }, if settle.is_some() => {
                let (dir, _) = settle.take().expect("guarded");
                Some(Event::SettleOver { dir, writing: flows[dir.index()].is_writing() })
            }
            r = async { delivery.as_mut().expect("guarded").as_mut().await }, if delivery.is_some() => {
                delivery = None;
                undelivered = r.err().map(|e| format!("write: {e}"));
                Some(Event::Delivered { ok: undelivered.is_none() })
            }
            () = held_up(), if next_probe.is_none() && timer == ProbeTimer::WhileHeldUp => {
                next_probe = Some(every());
                seen = [flows[0].moves(), flows[1].moves()];
                None
            }
            _ = async { next_probe.as_mut().expect("guarded").tick().await }, if next_probe.is_some() => {
                let writing = [flows[0].is_writing(), flows[1].is_writing()];
                if timer == ProbeTimer::WhileHeldUp && writing == [false, false] {
                    next_probe = None; // until a write is held up again
                }
                let moved = [0, 1].map(|i| {
                    let now = flows[i].moves();
                    std::mem::replace(&mut seen[i], now) != now
                });
                // Towards A goes B->A (index 1), towards B A->B (index 0).
                let gone = [
                    state.wants_probe(Side::A, writing[1]) && gone(Side::A),
                    state.wants_probe(Side::B, writing[0]) && gone(Side::B),
                ];
                gone.contains(&true).then_some(Event::Probe(Probe { gone, moved, writing }))
            }
            () = &mut idle => Some(Event::Idle),
            () = &mut stopped => Some(Event::Stop),
        };
        let Some(event) = event else { continue };
        tracing::trace!(?event, "join");
        for action in state.decide(event) {
            tracing::trace!(?action, "join");
            match action {
                Action::Refuse(dir) => lanes[dir.index()].refuse(),
                Action::Stop(dir) => {
                    let lane = &mut lanes[dir.index()];
                    (lane.copy, lane.held, lane.dropping) = (None, None, None);
                    if settle.as_ref().is_some_and(|(d, _)| *d == dir) {
                        settle = None;
                    }
                }
                Action::Settle(dir, how) => {
                    let flow = &flows[dir.index()];
                    let wait: Task<'_, ()> = match how {
                        Settle::Quiet(quiet) => Box::pin(flow.pause(quiet)),
                        Settle::Within(time) => Box::pin(tokio::time::sleep(time)),
                    };
                    settle = Some((dir, wait));
                }
                Action::AwaitDelivery => {
                    let socket = resets[Side::B as usize].clone();
                    delivery = Some(Box::pin(async move {
                        if let Some(s) = socket {
                            crate::delivery::taken(s.as_ref()).await?;
                            crate::delivery::drain(s.as_ref());
                        }
                        Ok(())
                    }));
                }
                Action::End(outcome) => break 'events outcome,
            }
        }
    };
    // The copies go first: nothing more is read or written while the sides are told.
    drop(lanes);
    match outcome {
        Outcome::Clean => End::Clean,
        Outcome::PeerDone => End::PeerDone,
        Outcome::Idle => {
            for s in resets.iter().flatten() {
                let _ = s.sock().set_linger(Some(Duration::ZERO));
            }
            End::Idle
        }
        Outcome::Failed { why, reset } => {
            let dir_error = |d: Dir| errors[d.index()].clone();
            let went_away = |side: Side| went_away(&peers[side as usize]);
            let e = match why {
                Why::Read(side) | Why::Write(side) => {
                    let dir = if matches!(why, Why::Read(_)) { Dir(side) } else { Dir(side.other()) };
                    dir_error(dir).unwrap_or_else(|| format!("{} failed", peers[side as usize]))
                }
                // A refusal is the peer gone, if it is, or what the refusing write said.
                Why::Refused(side) if gone(side) => went_away(side),
                Why::Refused(side) => dir_error(Dir(side.other())).unwrap_or_else(|| went_away(side)),
                Why::Gone(side) => went_away(side),
                Why::Undelivered => undelivered.unwrap_or_else(|| "write: not delivered".into()),
                Why::Stopped => "cut: the server stopped (its grace period is over)".into(),
            };
            let reset: Vec<_> = match reset {
                Reset::Side(side) => resets[side as usize].iter().collect(),
                Reset::Both => resets.iter().flatten().collect(),
            };
            for s in reset {
                // The side that did not fail learns of it as a reset, not as a clean end: once
                // it has taken what it was sent (a reset throws that away), or a moment has
                // passed. A stop does not wait: the grace period was that moment.
                if why != Why::Stopped {
                    let taken = crate::delivery::taken(s.as_ref());
                    let _ = tokio::time::timeout(policy::RESET_AFTER, taken).await;
                }
                let _ = s.sock().set_linger(Some(Duration::ZERO));
            }
            End::Error(e)
        }
    }
}

/// What a lane's news means for the policy (a copy given up on the driver's word is not news:
/// its reader goes on being read, and dropped).
fn news_event(
    lane: &mut Lane<'_>,
    news: News,
    errors: &mut [Option<String>; 2],
    gone: &impl Fn(Side) -> bool,
) -> Option<Event> {
    let dir = lane.dir;
    let (end, reader) = match news {
        News::Drained => return Some(Event::Drained(dir)),
        News::Copied(end, reader) => (end, reader),
    };
    let error = &mut errors[dir.index()];
    match end {
        PumpEnd::Ended => Some(Event::Ended { dir, gone: gone(dir.from()) }),
        PumpEnd::ReadFailed(e) => {
            *error = Some(format!("read: {e}"));
            Some(Event::ReadFailed(dir))
        }
        PumpEnd::WriteFailed(e) => {
            let broken_pipe = e.kind() == std::io::ErrorKind::BrokenPipe;
            *error = Some(format!("write: {e}"));
            // Should the policy refuse it, what comes is dropped from here on.
            lane.held = Some(reader);
            Some(Event::WriteFailed { dir, broken_pipe, gone: gone(dir.from()) })
        }
        PumpEnd::Refused => {
            lane.drop_from(reader);
            None
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

#[cfg(test)]
mod tests;
