//! `bench ENDPOINT`: the three tests as a client runs them, and their figures.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hvsock::Endpoint;

use super::pattern::Pattern;
use super::wire::{self, Direction, Header, Test};
use super::{receive, send, READ_BUF};
use hvsock_relay::blocking::Socket;

/// How a client reaches its server.
pub struct Target {
    pub endpoint: Endpoint,
    pub timeout: Duration,
    pub retries: u32,
}

impl Target {
    fn open(&self, h: &Header) -> anyhow::Result<Socket> {
        let mut s = Socket::connect(&self.endpoint, self.timeout, self.retries)?;
        s.write_all(h.line().as_bytes())?;
        Ok(s)
    }
}

/// A stream test's outcome: bytes moved (both ways counted) and the time from the first
/// stream's start to the last one's end.
pub struct StreamFigures {
    pub bytes: u64,
    pub seconds: f64,
}

/// `streams` connections at once, each moving `bytes` in `dir` in writes of `size`.
pub fn stream(
    t: &Target,
    dir: Direction,
    streams: usize,
    bytes: u64,
    size: usize,
    moved: &AtomicU64,
) -> anyhow::Result<StreamFigures> {
    let seed = u64::from(std::process::id()) << 16;
    let sockets = (0..streams)
        .map(|i| t.open(&Header { test: Test::Stream(dir), count: bytes, size, seed: seed + 2 * i as u64 }))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let barrier = Barrier::new(streams);
    let start = OnceLock::new();
    let end = Mutex::new(Instant::now());
    let run = |(i, mut s): (usize, Socket)| -> anyhow::Result<()> {
        let ours = Pattern::new(seed + 2 * i as u64, size);
        let theirs = Pattern::new(seed + 2 * i as u64 + 1, READ_BUF.max(size));
        barrier.wait();
        start.get_or_init(Instant::now);
        let which = if streams > 1 { format!(" (stream {})", i + 1) } else { String::new() };
        let verdict = |s: &mut Socket| -> anyhow::Result<()> {
            let line = wire::read_line(s)?;
            match line.strip_prefix("ERR ") {
                None if line == "OK" => Ok(()),
                Some(why) => anyhow::bail!("the server found a fault in what it received{which}: {why}"),
                None => anyhow::bail!(
                    "unexpected answer from the server{which}: {}",
                    hvsock::Printable::new(&line)
                ),
            }
        };
        match dir {
            Direction::Up => {
                send(&mut s, &ours, bytes, size, moved)?;
                verdict(&mut s)?;
            }
            Direction::Down => {
                let messages = s.carries_messages().then_some(size);
                receive(&mut s, &theirs, bytes, moved, messages)
                    .map_err(|why| anyhow::anyhow!("received a fault{which}: {why}"))?
            }
            Direction::Both => {
                let mut writer = s.try_clone()?;
                std::thread::scope(|scope| -> anyhow::Result<()> {
                    let sender = scope.spawn(|| send(&mut writer, &ours, bytes, size, moved));
                    let messages = s.carries_messages().then_some(size);
                    receive(&mut s, &theirs, bytes, moved, messages)
                        .map_err(|why| anyhow::anyhow!("received a fault{which}: {why}"))?;
                    sender.join().expect("sender thread")?;
                    verdict(&mut s)
                })?;
            }
        }
        let now = Instant::now();
        let mut end = end.lock().unwrap();
        *end = (*end).max(now);
        Ok(())
    };
    std::thread::scope(|scope| {
        let workers: Vec<_> = sockets.into_iter().enumerate().map(|s| scope.spawn(move || run(s))).collect();
        workers.into_iter().try_for_each(|w| w.join().expect("stream thread"))
    })?;
    let seconds = end.into_inner().unwrap().duration_since(*start.get().expect("started")).as_secs_f64();
    let ways = if dir == Direction::Both { 2 } else { 1 };
    Ok(StreamFigures { bytes: bytes * streams as u64 * ways, seconds })
}

/// Latencies, sorted, in nanoseconds; and the wall time they took.
pub struct Latencies {
    pub ns: Vec<u64>,
    pub seconds: f64,
}

impl Latencies {
    /// The `p`-th percentile (0..=100), in microseconds.
    pub fn percentile_us(&self, p: f64) -> f64 {
        let i = ((p / 100.0) * (self.ns.len() - 1) as f64).round() as usize;
        self.ns[i] as f64 / 1000.0
    }

    pub fn mean_us(&self) -> f64 {
        self.ns.iter().sum::<u64>() as f64 / self.ns.len() as f64 / 1000.0
    }
}

/// `count` messages of `size` bytes, each echoed before the next goes.
pub fn round_trips(t: &Target, count: u64, size: usize, done: &AtomicU64) -> anyhow::Result<Latencies> {
    let seed = u64::from(std::process::id());
    let mut s = t.open(&Header { test: Test::Rr, count, size, seed })?;
    s.set_nodelay();
    let p = Pattern::new(seed, size);
    let mut echo = vec![0u8; size];
    let mut ns = Vec::with_capacity(count as usize);
    let start = Instant::now();
    for i in 0..count {
        let msg = p.at(i * size as u64, size);
        let t0 = Instant::now();
        s.write_all(msg)?;
        s.read_exact(&mut echo).map_err(|e| anyhow::anyhow!("message {}: no echo: {e}", i + 1))?;
        ns.push(t0.elapsed().as_nanos() as u64);
        if echo != msg {
            anyhow::bail!("message {} came back different", i + 1);
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    let seconds = start.elapsed().as_secs_f64();
    ns.sort_unstable();
    Ok(Latencies { ns, seconds })
}

/// `count` connections, `concurrency` at a time, each answered by the server before it closes.
pub fn connections(
    t: &Target,
    count: u64,
    concurrency: usize,
    done: &AtomicU64,
) -> anyhow::Result<Latencies> {
    let next = AtomicU64::new(0);
    let all = Mutex::new(Vec::with_capacity(count as usize));
    let start = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    let mut ns = Vec::new();
                    while next.fetch_add(1, Ordering::Relaxed) < count {
                        let t0 = Instant::now();
                        let mut s = t.open(&Header { test: Test::Conn, count: 0, size: 0, seed: 0 })?;
                        let line = wire::read_line(&mut s)?;
                        if line != "OK" {
                            anyhow::bail!(
                                "unexpected answer from the server: {}",
                                hvsock::Printable::new(&line)
                            );
                        }
                        ns.push(t0.elapsed().as_nanos() as u64);
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    all.lock().unwrap().extend(ns);
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| w.join().expect("connection thread"))
    })?;
    let seconds = start.elapsed().as_secs_f64();
    let mut ns = all.into_inner().unwrap();
    ns.sort_unstable();
    Ok(Latencies { ns, seconds })
}
