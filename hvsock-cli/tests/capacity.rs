//! What a listener takes and how much: listen queues as deep as the system allows (or
//! `--backlog`), a burst accepted without a drop, and a relay at its descriptor ceiling that
//! keeps clients waiting instead of resetting them. TCP and Unix sockets on this machine only:
//! the engine is the same for every kind, and nothing here touches vsock.
#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, Command, Stdio};

const CROWD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/crowd.py");

/// A server started, and the rest of its stderr.
struct Server {
    child: Child,
    err: BufReader<ChildStderr>,
    /// Its `listening on …` line.
    line: String,
}

impl Server {
    /// Starts `cmd` and waits for its `listening on` line (on stdout for the Python helper).
    fn start(mut cmd: Command) -> Server {
        Server::start_with(cmd.stdin(Stdio::null()))
    }

    /// [`Server::start`] with `cmd`'s stdin as set.
    fn start_with(cmd: &mut Command) -> Server {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        if cmd.get_program() == PYTHON {
            out.read_line(&mut line).unwrap();
        } else {
            err.read_line(&mut line).unwrap();
        }
        assert!(line.contains("listening on"), "{:?}: {line:?}", cmd.get_args().collect::<Vec<_>>());
        std::mem::forget(out); // kept open: a server writing to it must not get EPIPE
        Server { child, err, line }
    }

    /// The TCP port of a `listening on tcp:127.0.0.1:PORT` (or the helper's `listening on PORT`).
    fn port(&self) -> u16 {
        self.line.trim_end().rsplit([':', ' ']).next().unwrap().parse().unwrap()
    }

    /// Stops it (SIGTERM) and returns the rest of its stderr.
    fn stop(mut self) -> String {
        common::stop(&mut self.child);
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.err, &mut rest).unwrap();
        rest
    }
}

/// A test that fails leaves no server behind.
impl Drop for Server {
    fn drop(&mut self) {
        common::stop(&mut self.child);
    }
}

/// Debian's Python (scripts/setup.sh installs it), not a version manager's shim first on PATH.
const PYTHON: &str = "/usr/bin/python3";

fn python(args: &[&str]) -> Command {
    let mut cmd = Command::new(PYTHON);
    cmd.arg(CROWD).args(args);
    cmd
}

fn relay(limit: Option<u32>, args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    // dash's `ulimit -n` sets the soft and the hard limit: the relay cannot raise it.
    let ulimit = limit.map(|n| format!("ulimit -n {n} && ")).unwrap_or_default();
    cmd.args(["-c", &format!("{ulimit}exec \"$0\" \"$@\""), common::HVSOCK]).args(args);
    cmd
}

/// `ss`'s line for the listener at `at` (a TCP port or a Unix path), with its memory (`-m`).
fn ss(at: &str) -> String {
    let args: Vec<String> = match at.parse::<u16>() {
        Ok(port) => ["-ltnmH".into(), format!("sport = :{port}")].into(),
        Err(_) => ["-lxH".into(), "src".into(), at.into()].into(),
    };
    let out = Command::new("ss").args(&args).output().expect("ss (iproute2: scripts/setup.sh installs it)");
    String::from_utf8(out.stdout).unwrap()
}

/// The listen queue's length `ss` shows for a listener (Send-Q: the backlog it asked for,
/// cut to net.core.somaxconn).
fn backlog(at: &str) -> u32 {
    let line = ss(at);
    let fields: Vec<&str> = line.split_whitespace().collect();
    let i =
        fields.iter().position(|f| *f == "LISTEN").unwrap_or_else(|| panic!("no listener at {at}: {line}"));
    fields[i + 2].parse().unwrap()
}

fn somaxconn() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap().trim().parse().unwrap()
}

