//! `hvsock listen`: wait for a connection and join it to stdin/stdout, or to a command.

use tokio::process::Command;

use hvsock_relay::stopping::{accept_until_signal, drain, Backoff, Signals};
use hvsock_relay::{join, Conn, Counters, End, Listener, Options};
use tokio::sync::watch;

use crate::flags::{idle, stdin_is_terminal, Backlog, Framing, HalfClose, Peers};
use crate::values::parse_secs;
use crate::vms::EndpointArg;

/// Listen on ENDPOINT and join the connection to stdin/stdout, like `ncat --vsock -l`.
///
/// Serves one connection and exits 0 when it ends. `--exec CMD` runs CMD (through the shell)
/// per connection with the connection as its stdin and stdout, like socat's EXEC or ncat's
/// --sh-exec; `--keep-open` serves more than one (concurrently with --exec, one after another
/// without). `listening on <address>` goes to stderr once ready.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  hvsock listen vsock:any:5000 > received
  hvsock listen vsock:any:5000 --keep-open --exec 'cat'        # an echo service
  hvsock listen hv:children:19000 --exec 'tar xf -'
  hvsock listen vsock-seqpacket:any:5000 --lines   # each message a line")]
pub struct Args {
    /// Where to listen: vsock:any:PORT, hv:children:SERVICE, hybrid:UDS:PORT (the guest's connections to host PORT), tcp:HOST:PORT, unix:PATH, or the message forms vsock-seqpacket:, unix-seqpacket:, hybrid-seqpacket:
    #[arg(value_name = "ENDPOINT", value_parser = EndpointArg::parse)]
    pub endpoint: EndpointArg,
    /// Serve connections until interrupted instead of just one
    #[arg(long, short = 'k')]
    pub keep_open: bool,
    /// Run CMD per connection with the connection as its stdin/stdout
    #[arg(long, short = 'e', value_name = "CMD")]
    pub exec: Option<String>,
    /// Close a connection after SECS with no data either way
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub idle_timeout: Option<std::time::Duration>,
    #[command(flatten)]
    pub half_close: HalfClose,
    #[command(flatten)]
    pub backlog: Backlog,
    #[command(flatten)]
    pub peers: Peers,
    /// Only send: what the peer sends is dropped, and the end of input closes the connection
    /// (ncat's --send-only; a half-close of a guest's does not reach a host behind a real VMM)
    #[arg(long, conflicts_with_all = ["exec", "shutdown", "no_shutdown", "shutdown_quiet"])]
    pub send_only: bool,
    #[command(flatten)]
    pub framing: Framing,
    /// On SIGINT/SIGTERM, give open connections this long to finish (a second signal ends them)
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub grace: std::time::Duration,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let ceiling = hvsock_relay::descriptors::Ceiling::raise();
    let rt = hvsock_relay::runtime(1)?;
    let result = rt.block_on(serve(args, ceiling.conns));
    rt.shutdown_background();
    result
}

