//! How a server (`relay`, `listen`) stops and stays up: the first SIGINT/SIGTERM
//! closes its listener at once and gives open connections a grace period; a second signal, or
//! the end of the grace period, ends them. Accept failures (EMFILE, …) are waited out, not
//! fatal, and the descriptor limit is raised first so that they are rare.

use std::time::Duration;

use tokio::task::{JoinError, JoinSet};

use crate::conn::Conn;
use crate::listener::Listener;

/// SIGINT and SIGTERM (Ctrl-C and Ctrl-Break on Windows), each time one comes.
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Takes over SIGINT and SIGTERM for this process.
    pub fn new() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// The next signal.
    pub async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Waits after a failed accept: 10 ms, doubling up to 1 s; back to 10 ms after a success.
pub struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MOST: Duration = Duration::from_secs(1);

    /// Starting at the first wait.
    pub fn new() -> Backoff {
        Backoff(Backoff::FIRST)
    }

    /// How long the next wait will be, then wait it.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Backoff::MOST);
    }

    /// The next wait.
    pub fn current(&self) -> Duration {
        self.0
    }

    /// Back to the first wait (after a success).
    pub fn reset(&mut self) {
        self.0 = Backoff::FIRST;
    }
}

/// The next connection, or `None` once a signal has come. A failed accept (EMFILE, …) is told
/// through `tell` with the wait ahead, and waited out.
pub async fn accept_until_signal(
    listener: &Listener,
    signals: &mut Signals,
    backoff: &mut Backoff,
    tell: impl Fn(&std::io::Error, Duration),
) -> Option<Conn> {
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            () = signals.next() => return None,
        };
        match conn {
            Ok(conn) => {
                backoff.reset();
                return Some(conn);
            }
            Err(e) => {
                tell(&e, backoff.current());
                tokio::select! {
                    () = backoff.wait() => {}
                    () = signals.next() => return None,
                }
            }
        }
    }
}

/// After the listener is closed: open connections (`tasks`) run to their end, each told to
/// `on_done` — until a signal, unless one already came (`signalled`) — and then get `grace`;
/// a (further) signal or the end of the grace period cuts the rest: `stop` tells their joins
/// (see [`Options::stop`](crate::Options::stop)), which reset both sides, so that no peer takes
/// a cut connection for a complete one. Returns how many were cut.
pub async fn drain<T: 'static>(
    what: &str,
    tasks: &mut JoinSet<T>,
    grace: Duration,
    signals: &mut Signals,
    signalled: bool,
    stop: tokio::sync::watch::Sender<bool>,
    mut on_done: impl FnMut(Result<T, JoinError>),
) -> usize {
    if !signalled && !tasks.is_empty() {
        tokio::select! {
            () = async { while let Some(done) = tasks.join_next().await { on_done(done) } } => {}
            () = signals.next() => {}
        }
    }
    if tasks.is_empty() {
        return 0;
    }
    eprintln!(
        "{what}: stopping: the listener is closed; {} open connection(s) get {} s to finish (a second signal ends them now)",
        tasks.len(),
        grace.as_secs_f64()
    );
    let all_done = async { while tasks.join_next().await.is_some() {} };
    tokio::select! {
        () = all_done => return 0,
        () = tokio::time::sleep(grace) => {}
        () = signals.next() => {}
    }
    let cut = tasks.len();
    let _ = stop.send(true);
    // A join resets its sides at once; anything else (a handshake, a connect) is aborted.
    let reset = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(1), reset).await.is_err() {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    cut
}
