//! The serving end (`hvsock forward --serve ENDPOINT`): each client's connection carries its
//! streams; each stream asks to reach a target (`OPEN`) or to listen (`LISTEN`), and gets
//! only what the allowlists name.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hvsock::Endpoint;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::mux::{self, Mode, Mux, MuxStream};
use super::wire::{Answer, Request};
use super::{answer, ask, carry, heartbeat, receive, reset, Summary};
use crate::allowlist::Allowlist;
use crate::conn::Conn;
use crate::listener::Listener;
use crate::stopping::{accept_until_signal, drain, Backoff, Signals};

/// What the serving end lets its clients do.
pub struct Server {
    /// The targets a client may have us connect to (`-L`): `HOST:PORT` entries as the relay's,
    /// and Unix socket paths. Empty: none (the default is to deny).
    pub allow: Allowlist,
    /// Where a client may have us listen (`-R`): `HOST:PORT` (the address as the client
    /// writes it, `0.0.0.0` for every one) and Unix socket paths. Empty: nowhere.
    pub allow_listen: Allowlist,
    /// How long connecting to a target may take.
    pub connect_timeout: Duration,
    /// After a signal, how long open streams have to finish.
    pub grace: Duration,
    /// A UDP flow with no datagram either way for this long ends.
    pub udp_idle: Duration,
}

impl Server {
    /// Serves `listener` until a signal (SIGINT/SIGTERM) and the grace period after it.
    /// Returns the exit status: 0, or 1 when open streams were cut.
    pub async fn serve(self, listener: Listener, mut signals: Signals, summary: Arc<Summary>) -> u8 {
        let this = Arc::new(self);
        // True once a signal came: each client's session ends when its streams have.
        let (stopping, stopping_rx) = watch::channel(false);
        // True once the grace period is over: open streams are cut.
        let (cut, cut_rx) = watch::channel(false);
        let mut sessions = JoinSet::new();
        let mut backoff = Backoff::new();
        let mut id = 0u64;
        let tell = |e: &std::io::Error, wait: Duration| {
            warn!("accept failed: {e}; trying again in {} ms", wait.as_millis())
        };
        while let Some(conn) = accept_until_signal(&listener, &mut signals, &mut backoff, tell).await {
            id += 1;
            summary.connections.fetch_add(1, Ordering::Relaxed);
            let session = Session {
                id,
                server: this.clone(),
                summary: summary.clone(),
                active: Arc::new(watch::Sender::new(0)),
                cut: cut_rx.clone(),
            };
            sessions.spawn(session.run(conn, stopping_rx.clone()));
            while sessions.try_join_next().is_some() {}
        }
        drop(listener);
        let _ = stopping.send(true);
        let cut = drain("forward", &mut sessions, this.grace, &mut signals, true, cut, drop).await;
        u8::from(cut > 0)
    }

    fn may_reach(&self, to: &Endpoint) -> bool {
        allowed(&self.allow, to)
    }
}

fn allowed(list: &Allowlist, ep: &Endpoint) -> bool {
    match ep {
        Endpoint::Tcp(host, port) => list.allows(host, u32::from(*port)),
        Endpoint::Unix(path) => list.allows_path(path),
        _ => false,
    }
}

/// One client's connection.
#[derive(Clone)]
struct Session {
    id: u64,
    server: Arc<Server>,
    summary: Arc<Summary>,
    /// Forwarded streams open now (a stopping session waits for them, not for its heartbeat
    /// or its listeners).
    active: Arc<watch::Sender<usize>>,
    cut: watch::Receiver<bool>,
}

