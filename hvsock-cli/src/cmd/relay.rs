//! `hvsock relay`: forwards every connection on one endpoint to another.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hvsock::{Endpoint, Role, ToSocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::allowlist::Allowlist;
use crate::args::parse_secs;
use crate::endpoints::{self, Conn, HalfClose, Listener};
use crate::splice::{splice, Counters, End};
use crate::stopping::{accept_until_signal, drain, Backoff, Signals};
use crate::wildcard::{Target, MAX_LINE};

/// Forward each connection accepted on FROM to TO, both ways at once (vsock-proxy's and
/// socat's job, many connections at a time).
///
/// TO is fixed (`tcp:127.0.0.1:80`), and is then the only place reached, or has wildcards
/// (`tcp:*:443`, `tcp:*:*`, `vsock:3:*`): each client then names its target in a first line
/// `CONNECT HOST:PORT\n`, gets `OK\n` (or `ERR reason\n` and a close) and then the stream; a
/// wildcard TO needs --allow/--allow-file, and anything not listed is refused and logged.
/// On exit (Ctrl-C, SIGTERM, or --count) it prints a summary.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  hvsock relay vsock:any:8000 tcp:127.0.0.1:80            # vsock-proxy's job: guests reach a host service
  hvsock relay tcp:127.0.0.1:2222 vsock:3:22              # ssh into guest CID 3
  hvsock relay tcp:127.0.0.1:2222 hybrid:/run/fc/v.sock:22   # the same for a Firecracker guest
  hvsock relay vsock:any:8443 'tcp:*:443' --allow-file vsock-proxy.yaml -v")]
