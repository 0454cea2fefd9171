//! The connecting end: listens where `-L` says and carries each connection to the serving end;
//! asks the serving end to listen where `-R` says and joins what comes back to local targets.
//! The connection is made again, with growing waits, whenever it drops; the listeners stay.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hvsock::Endpoint;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::warn;

use super::mux::{self, Mode, Mux, MuxStream};
use super::socks;
use super::spec::Spec;
use super::udp;
use super::wire::{Answer, Request, VERSION};
use super::{answer, ask, carry, heartbeat, receive, reset, Summary};
use crate::conn::Conn;
use crate::listener::Listener;
use crate::stopping::{drain, Backoff, Signals};

/// A forwarding client: what to forward, and to which serving end.
#[derive(Clone, Debug)]
pub struct Forward {
    /// The serving end (`hvsock forward --serve`).
    pub to: Endpoint,
    /// `-L`: listen here, and the serving end connects to the target for each connection.
    pub local: Vec<Spec>,
    /// `-R`: the serving end listens, and we connect to the target for each connection.
    pub remote: Vec<Spec>,
    /// `-D`: SOCKS5 listeners here; the serving end connects to what each client asks for.
    pub socks: Vec<Endpoint>,
    /// `-L udp:`: UDP ports here (`listen` and `target` written as `tcp:` endpoints), each
    /// sender's datagrams a flow of its own to the target, from the serving end.
    pub udp: Vec<Spec>,
    /// A UDP flow with no datagram either way for this long ends.
    pub udp_idle: Duration,
    /// Give up after this many failed tries in a row to make the connection (`None`: never).
    pub retries: Option<u32>,
    /// A heartbeat this often; the serving end is taken for gone after
    /// three unanswered.
    pub keepalive: Duration,
    /// How long a connect (to the serving end, or to a `-R` target) may take; also how long a
    /// connection accepted while the forward connection is down waits for it to come back
    /// before it is reset.
    pub connect_timeout: Duration,
    /// After a signal, how long open streams have to finish.
    pub grace: Duration,
}

/// A connection accepted here, or a stream the serving end opened.
enum Job {
    Local(usize, Conn),
    Remote(yamux::Stream),
}

impl Forward {
    /// A forward to `to` with nothing to forward yet and the command line's defaults.
    pub fn new(to: Endpoint) -> Forward {
        Forward {
            to,
            local: Vec::new(),
            remote: Vec::new(),
            socks: Vec::new(),
            udp: Vec::new(),
            udp_idle: Duration::from_secs(60),
            retries: None,
            keepalive: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            grace: Duration::from_secs(10),
        }
    }

    /// Binds every `-L` listener (one that cannot be is an error now), then
    /// [`run`](Bound::run)s.
    pub async fn run(self, signals: Signals, summary: Arc<Summary>) -> anyhow::Result<u8> {
        Ok(self.bind().await?.run(signals, summary).await)
    }

    /// Binds every `-L` and `-D` listener: a port in use is an error now, not at the first
    /// connection.
    pub async fn bind(self) -> anyhow::Result<Bound> {
        let mut listeners = Vec::new();
        for spec in &self.local {
            listeners
                .push(Listener::bind(&spec.listen).await.with_context(|| format!("-L {}", spec.listen))?);
        }
        for at in &self.socks {
            listeners.push(Listener::bind(at).await.with_context(|| format!("-D {at}"))?);
        }
        let mut datagrams = Vec::new();
        for spec in &self.udp {
            let Some((host, port)) = udp::host_port(&spec.listen) else {
                anyhow::bail!("-L udp:{spec}: not a port")
            };
            let socket = tokio::net::UdpSocket::bind((host.as_str(), port))
                .await
                .with_context(|| format!("-L udp: cannot bind {host}:{port}"))?;
            datagrams.push(socket);
        }
        Ok(Bound { forward: self, listeners, datagrams, up: watch::channel(None) })
    }
}

/// A forward whose `-L` and `-D` listeners are bound.
pub struct Bound {
    forward: Forward,
    listeners: Vec<Listener>,
    datagrams: Vec<tokio::net::UdpSocket>,
    up: (watch::Sender<Option<Mux>>, watch::Receiver<Option<Mux>>),
}

impl Bound {
    /// Where each `-L`, then each `-D`, listens, in order (a port 0 made real).
    pub fn local_addrs(&self) -> anyhow::Result<Vec<String>> {
        self.listeners.iter().map(Listener::local).collect()
    }

    /// Where each `-L udp:` receives, in order.
    pub fn udp_addrs(&self) -> anyhow::Result<Vec<std::net::SocketAddr>> {
        Ok(self.datagrams.iter().map(|s| s.local_addr()).collect::<Result<_, _>>()?)
    }

    /// The connection to the serving end while it is up (and every `-R` asked for), `None`
    /// while it is being made.
    pub fn connection(&self) -> watch::Receiver<Option<Mux>> {
        self.up.1.clone()
    }