impl Session {
    async fn run(self, conn: Conn, mut stopping: watch::Receiver<bool>) {
        let peer = conn.peer.clone();
        info!("client {}: {peer} connected", self.id);
        let (mux, mut inbound, mut driver) = Mux::start(conn, Mode::Server);
        let mut tasks = JoinSet::new();
        let mut n = 0u64;
        let mut active = self.active.subscribe();
        let why = loop {
            let idle = |stopping: &watch::Receiver<bool>| *stopping.borrow() && *self.active.borrow() == 0;
            tokio::select! {
                stream = inbound.recv() => match stream {
                    Some(stream) => {
                        n += 1;
                        tasks.spawn(self.clone().stream(n, MuxStream::new(stream), mux.clone()));
                    }
                    None => break (&mut driver).await,
                },
                why = &mut driver => break why,
                Some(done) = tasks.join_next() => {
                    if let Ok(Some(why)) = done {
                        break why; // the heartbeat stopped
                    }
                    if idle(&stopping) {
                        break "stopping".into();
                    }
                }
                _ = stopping.changed(), if !*stopping.borrow() => {
                    if idle(&stopping) {
                        break "stopping".into();
                    }
                }
                _ = active.changed(), if *stopping.borrow() => {
                    if idle(&stopping) {
                        break "stopping".into();
                    }
                }
            }
        };
        // Every stream of a dropped connection reads a reset, and passes it on.
        drop(driver);
        info!("client {}: {peer} gone: {why}", self.id);
        if tokio::time::timeout(Duration::from_secs(1), async { while tasks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            tasks.abort_all();
        }
    }

    /// One stream the client opened: its request, then what it asks for. The heartbeat's end
    /// is `Some(reason)`.
    async fn stream(self, n: u64, mut s: MuxStream, mux: Mux) -> Option<String> {
        let label = format!("client {} stream {n}", self.id);
        let request = receive(&mut s).await.and_then(|line| Request::parse(&line));
        let request = match request {
            Ok(r) => r,
            Err(why) => {
                warn!("{label}: refused: {why}");
                answer(&mut s, Answer::Err(why)).await;
                return None;
            }
        };
        match request {
            Request::Hello { keepalive, .. } => {
                answer(&mut s, Answer::Ok).await;
                return Some(heartbeat::answer(s, keepalive).await);
            }
            Request::Open(to) => self.open(&label, s, to).await,
            Request::OpenUdp { host, port } => {
                if !self.server.allow.allows_udp(&host, port.into()) {
                    self.summary.refused.fetch_add(1, Ordering::Relaxed);
                    let why = format!("udp:{host}:{port} is not on the serving end's allowlist");
                    warn!("{label}: refused: {why}");
                    answer(&mut s, Answer::Err(why)).await;
                    return None;
                }
                let _open = Active::new(&self.active);
                self.summary.streams.fetch_add(1, Ordering::Relaxed);
                // `serve_remote` answers OK once its socket is ready; an error is answered here.
                if let Err(why) = super::udp::serve_remote(&mut s, &host, port, self.server.udp_idle).await {
                    self.summary.refused.fetch_add(1, Ordering::Relaxed);
                    warn!("{label}: refused: {why}");
                    answer(&mut s, Answer::Err(why)).await;
                }
            }
            Request::Listen { id, at } => self.listen(&label, s, id, at, mux).await,
            Request::Accepted { .. } => {
                warn!("{label}: refused: ACCEPTED from a client");
                answer(&mut s, Answer::Err("ACCEPTED comes from the serving end".into())).await;
            }
        }
        None
    }

    /// `-L`: connect to `to`, if allowed, and join it to the stream.
    async fn open(&self, label: &str, mut s: MuxStream, to: Endpoint) {
        let refuse = |why: String| {
            self.summary.refused.fetch_add(1, Ordering::Relaxed);
            warn!("{label}: refused: {why}");
            Answer::Err(why)
        };
        if !self.server.may_reach(&to) {
            answer(&mut s, refuse(format!("{to} is not on the serving end's allowlist"))).await;
            return;
        }
        let _open = Active::new(&self.active);
        match crate::connect(&to, self.server.connect_timeout, 0).await {
            Err(e) => answer(&mut s, refuse(format!("cannot connect to {to}: {e:#}"))).await,
            Ok(target) => {
                answer(&mut s, Answer::Ok).await;
                let label = format!("{label}: -> {to}");
                carry(&label, mux::conn(s, "the client".into()), target, &self.summary, self.cut.clone())
                    .await;
            }
        }
    }

    /// `-R`: listen at `at`, if allowed, for as long as the stream is open; each connection
    /// goes back to the client as a stream of ours (`ACCEPTED id`).
    async fn listen(&self, label: &str, mut s: MuxStream, id: u32, at: Endpoint, mux: Mux) {
        if !allowed(&self.server.allow_listen, &at) {
            let why = format!("listening at {at} is not on the serving end's --allow-listen");
            warn!("{label}: refused: {why}");
            answer(&mut s, Answer::Err(why)).await;
            return;
        }
        let listener = match Listener::bind(&at).await {
            Ok(l) => l,
            Err(e) => {
                let why = format!("cannot listen at {at}: {e:#}");
                warn!("{label}: refused: {why}");
                answer(&mut s, Answer::Err(why)).await;
                return;
            }
        };
        answer(&mut s, Answer::Ok).await;
        info!("{label}: listening at {at} for the client");
        let mut joins = JoinSet::new();
        let mut backoff = Backoff::new();
        let mut k = 0u64;
        let mut rest = [0u8; 64];
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(conn) => {
                        backoff.reset();
                        k += 1;
                        let label = format!("{label} conn {k}: {} -> the client", conn.peer);
                        let (this, mux) = (self.clone(), mux.clone());
                        joins.spawn(async move { this.accepted(label, conn, id, mux).await });
                    }
                    Err(e) => {
                        warn!("{label}: accept failed: {e}; trying again in {} ms", backoff.current().as_millis());
                        backoff.wait().await;
                    }
                },
                // The client closes the stream to stop listening (or is gone).
                read = s.read(&mut rest) => if !matches!(read, Ok(n) if n > 0) { break },
                Some(_) = joins.join_next() => {}
            }
        }
        drop(listener);
        while joins.join_next().await.is_some() {}
    }

    async fn accepted(self, label: String, conn: Conn, id: u32, mux: Mux) {
        let _open = Active::new(&self.active);
        let stream = match mux.open().await {
            Ok(stream) => stream,
            Err(e) => {
                warn!("{label}: {e}");
                return reset(conn);
            }
        };
        let mut s = MuxStream::new(stream);
        if let Err(why) = ask(&mut s, &Request::Accepted { id }).await {
            self.summary.refused.fetch_add(1, Ordering::Relaxed);
            warn!("{label}: the client refused it: {why}");
            return reset(conn);
        }
        carry(&label, conn, mux::conn(s, "the client".into()), &self.summary, self.cut.clone()).await;
    }
}

/// Counts a forwarded stream as open while it lives.
struct Active<'a>(&'a watch::Sender<usize>);

impl<'a> Active<'a> {
    fn new(count: &'a watch::Sender<usize>) -> Active<'a> {
        count.send_modify(|n| *n += 1);
        Active(count)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}