async fn serve(args: Args, ceiling: usize) -> anyhow::Result<u8> {
    let endpoint = args.endpoint.endpoint();
    let framing = args.framing.check(endpoint)?;
    args.peers.check_for(endpoint)?;
    let checks = args.peers.checks();
    let mut signals = Signals::new()?;
    let listener = Listener::bind_with_backlog(endpoint, args.backlog.backlog).await?;
    let framing = framing.check_listener(&listener, endpoint)?;
    eprintln!("listening on {}", listener.local()?);
    let mut tasks = tokio::task::JoinSet::new();
    // Turned true when the grace period is over: open connections are cut as resets.
    let (stop, stopped) = watch::channel(false);
    let mut backoff = Backoff::new();
    // --keep-open --exec stops accepting at the descriptor ceiling: new clients wait in the
    // listen queue.
    let room = std::sync::Arc::new(tokio::sync::Semaphore::new(ceiling));
    let mut failed = false;
    let mut signalled = false;
    let told = |done: Result<anyhow::Result<()>, tokio::task::JoinError>, failed: &mut bool| {
        if let Ok(Err(e)) = done {
            eprintln!("hvsock: {e:#}");
            *failed = true;
        }
    };
    'serving: loop {
        // A finished connection's error is told as soon as it ends.
        let tell = |e: &std::io::Error, wait: std::time::Duration| {
            eprintln!("hvsock: accept failed: {e}; trying again in {} ms", wait.as_millis())
        };
        let place = tokio::select! {
            p = room.clone().acquire_owned() => p.expect("never closed"),
            Some(done) = tasks.join_next(), if !tasks.is_empty() => { told(done, &mut failed); continue }
            () = signals.next() => { signalled = true; break }
        };
        let conn = tokio::select! {
            conn = accept_until_signal(&listener, &mut signals, &mut backoff, tell) => match conn {
                Some(conn) => conn,
                None => { signalled = true; break }
            },
            Some(done) = tasks.join_next(), if !tasks.is_empty() => { told(done, &mut failed); continue }
        };
        let peer_place = match checks.admit(conn.origin) {
            Ok(place) => place,
            Err(why) => {
                // Closed unread.
                eprintln!("hvsock: {}: refused: {why}", conn.peer);
                continue;
            }
        };
        let place = (place, peer_place);
        let conn = args.half_close.apply(conn);
        let idle = args.idle_timeout;
        let stopped = stopped.clone();
        match &args.exec {
            Some(cmd) => {
                let cmd = cmd.clone();
                tasks.spawn(async move {
                    let _place = place;
                    run_exec(conn, &cmd, idle, framing, stopped).await
                });
            }
            None => {
                // stdin/stdout serve one connection at a time.
                tasks.spawn(run_stdio(conn, idle, framing, args.send_only, stopped));
                tokio::select! {
                    Some(done) = tasks.join_next() => told(done, &mut failed),
                    () = signals.next() => { signalled = true; break 'serving }
                }
            }
        }
        if !args.keep_open {
            break;
        }
    }
    // Stop taking connections at once; open ones get the grace period after a signal, or run
    // to their end (a one-shot listen) until a signal starts it.
    drop(listener);
    let cut = drain("listen", &mut tasks, args.grace, &mut signals, signalled, stop, |done| {
        told(done, &mut failed)
    })
    .await;
    Ok(if failed || cut > 0 { 1 } else { 0 })
}

/// One connection joined to our stdin/stdout.
async fn run_stdio(
    conn: Conn,
    idle_limit: Option<std::time::Duration>,
    framing: Framing,
    send_only: bool,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let peer = conn.peer.clone();
    let io = framing.apply(Conn::stdio());
    let (io, conn) = if send_only { io.send_only(conn) } else { (io, conn) };
    let options = Options { idle: idle_limit, stop_when_b_ends: stdin_is_terminal(), stop: Some(stop) };
    match join(io, conn, options, &Counters::default()).await {
        End::Error(e) => anyhow::bail!("{peer}: {e}"),
        End::Idle => Err(idle(&peer, idle_limit)),
        _ => Ok(()),
    }
}

/// CMD with the connection on its stdin/stdout; its stderr stays ours.
async fn run_exec(
    conn: Conn,
    cmd: &str,
    idle_limit: Option<std::time::Duration>,
    framing: Framing,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut child = shell(cmd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run `{cmd}`: {e}"))?;
    let peer = conn.peer.clone();
    let proc = framing.apply(Conn::child(&mut child, cmd.to_string()));
    let options = Options { idle: idle_limit, stop_when_b_ends: false, stop: Some(stop) };
    let end = join(conn, proc, options, &Counters::default()).await;
    if matches!(end, End::Error(_) | End::Idle) {
        // The connection is gone: so is the command's reason to run, with all it started.
        kill_group(&mut child);
    }
    let status = child.wait().await?;
    match end {
        End::Error(e) => anyhow::bail!("{peer}: {e}"),
        End::Idle => Err(idle(&peer, idle_limit)),
        _ if !status.success() => anyhow::bail!("`{cmd}` for {peer} ended with {status}"),
        _ => Ok(()),
    }
}

/// In a process group of its own, so that its end takes whatever it started.
#[cfg(unix)]
fn shell(cmd: &str) -> Command {
    let mut c = Command::new("/bin/sh");
    c.arg("-c").arg(cmd).process_group(0);
    c
}

#[cfg(unix)]
fn kill_group(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        // SAFETY: signalling the process group we made for it.
        unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
    }
}

#[cfg(windows)]
fn kill_group(child: &mut tokio::process::Child) {
    let _ = child.start_kill();
}

#[cfg(windows)]
fn shell(cmd: &str) -> Command {
    let mut c = Command::new("cmd.exe");
    c.arg("/C").arg(cmd);
    c
}
