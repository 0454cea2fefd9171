//! How many connections the descriptor limit allows, worked out once at start as HAProxy
//! derives its `maxconn` from it: a server that accepts a client it has no descriptor left to
//! serve (the upstream socket, a spliced pipe) can only reset it, while one that stops
//! accepting at its ceiling leaves new clients waiting in the kernel's listen queue, served as
//! others end.
//!
//! The limit is the process's, so the pipe budget is too: splice pipes are taken from one
//! process-wide count, and a bulk stream that finds none to spare is copied through its buffer
//! as before.
//!
//! ```
//! let c = hvsock_relay::descriptors::Ceiling::of(1024);
//! assert_eq!(c.conns, 240);
//! assert!(c.check(Some(100)).is_ok());
//! assert!(c.check(Some(5000)).unwrap_err().contains("1024"));
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};

/// Descriptors kept for the process's own use: stdio, the listener, the runtime's event and
/// wake-up descriptors, a log file, a resolver's socket, systemd's handed-over sockets.
pub const MARGIN: u64 = 64;

/// What one connection may hold: its two sockets (a command's two pipes in their place), and
/// one spliced pipe's two ends. A connection spliced both ways takes its second pipe only from
/// what other connections do not use (see [`Ceiling::apply`]).
pub const PER_CONN: u64 = 4;

/// The ceiling where the limit sets none (Windows; a hard limit of RLIM_INFINITY): far past
/// any real server, and within what a semaphore counts (tokio's takes at most 2^61 - 1).
pub const MAX_CONNS: usize = 1 << 30;

/// What the descriptor limit allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ceiling {
    /// The limit on open descriptors (the soft one, once raised to the hard one).
    pub limit: u64,
    /// Connections at once that the limit allows.
    pub conns: usize,
}

impl Ceiling {
    /// The ceiling for a limit of `limit` descriptors.
    pub fn of(limit: u64) -> Ceiling {
        let conns = (limit.saturating_sub(MARGIN) / PER_CONN).clamp(1, MAX_CONNS as u64);
        Ceiling { limit, conns: conns as usize }
    }

    /// Raises this process's soft limit on open descriptors to its hard limit (the usual soft
    /// limit of 1024 would refuse clients long before the machine runs out; nginx and socat
    /// raise it too) and returns the ceiling that limit gives, its pipe budget applied.
    pub fn raise() -> Ceiling {
        let ceiling = Ceiling::of(raise_limit());
        ceiling.apply();
        ceiling
    }

    /// Makes this the process's pipe budget: at most one spliced pipe per connection allowed.
    pub fn apply(&self) {
        PIPE_ROOM.store(self.conns, Ordering::Relaxed);
    }

    /// The connections at once a server may take: `max_conns` if the limit allows that many,
    /// the ceiling if none was asked; more than the limit allows is refused, saying why.
    pub fn check(&self, max_conns: Option<u32>) -> Result<usize, String> {
        match max_conns.map(|n| n as usize) {
            None => Ok(self.conns),
            Some(n) if n <= self.conns => Ok(n),
            Some(n) => Err(format!(
                "--max-conns {n}: the limit of {} open files allows at most {} connections at once ({} descriptors each); raise it (ulimit -n, LimitNOFILE= in a systemd unit) or ask for fewer",
                self.limit, self.conns, PER_CONN
            )),
        }
    }
}

/// A blocking count of connections held, for servers that give each one a thread: entering
/// waits while `n` are held (the async servers use tokio's semaphore the same way).
pub struct Room {
    held: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
    n: usize,
}

/// One connection's place in a [`Room`], given back when dropped.
pub struct Place<'a>(&'a Room);

impl Room {
    /// A room for `n` connections at once.
    pub fn new(n: usize) -> Room {
        Room { held: std::sync::Mutex::new(0), freed: std::sync::Condvar::new(), n }
    }