pub struct Args {
    /// Where to listen: vsock:, hv:, hybrid:, tcp:, unix: endpoint
    #[arg(value_name = "FROM", value_parser = crate::vms::endpoint)]
    pub from: Endpoint,
    /// Where to connect for each client; `*` for the parts a client names (see above)
    #[arg(value_name = "TO")]
    pub to: String,
    /// HOST:PORT a wildcard TO may reach (repeatable)
    #[arg(long, value_name = "HOST:PORT")]
    pub allow: Vec<String>,
    /// YAML or TOML allowlist (vsock-proxy's format works)
    #[arg(long, value_name = "FILE")]
    pub allow_file: Option<PathBuf>,
    /// At most N connections at once (1 to 1000000); more wait in the listen backlog
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_conns: Option<u32>,
    /// Close a connection after SECS with no data either way
    #[arg(long, value_name = "SECS", value_parser = parse_secs, allow_negative_numbers = true)]
    pub timeout: Option<Duration>,
    /// Seconds to wait when connecting to TO
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs, allow_negative_numbers = true)]
    pub connect_timeout: Duration,
    #[command(flatten)]
    pub half_close: HalfClose,
    /// On SIGINT/SIGTERM, give open connections this long to finish (a second signal ends them)
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub grace: Duration,
    /// Exit after N connections have ended (for scripts)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Log each connection (-v), and more (-vv)
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Default)]
struct Summary {
    connections: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    bytes: Counters,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    crate::stopping::raise_fd_limit();
    crate::logging::init(args.verbose);
    // A fixed TO may name a VM (`vsock:web:80`); a wildcard one is the client's to fill in.
    let target = Arc::new(match args.to.contains('*') {
        false => Target::Fixed(crate::vms::endpoint(&args.to).map_err(anyhow::Error::msg)?),
        true => Target::parse(&args.to)?,
    });
    // What can never be connected to fails now, not once per client.
    if let Target::Fixed(ep) = &*target {
        match ep {
            Endpoint::Vsock(..) | Endpoint::Hv(..) | Endpoint::VsockSeqpacket(..) => {
                ep.to_socket_addr(Role::Connect).map_err(|e| anyhow::anyhow!("TO: {e}"))?;
            }
            Endpoint::Stdio if args.max_conns != Some(1) => anyhow::bail!(
                "TO `-`: concurrent clients would mix their data on stdin/stdout; add --max-conns 1 to take them one at a time"
            ),
            _ => {}
        }
    }
    // Messages kept whole need message endpoints at both ends: a byte stream in between
    // would run them together (and a stream's reads would be cut into arbitrary messages).
    let to_messages = match &*target {
        Target::Fixed(ep) => ep.is_seqpacket(),
        Target::Wildcard { .. } => false,
    };
    let to_stdio = matches!(&*target, Target::Fixed(Endpoint::Stdio));
    if args.from.is_seqpacket() != to_messages && !to_stdio {
        let (messages, stream) = if to_messages { ("TO", "FROM") } else { ("FROM", "TO") };
        anyhow::bail!(
            "{messages} carries messages (SOCK_SEQPACKET) and {stream} a byte stream: their boundaries would be lost; relay a message endpoint to another (vsock-seqpacket:, unix-seqpacket:, hybrid-seqpacket:)"
        );
    }
    let allow = Allowlist::new(&args.allow, args.allow_file.as_deref())?;
    match (&*target, allow.is_empty()) {
        (Target::Fixed(_), false) => {
            anyhow::bail!("--allow/--allow-file apply to a wildcard TO (like tcp:*:443); a fixed TO is its own allowlist")
        }
        (Target::Wildcard { kind, .. }, false) if kind == "tcp" => allow.check_ports(65535, "TCP")?,
        (Target::Wildcard { .. }, true) => {
            anyhow::bail!(
                "a wildcard TO needs --allow HOST:PORT or --allow-file FILE: nothing would be reachable"
            )
        }
        _ => {}
    }
    let rt = endpoints::runtime()?;
    let summary = Arc::new(Summary::default());
    let result = rt.block_on(serve(&args, target, Arc::new(allow), summary.clone()));
    rt.shutdown_background();
    // A relay that never listened has nothing to sum up: its error is the one line.
    let code = result?;
    let s = &summary;
    eprintln!(
        "relay: {} connections ({} refused, {} failed), {} bytes to {}, {} bytes back",
        s.connections.load(Ordering::Relaxed),
        s.refused.load(Ordering::Relaxed),
        s.failed.load(Ordering::Relaxed),
        s.bytes.a_to_b.load(Ordering::Relaxed),
        args.to,
        s.bytes.b_to_a.load(Ordering::Relaxed),
    );
    Ok(code)
}

/// Clients in the CONNECT handshake at once (each for at most 10 s), apart from --max-conns:
/// a crowd of silent clients cannot take the connection slots.
const HANDSHAKES: usize = 256;

async fn serve(
    args: &Args,
    target: Arc<Target>,
    allow: Arc<Allowlist>,
    summary: Arc<Summary>,
) -> anyhow::Result<u8> {
    let mut signals = Signals::new()?;
    let listener = Listener::bind(&args.from).await?;
    eprintln!("listening on {}", listener.local()?);
    let slots = Arc::new(Semaphore::new(args.max_conns.map_or(Semaphore::MAX_PERMITS, |n| n as usize)));
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES));
    let wildcard = matches!(&*target, Target::Wildcard { .. });
    let mut tasks = tokio::task::JoinSet::new();
    let mut backoff = Backoff::new();
    let mut accepted = 0u64;
    let mut signalled = false;
    while args.count.is_none_or(|n| accepted < n) {
        // A fixed TO takes a connection slot before accepting (the rest wait in the backlog);
        // a wildcard TO a handshake slot, and its connection slot once the client has asked.
        let gate = if wildcard { &handshakes } else { &slots };
        let permit = tokio::select! {
            p = gate.clone().acquire_owned() => p.expect("never closed"),
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
        let id = accepted;
        let (target, allow, summary, slots) = (target.clone(), allow.clone(), summary.clone(), slots.clone());
        let settings = Settings {
            wildcard,
            idle: args.timeout,
            connect_timeout: args.connect_timeout,
            half_close: args.half_close,
        };
        let conn = args.half_close.apply(conn);
        tasks.spawn(async move {
            summary.connections.fetch_add(1, Ordering::Relaxed);
            let Some((conn, to)) = handshake(id, conn, &target, &allow, &summary).await else { return };
            let _slot = match &*target {
                Target::Fixed(_) => permit,
                Target::Wildcard { .. } => {
                    drop(permit);
                    slots.acquire_owned().await.expect("never closed")
                }
            };
            relay_one(id, conn, to, &summary, settings).await;
        });
        while tasks.try_join_next().is_some() {}
    }
    // Stop taking connections at once; let the open ones finish (after a signal: for the grace
    // period; after --count: until a signal starts it).
    drop(listener);
    let cut = drain("relay", &mut tasks, args.grace, &mut signals, signalled, drop).await;
    summary.failed.fetch_add(cut as u64, Ordering::Relaxed);
    Ok(if cut == 0 { 0 } else { 1 })
}

