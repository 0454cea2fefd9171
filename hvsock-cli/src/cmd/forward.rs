//! `hvsock forward`: ssh-style -L/-R port forwarding over one host<->VM connection.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hvsock::Endpoint;
use hvsock_relay::forward::{Forward, Local, Server, Spec, Summary};
use hvsock_relay::{Allowlist, Listener, Signals};

use crate::values::parse_secs;
use crate::vms::EndpointArg;

/// Forward any number of ports over one connection to (or from) the other end, as ssh's -L
/// and -R do: one vsock port, or one registered Hyper-V service GUID, serves every forward.
///
/// One end serves (`--serve ENDPOINT`) and says what may be reached (`--allow`, for -L) and
/// where it may listen (`--allow-listen`, for -R); nothing else is. The other end connects to
/// it and forwards: with -L it listens here and the serving end connects to the target for
/// each connection; with -R the serving end listens and each connection is joined to a target
/// here. Each connection is a stream of its own over the one connection (a stalled one holds
/// up only itself); half-closes and resets are passed on. When the connection drops, the
/// client makes it again with growing waits; its -L listeners stay up, and a connection made
/// meanwhile waits up to --connect-timeout for it. On exit (Ctrl-C, SIGTERM) it prints a summary.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  hvsock forward --serve vsock:any:5000 --allow 127.0.0.1:80 --allow-listen 127.0.0.1:9000   # on the host
  hvsock forward vsock:host:5000 -L 8080:127.0.0.1:80 -R 9000:127.0.0.1:22                 # in the guest
  hvsock forward hybrid:/run/fc/v.sock:5000 -L /run/guest-db.sock:/run/db.sock             # a Firecracker guest's
  hvsock forward vsock:host:5000 -D 1080      # a SOCKS5 proxy: the host reaches what its --allow names
  hvsock forward vsock:host:5000 -L udp:53:10.0.2.3:53   # DNS, datagrams kept whole (--allow udp:10.0.2.3:53)
