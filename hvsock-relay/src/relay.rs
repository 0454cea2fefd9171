//! Serving a relay: every connection accepted on a listener joined to a target (fixed, or named
//! by the client in a `CONNECT HOST:PORT` line and checked against an allowlist), at most so
//! many at once, until a count or a signal; then a graceful stop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hvsock::Endpoint;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::allowlist::Allowlist;
use crate::conn::{Conn, HalfClosing};
use crate::join::{join, Counters, End, Options};
use crate::listener::Listener;
use crate::peers::Checks;
use crate::stopping::{accept_until_signal, drain, Backoff, Signals};
use crate::wildcard::{Target, MAX_LINE};
use hvsock::line::{Line, LineError};

/// Clients in the CONNECT handshake at once (each for at most 10 s), apart from the connection
/// limit: a crowd of silent clients cannot take the connection slots.
const HANDSHAKES: usize = 256;

/// What a relay serves and how.
pub struct Relay {
    /// Where each client goes.
    pub target: Target,
    /// What a wildcard target may reach.
    pub allow: Allowlist,
    /// Which peers may connect, and how many connections each may hold.
    pub peers: Checks,
    /// At most this many connections at once; more wait in the listen backlog.
    pub max_conns: Option<u32>,
    /// At most this many connections held at once, those still in their `CONNECT` handshake
    /// included: what the descriptor limit allows ([`Ceiling::raise`](crate::descriptors::Ceiling::raise)).
    /// At the ceiling the relay stops accepting, and new clients wait in the listen queue.
    pub ceiling: Option<usize>,
    /// Close a connection after this long with no data either way.
    pub idle: Option<Duration>,
    /// How long connecting to the target may take.
    pub connect_timeout: Duration,
    /// How long a connect to the target that its full listen queue refused is tried again
    /// (see [`connect_patiently`](crate::connect_patiently)); zero: not at all.
    pub full_queue_wait: Duration,
    /// How our end of data is passed on, both sides.
    pub half_close: HalfClosing,
    /// After a signal, how long open connections have to finish.
    pub grace: Duration,
    /// Stop after this many connections have ended.
    pub count: Option<u64>,
}

/// What a relay did, counted as it goes.
#[derive(Default)]
pub struct Summary {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Refused at the handshake.
    pub refused: AtomicU64,
    /// Ended by a failure, the idle limit, or the stop.
    pub failed: AtomicU64,
    /// Whose connect to the target a full listen queue refused at first and that were tried
    /// again.
    pub waited: AtomicU64,
    /// Bytes to the target and back.
    pub bytes: Counters,
}