    /// Forwards until a signal (and the grace period after it), or until the connection
    /// cannot be made `retries` times in a row, or the serving end refuses a `-R` on the first
    /// connection. Returns the exit status: 0, or 1 when open streams were cut or it gave up.
    pub async fn run(self, mut signals: Signals, summary: Arc<Summary>) -> u8 {
        let (jobs_tx, mut jobs) = mpsc::unbounded_channel();
        let mut accepting = JoinSet::new();
        for (i, listener) in self.listeners.into_iter().enumerate() {
            accepting.spawn(accept(listener, i, jobs_tx.clone()));
        }
        let this = Arc::new(self.forward);
        let (up_tx, up) = self.up;
        let flows = udp::Flows { idle: this.udp_idle, wait: this.connect_timeout };
        for (socket, spec) in self.datagrams.into_iter().zip(&this.udp) {
            let target = udp::host_port(&spec.target).expect("parsed as a port");
            accepting.spawn(udp::serve_local(socket, target, up.clone(), flows));
        }
        let mut keeper = tokio::spawn(this.clone().keep(up_tx, jobs_tx, summary.clone()));
        let (cut, cut_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut n = 0u64;
        let gave_up = loop {
            tokio::select! {
                Some(job) = jobs.recv() => {
                    n += 1;
                    let (this, summary, up, cut) = (this.clone(), summary.clone(), up.clone(), cut_rx.clone());
                    tasks.spawn(async move { this.job(n, job, up, &summary, cut).await });
                }
                Some(_) = tasks.join_next() => {}
                why = &mut keeper => {
                    eprintln!("forward: {}", why.unwrap_or_else(|e| e.to_string()));
                    break true;
                }
                () = signals.next() => break false,
            }
        };
        drop(accepting);
        let cut = drain("forward", &mut tasks, this.grace, &mut signals, true, cut, drop).await;
        keeper.abort();
        u8::from(cut > 0 || gave_up)
    }
}

impl Forward {
    /// Makes the connection, and again each time it drops; returns only when it gives up.
    async fn keep(
        self: Arc<Self>,
        up: watch::Sender<Option<Mux>>,
        jobs: mpsc::UnboundedSender<Job>,
        summary: Arc<Summary>,
    ) -> String {
        let mut first = true;
        let mut backoff = Backoff::new();
        let mut failed = 0u32;
        loop {
            let conn = match crate::connect(&self.to, self.connect_timeout, 0).await {
                Ok(conn) => conn,
                Err(e) => {
                    failed += 1;
                    if self.retries.is_some_and(|r| failed > r) {
                        return format!(
                            "cannot connect to {}: {e:#} (gave up after {failed} tries)",
                            self.to
                        );
                    }
                    warn!(
                        "cannot connect to {}: {e:#}; trying again in {} ms",
                        self.to,
                        backoff.current().as_millis()
                    );
                    backoff.wait().await;
                    continue;
                }
            };
            let (mux, mut inbound, mut driver) = Mux::start(conn, Mode::Client);
            let session = async {
                let hello = Request::Hello { version: VERSION, keepalive: self.keepalive };
                let heartbeat = open(&mux, &hello).await.map_err(|why| format!("HELLO: {why}"))?;
                let mut listening = Vec::new();
                for (id, spec) in self.remote.iter().enumerate() {
                    let request = Request::Listen { id: id as u32, at: spec.listen.clone() };
                    match open(&mux, &request).await {
                        Ok(s) => listening.push(s),
                        Err(why) => {
                            let why = format!("-R {spec}: the serving end refused it: {why}");
                            if first {
                                return Err(why);
                            }
                            warn!("{why}");
                        }
                    }
                }
                Ok((heartbeat, listening))
            };
            let (heartbeat, listening) = match session.await {
                Ok(s) => s,
                Err(why) if first => return why,
                Err(why) => {
                    warn!("{why}; making the connection again");
                    drop(driver);
                    backoff.wait().await;
                    continue;
                }
            };
            if first {
                eprintln!("forward: connected to {}", self.to);
            } else {
                summary.connections.fetch_add(1, Ordering::Relaxed);
                eprintln!("forward: connected to {} again", self.to);
            }
            (first, failed) = (false, 0);
            backoff.reset();
            up.send_replace(Some(mux));
            let beat = heartbeat::beat(heartbeat, self.keepalive);
            tokio::pin!(beat);
            let why = loop {
                tokio::select! {
                    why = &mut driver => break why,
                    why = &mut beat => break why,
                    Some(stream) = inbound.recv() => {
                        let _ = jobs.send(Job::Remote(stream));
                    }
                }
            };
            up.send_replace(None);
            drop(driver);
            drop(listening);
            eprintln!("forward: the connection to {} dropped ({why}); making it again", self.to);
        }
    }