    /// A place, once one is free.
    pub fn enter(&self) -> Place<'_> {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let mut held = self.freed.wait_while(held, |h| *h >= self.n).unwrap_or_else(|e| e.into_inner());
        *held += 1;
        Place(self)
    }

    /// A place if one is free now.
    pub fn try_enter(&self) -> Option<Place<'_>> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        (*held < self.n).then(|| {
            *held += 1;
            Place(self)
        })
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        *self.0.held.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.0.freed.notify_one();
    }
}

/// Spliced pipes open now, and how many may be (unbounded until a server applies a ceiling).
#[cfg(target_os = "linux")] // splice(2) is Linux's
static PIPES: AtomicUsize = AtomicUsize::new(0);
static PIPE_ROOM: AtomicUsize = AtomicUsize::new(usize::MAX);

/// One spliced pipe's place in the budget, given back when dropped.
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub(crate) struct PipeRoom(());

#[cfg(target_os = "linux")]
impl PipeRoom {
    /// A place for one more pipe, if the budget has one.
    pub(crate) fn take() -> Option<PipeRoom> {
        let room = PIPE_ROOM.load(Ordering::Relaxed);
        PIPES
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| (open < room).then_some(open + 1))
            .ok()
            .map(|_| PipeRoom(()))
    }
}

#[cfg(target_os = "linux")]
impl Drop for PipeRoom {
    fn drop(&mut self) {
        PIPES.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Raises the soft limit to the hard one; returns the soft limit then in force.
fn raise_limit() -> u64 {
    #[cfg(unix)]
    // SAFETY: getrlimit/setrlimit read and write one struct we own.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return u64::MAX;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, ..lim };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
        #[allow(clippy::useless_conversion)] // rlim_t is u64 on Linux, not everywhere
        u64::try_from(lim.rlim_cur).unwrap_or(u64::MAX)
    }
    // Windows has no per-process socket limit of this kind.
    #[cfg(not(unix))]
    u64::MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_keeps_a_margin_and_four_descriptors_a_connection() {
        for (limit, conns) in
            [(1024, 240), (4096, 1008), (65, 1), (0, 1), (1_048_576, 262_128), (u64::MAX, MAX_CONNS)]
        {
            let c = Ceiling::of(limit);
            assert_eq!(c.conns, conns, "{limit}");
            // Below one connection's worth past the margin, one is still allowed: a server that takes none serves no one.
            assert!(limit < MARGIN + PER_CONN || c.conns as u64 * PER_CONN + MARGIN <= limit, "{limit}");
            // A server makes its semaphore of this many (tokio's panics past 2^61 - 1).
            assert_eq!(tokio::sync::Semaphore::new(c.conns).available_permits(), c.conns);
        }
        let c = Ceiling::of(1024);
        assert_eq!(c.check(None), Ok(240));
        assert_eq!(c.check(Some(240)), Ok(240));
        let e = c.check(Some(241)).unwrap_err();
        assert!(e.contains("--max-conns 241") && e.contains("at most 240") && e.contains("ulimit -n"), "{e}");
    }

    #[test]
    fn a_room_holds_its_places_and_lets_the_next_in_as_one_leaves() {
        let room = Room::new(2);
        let (a, b) = (room.enter(), room.try_enter().unwrap());
        assert!(room.try_enter().is_none(), "a third place in a room of two");
        std::thread::scope(|s| {
            // Whenever it runs, the third gets in only through the place given back below.
            let third = s.spawn(|| drop(room.enter()));
            drop(a);
            third.join().unwrap();
        });
        assert_eq!(*room.held.lock().unwrap(), 1);
        drop(b);
        assert!(room.try_enter().is_some());
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn pipes_are_taken_from_the_budget_and_given_back() {
        // The budget is the process's: this is the only test that sets it.
        Ceiling { limit: 0, conns: 2 }.apply();
        let (a, b) = (PipeRoom::take().unwrap(), PipeRoom::take().unwrap());
        assert!(PipeRoom::take().is_none(), "a third pipe past a budget of two");
        drop(a);
        let c = PipeRoom::take().expect("a pipe given back is there again");
        drop((b, c));
        PIPE_ROOM.store(usize::MAX, Ordering::Relaxed);
    }
}