FORWARD: [BIND:]PORT:HOST:PORT (BIND defaults to 127.0.0.1; `*` is every address), or a Unix
socket path on either side (PORT:/run/app.sock, /tmp/l.sock:HOST:PORT).")]
pub struct Args {
    /// The serving end to connect to (vsock:, hv:, hybrid:, tcp:, unix:), or with --serve
    /// where to serve
    #[arg(value_name = "ENDPOINT", value_parser = EndpointArg::parse)]
    pub endpoint: EndpointArg,
    /// Be the serving end: accept clients on ENDPOINT
    #[arg(long)]
    pub serve: bool,
    /// Listen here; the serving end connects to HOST:PORT for each connection; `udp:` before
    /// it forwards UDP datagrams (repeatable)
    #[arg(short = 'L', value_name = "FORWARD", value_parser = Local::parse)]
    pub local: Vec<Local>,
    /// The serving end listens; each connection goes to HOST:PORT here (repeatable)
    #[arg(short = 'R', value_name = "FORWARD", value_parser = Spec::parse)]
    pub remote: Vec<Spec>,
    /// A SOCKS5 listener here ([BIND:]PORT or a Unix socket path); the serving end connects to
    /// what each client asks for, if its allowlist names it (repeatable)
    #[arg(short = 'D', value_name = "[BIND:]PORT", value_parser = hvsock_relay::forward::parse_listen)]
    pub socks: Vec<Endpoint>,
    /// With --serve: a target clients may reach, HOST:PORT or a Unix socket path (repeatable)
    #[arg(long, value_name = "HOST:PORT|PATH")]
    pub allow: Vec<String>,
    /// With --serve: a YAML or TOML allowlist of targets (vsock-proxy's format works)
    #[arg(long, value_name = "FILE")]
    pub allow_file: Option<PathBuf>,
    /// With --serve: where clients may have us listen (-R), HOST:PORT as the client writes it
    /// or a Unix socket path (repeatable)
    #[arg(long, value_name = "HOST:PORT|PATH")]
    pub allow_listen: Vec<String>,
    /// Give up after N failed tries in a row to make the connection (default: never)
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// Send a heartbeat every SECS; the other end is taken for gone after 3 unanswered
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub keepalive: Duration,
    /// A UDP flow with no datagram either way for SECS ends (both ends)
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    pub udp_idle: Duration,
    /// Seconds a connect may take (to the serving end, or to a target)
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    pub connect_timeout: Duration,
    /// On SIGINT/SIGTERM, give open streams this long to finish (a second signal ends them)
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub grace: Duration,
    /// Log each stream (-v), and more (-vv)
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let endpoint = args.endpoint.endpoint().clone();
    if matches!(endpoint, Endpoint::Stdio) || endpoint.is_seqpacket() {
        anyhow::bail!(
            "ENDPOINT `{}`: a forward runs over a stream connection (vsock:, hv:, hybrid:, tcp:, unix:)",
            args.endpoint.text()
        );
    }
    let serving_only = !args.allow.is_empty() || args.allow_file.is_some() || !args.allow_listen.is_empty();
    let forwards = !(args.local.is_empty() && args.remote.is_empty() && args.socks.is_empty());
    if args.serve && forwards {
        anyhow::bail!("-L, -R and -D are the client's: the serving end forwards what its clients ask for");
    }
    if !args.serve && serving_only {
        anyhow::bail!("--allow, --allow-file and --allow-listen are the serving end's (--serve)");
    }
    if !args.serve && !forwards {
        anyhow::bail!("nothing to forward: give -L, -R or -D (or --serve to be the serving end)");
    }
    // A stream is a socket at each end: a thousand streams need more than the usual 1,024.
    let _ = hvsock_relay::descriptors::Ceiling::raise();
    crate::logging::init(args.verbose);
    let summary = Arc::new(Summary::default());
    let rt = hvsock_relay::runtime(1)?;
    let result = if args.serve {
        let allow = Allowlist::new(&args.allow, args.allow_file.as_deref())?;
        allow.check_ports(65535, "TCP")?;
        let allow_listen = Allowlist::new(&args.allow_listen, None)?;
        allow_listen.check_ports(65535, "TCP")?;
        if allow.is_empty() && allow_listen.is_empty() {
            anyhow::bail!(
                "--serve needs --allow, --allow-file or --allow-listen: nothing would be reachable"
            );
        }
        let server = Server {
            allow,
            allow_listen,
            connect_timeout: args.connect_timeout,
            grace: args.grace,
            udp_idle: args.udp_idle,
        };
        rt.block_on(async {
            let signals = Signals::new()?;
            let listener = Listener::bind(&endpoint).await?;
            eprintln!("forward: serving on {}", listener.local()?);
            anyhow::Ok(server.serve(listener, signals, summary.clone()).await)
        })
    } else {
        let (mut local, mut udp) = (Vec::new(), Vec::new());
        for l in args.local {
            match l {
                Local::Stream(spec) => local.push(spec),
                Local::Datagram(spec) => udp.push(spec),
            }
        }
        let forward = Forward {
            local,
            udp,
            udp_idle: args.udp_idle,
            remote: args.remote,
            socks: args.socks,
            retries: args.retries,
            keepalive: args.keepalive,
            connect_timeout: args.connect_timeout,
            grace: args.grace,
            ..Forward::new(endpoint)
        };
        let targets: Vec<String> = forward
            .local
            .iter()
            .map(|s| s.target.to_string())
            .chain(forward.socks.iter().map(|_| "SOCKS5 clients".to_string()))
            .collect();
        let udp_targets: Vec<String> =
            forward.udp.iter().map(|s| s.target.to_string().trim_start_matches("tcp:").to_string()).collect();
        rt.block_on(async {
            let signals = Signals::new()?;
            let bound = forward.bind().await?;
            for (at, to) in bound.local_addrs()?.iter().zip(&targets) {
                eprintln!("forward: listening on {at} for {to}");
            }
            for (at, spec) in bound.udp_addrs()?.iter().zip(&udp_targets) {
                eprintln!("forward: listening on udp:{at} for udp:{spec}");
            }
            anyhow::Ok(bound.run(signals, summary.clone()).await)
        })
    };
    rt.shutdown_background();
    let code = result?;
    let s = &summary;
    let connections = match (args.serve, s.connections.load(Ordering::Relaxed)) {
        (true, n) => format!("; {n} clients"),
        (false, 0) => String::new(),
        (false, n) => format!("; the connection made again {n} times"),
    };
    eprintln!(
        "forward: {} streams ({} failed), {} refused, {} bytes out, {} bytes back{connections}",
        s.streams.load(Ordering::Relaxed),
        s.failed.load(Ordering::Relaxed),
        s.refused.load(Ordering::Relaxed),
        s.bytes.a_to_b.load(Ordering::Relaxed),
        s.bytes.b_to_a.load(Ordering::Relaxed),
    );
    Ok(code)
}