    async fn job(
        &self,
        n: u64,
        job: Job,
        up: watch::Receiver<Option<Mux>>,
        summary: &Summary,
        cut: watch::Receiver<bool>,
    ) {
        match job {
            Job::Local(i, conn) => self.local(n, i, conn, up, summary, cut).await,
            Job::Remote(stream) => self.remote(n, MuxStream::new(stream), summary, cut).await,
        }
    }

    /// A connection to a `-L` listener: carried to its target through the serving end.
    async fn local(
        &self,
        n: u64,
        i: usize,
        mut conn: Conn,
        mut up: watch::Receiver<Option<Mux>>,
        summary: &Summary,
        cut: watch::Receiver<bool>,
    ) {
        // A -L names its target; a -D client names its own, in its SOCKS request.
        let socks = i >= self.local.len();
        let target = match self.local.get(i) {
            Some(spec) => spec.target.clone(),
            None => match socks::handshake(&mut conn.reader, &mut conn.writer).await {
                Ok(target) => target,
                Err(why) => {
                    summary.refused.fetch_add(1, Ordering::Relaxed);
                    return warn!("stream {n}: {}: refused: {why}", conn.peer);
                }
            },
        };
        let label = format!("stream {n}: {} -> {target}", conn.peer);
        let refuse = |mut conn: Conn, why: String| async move {
            summary.refused.fetch_add(1, Ordering::Relaxed);
            warn!("{label}: refused: {why}");
            // A SOCKS client is told why in its reply; any other is reset.
            if socks {
                let _ = conn.writer.write_all(&socks::reply(socks::reply_for(&why))).await;
                let _ = conn.writer.shutdown().await;
            } else {
                reset(conn);
            }
        };
        // While the connection is down, a new connection waits for it (as long as a connect
        // may take), then is refused.
        let waited = tokio::time::timeout(self.connect_timeout, up.wait_for(Option::is_some)).await;
        let Some(mux) = waited.ok().and_then(|r| r.ok().and_then(|mux| mux.clone())) else {
            return refuse(conn, format!("the connection to {} is down", self.to)).await;
        };
        match open(&mux, &Request::Open(target.clone())).await {
            Ok(s) => {
                if socks && conn.writer.write_all(&socks::reply(socks::Reply::Ok)).await.is_err() {
                    return;
                }
                let label = format!("stream {n}: {} -> {target}", conn.peer);
                carry(&label, conn, mux::conn(s, format!("{target} through {}", self.to)), summary, cut).await
            }
            Err(why) => refuse(conn, why).await,
        }
    }

    /// A stream the serving end opened for a connection to a `-R` listener: joined to the
    /// local target.
    async fn remote(&self, n: u64, mut s: MuxStream, summary: &Summary, cut: watch::Receiver<bool>) {
        let request = receive(&mut s).await.and_then(|line| Request::parse(&line));
        let spec = match request {
            Ok(Request::Accepted { id }) => self.remote.get(id as usize).ok_or(format!("no -R number {id}")),
            Ok(other) => Err(format!("`{}` from the serving end", other.line())),
            Err(why) => Err(why),
        };
        let spec = match spec {
            Ok(spec) => spec,
            Err(why) => {
                warn!("stream {n}: refused: {why}");
                return answer(&mut s, Answer::Err(why)).await;
            }
        };
        let label = format!("stream {n}: {} -> {}", spec.listen, spec.target);
        match crate::connect(&spec.target, self.connect_timeout, 0).await {
            Ok(target) => {
                answer(&mut s, Answer::Ok).await;
                carry(
                    &label,
                    mux::conn(s, format!("{} through {}", spec.listen, self.to)),
                    target,
                    summary,
                    cut,
                )
                .await;
            }
            Err(e) => {
                summary.refused.fetch_add(1, Ordering::Relaxed);
                let why = format!("cannot connect to {}: {e:#}", spec.target);
                warn!("{label}: {why}");
                answer(&mut s, Answer::Err(why)).await;
            }
        }
    }
}

/// A new stream with `request` answered `OK`.
async fn open(mux: &Mux, request: &Request) -> Result<MuxStream, String> {
    let mut s = MuxStream::new(mux.open().await.map_err(|e| e.to_string())?);
    ask(&mut s, request).await?;
    Ok(s)
}

/// Accepts on a `-L` listener for as long as the forward runs; failures (EMFILE, …) are
/// waited out.
async fn accept(listener: Listener, i: usize, jobs: mpsc::UnboundedSender<Job>) {
    let mut backoff = Backoff::new();
    loop {
        match listener.accept().await {
            Ok(conn) => {
                backoff.reset();
                if jobs.send(Job::Local(i, conn)).is_err() {
                    return;
                }
            }
            Err(e) => {
                warn!("accept failed: {e}; trying again in {} ms", backoff.current().as_millis());
                backoff.wait().await;
            }
        }
    }
}
