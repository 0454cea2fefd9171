//! `hvsock bench`: measure a host<->VM socket as iperf3 measures TCP.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::bench::client::{self, Latencies, Target};
use crate::bench::server;
use crate::bench::wire::{Direction, MAX_SIZE};
use crate::output::outln;
use crate::values::{parse_bytes, parse_secs};
use crate::vms::EndpointArg;
use hvsock_relay::blocking::Listener;

/// Measure throughput, round-trip latency or connection rate between two ends of any endpoint
/// kind (vsock, hv, hybrid, tcp, unix), every byte checked.
///
/// Run `hvsock bench --serve ENDPOINT` on one side and `hvsock bench ENDPOINT` on the other.
/// `stream` moves --bytes per connection (--streams at once) in writes of --size, up (client
/// to server), down, or both ways at once; `rr` sends --messages of --size bytes, each echoed
/// before the next; `conn` opens --conns connections (--concurrency at a time), each answered
/// once. The data is a pattern the receiver checks: a wrong, lost or moved byte ends the run
/// with exit status 1 and where it was. Prints a table, or one JSON object with --json.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  hvsock bench --serve vsock:any:5201                 # in the guest
  hvsock bench vsock:3:5201                           # from the host: 1 GiB up
  hvsock bench vsock:3:5201 --direction both --streams 4
  hvsock bench vsock:3:5201 --test rr --size 1        # p50/p99/p99.9 round trip
  hvsock bench vsock:3:5201 --test conn --conns 2000 --concurrency 50
  hvsock bench tcp:10.0.0.2:5201 --json               # the same over TCP, to compare")]
