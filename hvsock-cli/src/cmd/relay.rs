//! `hvsock relay`: forwards every connection on one endpoint to another.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hvsock::{Endpoint, Role, ToSocketAddr};
use hvsock_relay::{Allowlist, Listener, Relay, Signals, Summary, Target};

use crate::flags::{Backlog, HalfClose, Peers};
use crate::values::{parse_secs, parse_secs_or_zero};
use crate::vms::EndpointArg;

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
    #[arg(value_name = "FROM", value_parser = EndpointArg::parse)]
    pub from: EndpointArg,
    /// Where to connect for each client; `*` for the parts a client names (see above)
    #[arg(value_name = "TO", value_parser = EndpointArg::parse_target)]
    pub to: EndpointArg,
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
    /// Keep trying a connect to TO that its full listen queue refused (a vsock reset, a Unix
    /// EAGAIN, a VMM closing its hybrid socket) for up to SECS, with growing waits, before
    /// resetting the client (0: reset at once)
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs_or_zero)]
    pub full_queue_wait: Duration,
    #[command(flatten)]
    pub half_close: HalfClose,
    #[command(flatten)]
    pub backlog: Backlog,
    #[command(flatten)]
    pub peers: Peers,
    /// On SIGINT/SIGTERM, give open connections this long to finish (a second signal ends them)
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub grace: Duration,
    /// Serve on N threads (default 1: the least CPU per connection; more for many bulk
    /// streams at once on a machine with cores to spare)
    #[arg(long, value_name = "N", default_value = "1", value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u16).range(1..=1024), usize::from))]
    pub threads: usize,
    /// Exit after N connections have ended (for scripts)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Log each connection (-v), and more (-vv)
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let ceiling = hvsock_relay::descriptors::Ceiling::raise();
    ceiling.check(args.max_conns).map_err(anyhow::Error::msg)?;
    crate::logging::init(args.verbose);
    // A fixed TO may name a VM (`vsock:web:80`); a wildcard one is the client's to fill in.
    let target = match args.to.resolved() {
        Some(ep) => Target::Fixed(ep.clone()),
        None => Target::wildcard(args.to.text())?,
    };
    // What can never be connected to fails now, not once per client.
    if let Target::Fixed(ep) = &target {
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
    let to_messages = matches!(&target, Target::Fixed(ep) if ep.is_seqpacket());
    let to_stdio = matches!(&target, Target::Fixed(Endpoint::Stdio));
    if args.from.endpoint().is_seqpacket() != to_messages && !to_stdio {
        let (messages, stream) = if to_messages { ("TO", "FROM") } else { ("FROM", "TO") };
        anyhow::bail!(
            "{messages} carries messages (SOCK_SEQPACKET) and {stream} a byte stream: their boundaries would be lost; relay a message endpoint to another (vsock-seqpacket:, unix-seqpacket:, hybrid-seqpacket:)"
        );
    }
    args.peers.check_for(args.from.endpoint())?;
    let allow = Allowlist::new(&args.allow, args.allow_file.as_deref())?;
    match (&target, allow.is_empty()) {
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
    let relay = Relay {
        target,
        allow,
        peers: args.peers.checks(),
        max_conns: args.max_conns,
        ceiling: Some(ceiling.conns),
        idle: args.timeout,
        connect_timeout: args.connect_timeout,
        full_queue_wait: args.full_queue_wait,
        half_close: args.half_close.settings(),
        grace: args.grace,
        count: args.count,
    };
    let rt = hvsock_relay::runtime(args.threads)?;
    let summary = Arc::new(Summary::default());
    let result = rt.block_on(async {
        let signals = Signals::new()?;
        let listener = Listener::bind_with_backlog(args.from.endpoint(), args.backlog.backlog).await?;
        eprintln!("listening on {}", listener.local()?);
        anyhow::Ok(relay.serve(listener, signals, summary.clone()).await)
    });
    rt.shutdown_background();
    // A relay that never listened has nothing to sum up: its error is the one line.
    let code = result?;
    let s = &summary;
    let waited = match s.waited.load(Ordering::Relaxed) {
        0 => String::new(),
        n => format!("; {n} waited for TO's full listen queue"),
    };
    eprintln!(
        "relay: {} connections ({} refused, {} failed), {} bytes to {}, {} bytes back{waited}",
        s.connections.load(Ordering::Relaxed),
        s.refused.load(Ordering::Relaxed),
        s.failed.load(Ordering::Relaxed),
        s.bytes.a_to_b.load(Ordering::Relaxed),
        args.to.text(),
        s.bytes.b_to_a.load(Ordering::Relaxed),
    );
    Ok(code)
}