/// The target for this client: TO itself, or what its CONNECT line asked for (answered `ERR`
/// and closed when refused).
async fn handshake(
    id: u64,
    mut conn: Conn,
    target: &Target,
    allow: &Allowlist,
    summary: &Summary,
) -> Option<(Conn, Endpoint)> {
    match target {
        Target::Fixed(ep) => Some((conn, ep.clone())),
        Target::Wildcard { .. } => match requested(&mut conn, target, allow).await {
            Ok(ep) => Some((conn, ep)),
            Err(why) => {
                warn!("conn {id} from {}: refused: {why}", conn.peer);
                summary.refused.fetch_add(1, Ordering::Relaxed);
                let _ = conn.writer.write_all(format!("ERR {why}\n").as_bytes()).await;
                let _ = conn.writer.shutdown().await;
                None
            }
        },
    }
}

/// What every relayed connection is handled with.
#[derive(Clone, Copy)]
struct Settings {
    wildcard: bool,
    idle: Option<Duration>,
    connect_timeout: Duration,
    half_close: HalfClose,
}

async fn relay_one(id: u64, mut conn: Conn, to: Endpoint, summary: &Summary, settings: Settings) {
    let Settings { wildcard, idle, connect_timeout, half_close } = settings;
    // Clock reads are system calls in some VMs (UML): only when the log will show them.
    let start = tracing::enabled!(tracing::Level::INFO).then(Instant::now);
    let from = conn.peer.clone();
    let upstream = match endpoints::connect(&to, connect_timeout, 0).await {
        Ok(up) => half_close.apply(up),
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
    let end = splice(conn, upstream, idle, &counters, false).await;
    let (sent, back) = (counters.a_to_b.load(Ordering::Relaxed), counters.b_to_a.load(Ordering::Relaxed));
    summary.bytes.a_to_b.fetch_add(sent, Ordering::Relaxed);
    summary.bytes.b_to_a.fetch_add(back, Ordering::Relaxed);
    let took = start.map_or(0.0, |t| t.elapsed().as_secs_f64());
    match end {
        End::Clean | End::PeerDone => {
            info!("conn {id}: closed, {sent} bytes ->, {back} bytes <-, {took:.3} s")
        }
        End::Error(e) => {
            summary.failed.fetch_add(1, Ordering::Relaxed);
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

/// Reads `CONNECT HOST:PORT\n` byte by byte, so nothing after it is taken from the stream.
async fn requested(conn: &mut Conn, target: &Target, allow: &Allowlist) -> Result<Endpoint, String> {
    let mut line = Vec::new();
    let read = async {
        loop {
            let b = conn.reader.read_u8().await.map_err(|_| "closed before its CONNECT line".to_string())?;
            if b == b'\n' {
                return Ok(());
            }
            line.push(b);
            if line.len() > MAX_LINE {
                return Err(format!("CONNECT line longer than {MAX_LINE} bytes"));
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .map_err(|_| "no CONNECT line in 10 s".to_string())??;
    target.request(&line, allow)
}