impl Relay {
    /// Serves `listener` until `count` connections have ended, or a signal (SIGINT/SIGTERM)
    /// and the grace period after it. Returns the exit status: 0, or 1 when open connections
    /// were cut.
    pub async fn serve(self, listener: Listener, mut signals: Signals, summary: Arc<Summary>) -> u8 {
        let this = Arc::new(self);
        let max = this.max_conns.map_or(Semaphore::MAX_PERMITS, |n| n as usize);
        let slots = Arc::new(Semaphore::new(max));
        let handshakes = Arc::new(Semaphore::new(HANDSHAKES));
        let room = Arc::new(Semaphore::new(this.ceiling.unwrap_or(Semaphore::MAX_PERMITS)));
        let wildcard = matches!(this.target, Target::Wildcard { .. });
        // Turned true when the grace period is over: open connections are cut as resets.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        let mut backoff = Backoff::new();
        let mut accepted = 0u64;
        let mut signalled = false;
        while this.count.is_none_or(|n| accepted < n) {
            // A fixed TO takes a connection slot before accepting (the rest wait in the
            // backlog); a wildcard TO a handshake slot, and its connection slot once asked.
            let gate = if wildcard { &handshakes } else { &slots };
            let (permit, room) = tokio::select! {
                p = async {
                    let room = room.clone().acquire_owned().await.expect("never closed");
                    (gate.clone().acquire_owned().await.expect("never closed"), room)
                } => p,
                () = signals.next() => { signalled = true; break }
            };
            let tell = |e: &std::io::Error, wait: Duration| {
                warn!("accept failed: {e}; trying again in {} ms", wait.as_millis())
            };
            let Some(conn) = accept_until_signal(&listener, &mut signals, &mut backoff, tell).await else {
                signalled = true;
                break;
            };
            accepted += 1;
            let peer_place = match this.peers.admit(conn.origin) {
                Ok(place) => place,
                Err(why) => {
                    // Closed unread: nothing of a peer turned away reaches the target.
                    warn!("conn {accepted} from {}: refused: {why}", conn.peer);
                    summary.connections.fetch_add(1, Ordering::Relaxed);
                    summary.refused.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            let (id, this, summary, slots) = (accepted, this.clone(), summary.clone(), slots.clone());
            let conn = this.half_close.apply(conn);
            let stopped = stopped.clone();
            tasks.spawn(async move {
                let _places = (room, peer_place);
                summary.connections.fetch_add(1, Ordering::Relaxed);
                let Some((conn, to)) = this.handshake(id, conn, &summary).await else { return };
                let _slot = match &this.target {
                    Target::Fixed(_) => permit,
                    Target::Wildcard { .. } => {
                        drop(permit);
                        slots.acquire_owned().await.expect("never closed")
                    }
                };
                this.relay_one(id, conn, to, &summary, stopped).await;
            });
            while tasks.try_join_next().is_some() {}
        }
        // Stop taking connections at once; let the open ones finish (after a signal: for the
        // grace period; after the count: until a signal starts it).
        drop(listener);
        let cut = drain("relay", &mut tasks, this.grace, &mut signals, signalled, stop, drop).await;
        summary.failed.fetch_add(cut as u64, Ordering::Relaxed);
        if cut == 0 {
            0
        } else {
            1
        }
    }

    /// The target for this client: TO itself, or what its CONNECT line asked for (answered
    /// `ERR` and closed when refused).
    async fn handshake(&self, id: u64, mut conn: Conn, summary: &Summary) -> Option<(Conn, Endpoint)> {
        if let Target::Fixed(ep) = &self.target {
            return Some((conn, ep.clone()));
        }
        match requested(&mut conn, &self.target, &self.allow).await {
            Ok(ep) => Some((conn, ep)),
            Err(why) => {
                warn!("conn {id} from {}: refused: {why}", conn.peer);
                summary.refused.fetch_add(1, Ordering::Relaxed);
                let _ = conn.writer.write_all(format!("ERR {why}\n").as_bytes()).await;
                let _ = conn.writer.shutdown().await;
                None
            }
        }
    }

    async fn relay_one(
        &self,
        id: u64,
        mut conn: Conn,
        to: Endpoint,
        summary: &Summary,
        stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let wildcard = matches!(self.target, Target::Wildcard { .. });
        // Clock reads are system calls in some VMs (UML): only when the log will show them.
        let start = tracing::enabled!(tracing::Level::INFO).then(Instant::now);
        let from = conn.peer.clone();
        let mut retried = 0u32;
        let mut tell = |e: &std::io::Error, wait: Duration| {
            retried += 1;
            info!(
                "conn {id}: {to} refused it ({e}), as a full listen queue does; trying again in {} ms",
                wait.as_millis()
            );
        };
        let connected =
            crate::connect_patiently(&to, self.connect_timeout, self.full_queue_wait, &mut tell).await;
        if retried > 0 {
            summary.waited.fetch_add(1, Ordering::Relaxed);
        }
        let upstream = match connected {
            Ok(up) => self.half_close.apply(up),
            Err(e) => {
                warn!("conn {id} from {from}: {e:#}");
                summary.failed.fetch_add(1, Ordering::Relaxed);
                if wildcard {
                    let _ = conn.writer.write_all(b"ERR cannot connect\n").await;
                } else if let Some(s) = &conn.socket {
                    let _ = s.sock().set_linger(Some(Duration::ZERO)); // the client sees what we saw
                }
                return;
            }
        };
        if wildcard && conn.writer.write_all(b"OK\n").await.is_err() {
            summary.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        info!("conn {id}: {from} -> {to} open");
        let counters = Counters::default();
        let options = Options { idle: self.idle, stop_when_b_ends: false, stop: Some(stop.clone()) };
        let end = join(conn, upstream, options, &counters).await;
        // A connection cut by the stop is counted by the stop (with those cut before joining).
        let cut = *stop.borrow();
        let (sent, back) = (counters.a_to_b.load(Ordering::Relaxed), counters.b_to_a.load(Ordering::Relaxed));
        summary.bytes.a_to_b.fetch_add(sent, Ordering::Relaxed);
        summary.bytes.b_to_a.fetch_add(back, Ordering::Relaxed);
        let took = start.map_or(0.0, |t| t.elapsed().as_secs_f64());
        match end {
            End::Clean | End::PeerDone => {
                info!("conn {id}: closed, {sent} bytes ->, {back} bytes <-, {took:.3} s")
            }
            End::Error(e) => {
                if !cut {
                    summary.failed.fetch_add(1, Ordering::Relaxed);
                }
                warn!(
                    "conn {id}: {from} -> {to}: {e}; reset the other side after {sent} bytes ->, {back} bytes <-"
                );
            }
            End::Idle => {
                summary.failed.fetch_add(1, Ordering::Relaxed);
                warn!("conn {id}: idle for the --timeout; closed after {sent} bytes ->, {back} bytes <-");
            }
        }
    }
}

/// Reads `CONNECT HOST:PORT\n` byte by byte, so nothing after it is taken from the stream.
async fn requested(conn: &mut Conn, target: &Target, allow: &Allowlist) -> Result<Endpoint, String> {
    let mut line = Line::new(MAX_LINE);
    tokio::time::timeout(Duration::from_secs(10), line.read_from_async(&mut conn.reader))
        .await
        .map_err(|_| "no CONNECT line in 10 s".to_string())?
        .map_err(|e| match e {
            LineError::TooLong { max, .. } => format!("CONNECT line longer than {max} bytes"),
            LineError::Closed | LineError::Io(_) => "closed before its CONNECT line".to_string(),
        })?;
    target.request(line.bytes(), allow)
}