fn dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("hvsock-capacity-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn every_listener_kind_asks_for_the_deepest_queue_unless_backlog_says() {
    let d = dir("queues");
    let p = |name: &str| d.join(name).display().to_string();
    // FROM, TO (never connected: no client comes), where ss finds the listener.
    let kinds = [
        ("tcp:127.0.0.1:0".to_string(), "tcp:127.0.0.1:9".to_string(), None),
        (format!("unix:{}", p("s")), "tcp:127.0.0.1:9".into(), Some(p("s"))),
        (format!("unix-seqpacket:{}", p("q")), format!("unix-seqpacket:{}", p("none")), Some(p("q"))),
        (format!("hybrid:{}:5", p("vm")), "tcp:127.0.0.1:9".into(), Some(p("vm_5"))),
    ];
    for (from, to, path) in &kinds {
        for (asked, want) in [(None, somaxconn()), (Some(7), 7)] {
            let mut args = vec!["relay", from.as_str(), to.as_str()];
            let n = asked.map(|n: u32| n.to_string());
            if let Some(n) = &n {
                args.extend(["--backlog", n]);
            }
            let server = Server::start(relay(None, &args));
            let at = path.clone().unwrap_or_else(|| server.port().to_string());
            assert_eq!(backlog(&at), want, "relay {args:?}");
            server.stop();
        }
    }
    // The other servers' listeners: listen --keep-open and bench --serve.
    for cmd in [
        &["listen", "tcp:127.0.0.1:0", "--keep-open", "--exec", "cat"][..],
        &["bench", "--serve", "tcp:127.0.0.1:0"],
    ] {
        let server = Server::start({
            let mut c = common::hvsock_command();
            c.args(cmd);
            c
        });
        if cmd[0] == "bench" {
            // bench --serve names its endpoint, not the port it was given: find it by pid.
            let out = Command::new("ss").args(["-ltnpH"]).output().unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            let pid = format!("pid={},", server.child.id());
            let line = text.lines().find(|l| l.contains(&pid)).unwrap_or_else(|| panic!("{text}"));
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields[2].parse::<u32>().unwrap(), somaxconn(), "{line}");
        } else {
            assert_eq!(backlog(&server.port().to_string()), somaxconn(), "{cmd:?}");
        }
        server.stop();
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// 1,000 clients connecting at once are all taken without a drop (a backlog of 128 dropped
/// hundreds of their SYNs, each then waiting out a 1 s retransmission).
#[test]
fn a_burst_of_a_thousand_connects_is_taken_without_a_drop() {
    let echo = Server::start(python(&["echo"]));
    let to = format!("tcp:127.0.0.1:{}", echo.port());
    // On one thread (the default) and on several.
    for threads in ["1", "3"] {
        let relay = Server::start(relay(None, &["relay", "tcp:127.0.0.1:0", &to, "--threads", threads]));
        let port = relay.port().to_string();
        let out = python(&["burst", &port, "1000"]).output().unwrap();
        assert!(out.status.success(), "--threads {threads}: {}", String::from_utf8_lossy(&out.stdout));
        // The listener's own drop count (sk_drops: a full accept queue counts there).
        let line = ss(&port);
        assert!(line.contains(",d0)"), "the relay's listener dropped connects (--threads {threads}): {line}");
        relay.stop();
    }
    echo.stop();
}

/// With soft = hard = 1024 descriptors, 1,000 concurrent clients × 10 requests, twice, through
/// one relay: every request answered, none reset — at its ceiling the relay stops accepting
/// and clients wait in the listen queue (it used to accept them all, then fail to connect
/// upstream with EMFILE and reset them).
#[test]
fn at_its_descriptor_ceiling_a_relay_keeps_clients_waiting_and_resets_none() {
    let echo = Server::start(python(&["echo"]));
    let to = format!("tcp:127.0.0.1:{}", echo.port());
    let relay = Server::start(relay(Some(1024), &["relay", "tcp:127.0.0.1:0", &to]));
    let port = relay.port().to_string();
    let out = python(&["crowd", &port, "1000", "2", "10", "1024"]).output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let rest = relay.stop();
    assert!(out.status.success(), "{report}\nrelay: {rest}");
    assert!(report.contains("round 2: 1000 ok, 0 failed"), "{report}");
    assert!(rest.contains("relay: 2000 connections (0 refused, 0 failed)"), "{rest}");
    echo.stop();
}

/// `--max-conns` past what the limit allows is refused at start, in one line that says how to
/// raise it.
#[test]
fn max_conns_past_the_descriptor_limit_is_refused_at_start() {
    let mut child =
        relay(Some(1024), &["relay", "tcp:127.0.0.1:0", "tcp:127.0.0.1:9", "--max-conns", "5000"])
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    // Its first line, whatever it is: a relay that started listening is stopped, not waited for.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    if line.contains("listening on") {
        common::stop(&mut child);
        panic!("it started: {line}");
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert!(!child.wait().unwrap().success());
    assert_eq!(rest, "", "one line: {line}{rest}");
    assert!(
        line.contains("--max-conns 5000") && line.contains("1024") && line.contains("ulimit -n"),
        "{line}"
    );
}

/// A Unix upstream whose listen queue is full (it accepts nothing yet) refuses the relay's
/// connect with EAGAIN: the relay tries again (logged with -v, counted in the summary) instead
/// of resetting the client, and once the server accepts, every client is answered.
#[test]
fn a_full_upstream_queue_is_waited_out_not_passed_on_as_a_reset() {
    let d = dir("full-queue");
    let path = d.join("held.sock").display().to_string();
    let mut held = Server::start_with(python(&["held-unix", &path, "1"]).stdin(Stdio::piped()));
    let to = format!("unix:{path}");
    // Far more patience than the test needs: it lets the server accept as soon as a retry shows.
    let mut relay =
        Server::start(relay(None, &["relay", "tcp:127.0.0.1:0", &to, "--full-queue-wait", "60", "-v"]));
    let port = relay.port().to_string();
    // A queue of 1 holds two connections: of three clients, one at least finds it full.
    let clients = python(&["clients", &port, "3"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut log = String::new();
    while !log.contains("trying again in") {
        log.clear();
        assert!(relay.err.read_line(&mut log).unwrap() > 0, "the relay ended without retrying");
    }
    assert!(log.contains("as a full listen queue does"), "{log}");
    use std::io::Write;
    writeln!(held.child.stdin.as_mut().unwrap(), "accept now").unwrap();
    let out = clients.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let rest = relay.stop();
    assert!(out.status.success() && report.contains("3 ok, 0 failed"), "{report}\nrelay: {rest}");
    assert!(rest.contains("relay: 3 connections (0 refused, 0 failed)"), "{rest}");
    assert!(rest.contains("waited for TO's full listen queue"), "{rest}");
    drop(held);
    let _ = std::fs::remove_dir_all(&d);
}

/// A client from `from` (a loopback address of its own) to `port`, its request sent.
fn client_from(from: &str, port: u16) -> std::net::TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&format!("{from}:0").parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
    s.connect(&format!("127.0.0.1:{port}").parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
    let mut s = std::net::TcpStream::from(s);
    std::io::Write::write_all(&mut s, b"ping").unwrap();
    s
}

/// Reads the relay's log up to a line that contains `what`; returns that line.
fn log_line(relay: &mut Server, what: &str) -> String {
    let mut line = String::new();
    while !line.contains(what) {
        line.clear();
        assert!(relay.err.read_line(&mut line).unwrap() > 0, "the relay ended before `{what}`");
    }
    line
}

/// Whether `s`'s peer closed it (end-of-file or a reset), not answered.
fn closed(s: &mut std::net::TcpStream) -> bool {
    let mut b = [0u8; 4];
    matches!(std::io::Read::read(s, &mut b), Ok(0) | Err(_))
}

/// `--allow-from`: a peer not listed is closed at once, unread, logged with its address, and
/// never reaches the target; a listed one is relayed. `--max-conns-per-peer`: a third
/// connection from one peer is refused while another peer still gets in.
#[test]
fn peers_not_allowed_or_over_their_share_are_refused_before_a_byte_is_read() {
    use std::io::{Read, Write};
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let to = format!("tcp:127.0.0.1:{}", upstream.local_addr().unwrap().port());
    upstream.set_nonblocking(true).unwrap();
    let mut server =
        Server::start(relay(None, &["relay", "tcp:127.0.0.1:0", &to, "--allow-from", "127.0.0.2", "-v"]));
    let port = server.port();

    let mut stranger = client_from("127.0.0.1", port);
    let line = log_line(&mut server, "refused");
    assert!(line.contains("from tcp:127.0.0.1:") && line.contains("not on --allow-from"), "{line}");
    assert!(closed(&mut stranger), "a peer not allowed is closed");
    // The refusal comes before any connect to TO: nothing has reached it.
    assert_eq!(upstream.accept().unwrap_err().kind(), std::io::ErrorKind::WouldBlock, "TO saw the stranger");

    let mut friend = client_from("127.0.0.2", port);
    upstream.set_nonblocking(false).unwrap();
    let (mut up, _) = upstream.accept().unwrap();
    let mut got = [0u8; 4];
    up.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    up.write_all(b"pong").unwrap();
    friend.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"pong");
    drop((friend, up));
    let rest = server.stop();
    assert!(rest.contains("(1 refused, 0 failed)"), "{rest}");

    let mut server =
        Server::start(relay(None, &["relay", "tcp:127.0.0.1:0", &to, "--max-conns-per-peer", "2", "-v"]));
    let port = server.port();
    let held: Vec<_> = (0..2).map(|_| client_from("127.0.0.2", port)).collect();
    let ups: Vec<_> = (0..2).map(|_| upstream.accept().unwrap().0).collect();
    let mut third = client_from("127.0.0.2", port);
    let line = log_line(&mut server, "refused");
    assert!(line.contains("127.0.0.2") && line.contains("already holds its 2 connections"), "{line}");
    assert!(closed(&mut third));
    let other = client_from("127.0.0.3", port);
    let (mut up, _) = upstream.accept().unwrap();
    up.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping", "another peer still gets in");
    drop((held, ups, up, other));
    server.stop();
}

/// `listen --keep-open --exec` takes `--allow-from` as the relay does: a stranger is closed
/// unread (its command never runs), a listed peer is served.
#[test]
fn listen_refuses_peers_not_allowed_and_serves_the_others() {
    use std::io::Read;
    let mut cmd = common::hvsock_command();
    cmd.args([
        "listen",
        "tcp:127.0.0.1:0",
        "--keep-open",
        "--allow-from",
        "127.0.0.2/32",
        "--exec",
        "echo served",
    ]);
    let mut server = Server::start(cmd);
    let port = server.port();
    let mut stranger = client_from("127.0.0.1", port);
    let line = log_line(&mut server, "refused");
    assert!(line.contains("tcp:127.0.0.1:") && line.contains("not on --allow-from"), "{line}");
    assert!(closed(&mut stranger), "a peer not allowed is closed");
    let mut friend = client_from("127.0.0.2", port);
    let mut answer = String::new();
    friend.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "served\n");
    server.stop();
}