pub struct Args {
    /// Where the server listens, or the client connects
    #[arg(value_name = "ENDPOINT", value_parser = EndpointArg::parse)]
    pub endpoint: EndpointArg,
    /// Serve clients on ENDPOINT (until stopped, or --count connections)
    #[arg(long)]
    pub serve: bool,
    /// With --serve: exit after answering N connections
    #[arg(long, value_name = "N", requires = "serve", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    #[command(flatten)]
    pub backlog: crate::flags::Backlog,
    #[command(flatten)]
    pub peers: crate::flags::Peers,
    /// What to measure
    #[arg(long, value_enum, default_value = "stream", conflicts_with = "serve")]
    pub test: TestKind,
    /// stream: which way the data goes
    #[arg(long, value_enum, default_value = "up")]
    pub direction: Direction,
    /// stream: connections at once
    #[arg(long, default_value = "1", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub streams: u16,
    /// stream: bytes per connection (and direction)
    #[arg(long, value_name = "BYTES", default_value = "1G", value_parser = parse_bytes)]
    pub bytes: u64,
    /// stream: the size of each write; rr: the size of each message
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub size: Option<usize>,
    /// rr: messages to send
    #[arg(long, value_name = "N", default_value = "10000", value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub messages: u64,
    /// conn: connections to open
    #[arg(long, value_name = "N", default_value = "1000", value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub conns: u64,
    /// conn: connections open at once
    #[arg(long, value_name = "N", default_value = "1", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// Connect timeout
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub timeout: Duration,
    /// Connect retries (a server that is still starting)
    #[arg(long, value_name = "N", default_value = "0")]
    pub retries: u32,
    /// One JSON object instead of the table
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TestKind {
    /// Throughput
    Stream,
    /// Round-trip latency of small messages
    Rr,
    /// Connections per second
    Conn,
}

fn parse_size(s: &str) -> Result<usize, String> {
    match parse_bytes(s)? {
        n if n as usize <= MAX_SIZE => Ok(n as usize),
        _ => Err(format!(
            "`{}` is larger than the largest write, {} MiB",
            hvsock::Printable::new(s),
            MAX_SIZE >> 20
        )),
    }
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let endpoint = args.endpoint.endpoint();
    if args.serve {
        args.peers.check_for(endpoint)?;
        let listener = Listener::bind(endpoint)?;
        args.backlog.apply(|n| listener.set_backlog(n))?;
        eprintln!("bench: listening on {endpoint}");
        server::serve(listener, args.count, &args.peers.checks())?;
        return Ok(0);
    }
    let target = Target { endpoint: endpoint.clone(), timeout: args.timeout, retries: args.retries };
    let done = AtomicU64::new(0);
    let (total, unit) = match args.test {
        TestKind::Stream => {
            let ways = if args.direction == Direction::Both { 2 } else { 1 };
            (args.bytes * u64::from(args.streams) * ways, "bytes")
        }
        TestKind::Rr => (args.messages, "messages"),
        TestKind::Conn => (args.conns, "connections"),
    };
    let finished = AtomicBool::new(false);
    let report = std::thread::scope(|scope| {
        scope.spawn(|| progress(&done, &finished, total, unit));
        let r = measure(&args, &target, &done);
        finished.store(true, Ordering::Relaxed);
        r
    })?;
    if args.json {
        outln!("{report}");
    } else {
        print_table(&report)?;
    }
    Ok(0)
}

fn measure(args: &Args, target: &Target, done: &AtomicU64) -> anyhow::Result<serde_json::Value> {
    let endpoint = target.endpoint.to_string();
    Ok(match args.test {
        TestKind::Stream => {
            let size = args.size.unwrap_or(1 << 20);
            let f = client::stream(target, args.direction, args.streams.into(), args.bytes, size, done)?;
            // Over a message endpoint each write is one message, checked to arrive as one.
            let messages = target.endpoint.is_seqpacket().then(|| f.bytes.div_ceil(size as u64));
            json!({
                "test": "stream", "endpoint": endpoint, "direction": args.direction, "streams": args.streams,
                "write_size": size, "bytes": f.bytes, "seconds": f.seconds,
                "mib_per_s": f.bytes as f64 / 1048576.0 / f.seconds,
                "messages": messages, "messages_per_s": messages.map(|m| m as f64 / f.seconds),
            })
        }
        TestKind::Rr => {
            let size = args.size.unwrap_or(1);
            let l = client::round_trips(target, args.messages, size, done)?;
            json!({
                "test": "rr", "endpoint": endpoint, "size": size, "messages": l.ns.len(), "seconds": l.seconds,
                "per_s": l.ns.len() as f64 / l.seconds, "latency_us": latency(&l),
            })
        }
        TestKind::Conn => {
            let l = client::connections(target, args.conns, args.concurrency.into(), done)?;
            json!({
                "test": "conn", "endpoint": endpoint, "concurrency": args.concurrency, "connections": l.ns.len(),
                "seconds": l.seconds, "per_s": l.ns.len() as f64 / l.seconds, "latency_us": latency(&l),
            })
        }
    })
}

fn latency(l: &Latencies) -> serde_json::Value {
    json!({
        "p50": l.percentile_us(50.0), "p99": l.percentile_us(99.0), "p99_9": l.percentile_us(99.9),
        "mean": l.mean_us(), "max": l.percentile_us(100.0),
    })
}

fn print_table(r: &serde_json::Value) -> anyhow::Result<()> {
    let f = |k: &str| r[k].as_f64().unwrap_or(0.0);
    match r["test"].as_str() {
        Some("stream") => {
            outln!(
                "{:<8} {:<10} {:>7} {:>10} {:>14} {:>9} {:>11}",
                "test",
                "direction",
                "streams",
                "write",
                "bytes",
                "seconds",
                "MiB/s"
            );
            outln!(
                "{:<8} {:<10} {:>7} {:>10} {:>14} {:>9.3} {:>11.1}",
                "stream",
                r["direction"].as_str().unwrap_or(""),
                r["streams"].to_string(),
                r["write_size"].to_string(),
                r["bytes"].to_string(),
                f("seconds"),
                f("mib_per_s")
            );
            if let Some(m) = r["messages_per_s"].as_f64() {
                outln!(
                    "{} messages of at most {} bytes, each whole: {m:.0} messages/s",
                    r["messages"],
                    r["write_size"]
                );
            }
        }
        Some(test) => {
            let l = &r["latency_us"];
            let g = |k: &str| l[k].as_f64().unwrap_or(0.0);
            let count = if test == "rr" { &r["messages"] } else { &r["connections"] };
            outln!(
                "{:<6} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                "test",
                "count",
                "per s",
                "p50 µs",
                "p99 µs",
                "p99.9 µs",
                "mean µs",
                "max µs"
            );
            outln!(
                "{:<6} {:>9} {:>10.0} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
                test,
                count.to_string(),
                f("per_s"),
                g("p50"),
                g("p99"),
                g("p99_9"),
                g("mean"),
                g("max")
            );
        }
        None => {}
    }
    Ok(())
}

/// A progress bar on a terminal for runs over a second; nothing otherwise. It reads a counter
/// the data path bumps: no clock read or output per chunk.
fn progress(done: &AtomicU64, finished: &AtomicBool, total: u64, unit: &str) {
    use std::io::IsTerminal;
    let tick = Duration::from_millis(100);
    for _ in 0..10 {
        if finished.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep(tick);
    }
    if !std::io::stderr().is_terminal() {
        return;
    }
    let style = if unit == "bytes" {
        "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} {eta}"
    } else {
        "{bar:40} {pos}/{len} {per_sec} {eta}"
    };
    let bar = indicatif::ProgressBar::new(total)
        .with_style(indicatif::ProgressStyle::with_template(style).expect("template"));
    while !finished.load(Ordering::Relaxed) {
        bar.set_position(done.load(Ordering::Relaxed));
        std::thread::sleep(tick);
    }
    bar.finish_and_clear();
}
