#![cfg(target_os = "linux")]
//! `hvsock forward` as a user runs it, over loopback TCP and Unix sockets (the lab runs it
//! over vsock): its lines, its exit codes, its summary.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::os::unix::net::UnixStream;
use std::process::Child;

use common::{hvsock, spawn, stderr};

fn sigterm(child: &mut Child) -> Option<i32> {
    // SAFETY: kill(2) on the pid of our own child, not yet reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    child.wait().unwrap().code()
}

/// A TCP echo server, a thread per connection.
fn echo() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let mut s = s.unwrap();
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let _ = std::io::copy(&mut s, &mut w);
                let _ = w.shutdown(Shutdown::Write);
            });
        }
    });
    port
}

#[test]
fn bad_command_lines_are_one_line_each() {
    let table: [(&[&str], i32, &str); 7] = [
        (&["forward", "unix:/x"], 1, "hvsock: nothing to forward: give -L, -R or -D (or --serve to be the serving end)\n"),
        (&["forward", "unix:/x", "--allow", "h:1", "-L", "1:h:2"], 1, "hvsock: --allow, --allow-file and --allow-listen are the serving end's (--serve)\n"),
        (&["forward", "--serve", "unix:/x", "-L", "1:h:2"], 1, "hvsock: -L, -R and -D are the client's: the serving end forwards what its clients ask for\n"),
        (&["forward", "--serve", "unix:/x"], 1, "hvsock: --serve needs --allow, --allow-file or --allow-listen: nothing would be reachable\n"),
        (&["forward", "--serve", "unix:/x", "--allow", "h:70000"], 1, "hvsock: allow entry `h:70000`: 70000 is not a TCP port (0-65535)\n"),
        (&["forward", "-", "-L", "1:h:2"], 1, "hvsock: ENDPOINT `-`: a forward runs over a stream connection (vsock:, hv:, hybrid:, tcp:, unix:)\n"),
        (&["forward", "unix:/x", "-L", "1:h"], 2, "hvsock: -L <FORWARD>: forward `1:h`: expected [BIND:]PORT:HOST:PORT, or a Unix socket path on either side (see `hvsock --help`)\n"),
    ];
    for (args, code, want) in table {
        let o = hvsock(args);
        assert_eq!((o.status.code(), stderr(&o).as_str()), (Some(code), want), "{args:?}");
    }
}

#[test]
fn a_forward_carries_streams_refuses_what_is_not_allowed_and_sums_up() {
    let dir = std::env::temp_dir().join(format!("hvsock-forward-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = echo();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let serve = format!("unix:{}", dir.join("serve.sock").display());
    let (ok, refused) = (dir.join("ok.sock"), dir.join("refused.sock"));
    let (mut server, mut server_lines) =
        spawn(&["forward", "--serve", &serve, "--allow", &format!("127.0.0.1:{port}")]);
    server_lines.wait("forward: serving on");
    let (mut client, mut lines) = spawn(&[
        "forward",
        &serve,
        "-L",
        &format!("{}:127.0.0.1:{port}", ok.display()),
        "-L",
        &format!("{}:127.0.0.1:{closed}", refused.display()),
        "-v",
    ]);
    assert_eq!(
        lines.wait("forward: listening on"),
        format!("forward: listening on unix:{} for tcp:127.0.0.1:{port}", ok.display())
    );
    lines.wait("forward: connected to");

    let mut s = UnixStream::connect(&ok).unwrap();
    let sent: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let writer = {
        let (mut w, sent) = (s.try_clone().unwrap(), sent.clone());
        std::thread::spawn(move || {
            w.write_all(&sent).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        })
    };
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    assert!(back == sent, "{} bytes back of {}", back.len(), sent.len());
    assert!(lines
        .wait("INFO stream 1: ")
        .ends_with(&format!("stream 1: unix peer -> tcp:127.0.0.1:{port}: open")));
    assert!(lines.wait("INFO stream 1: ").contains("closed, 1000000 bytes ->, 1000000 bytes <-"));

    // Not on the serving end's allowlist: closed at once, with nothing read.
    let mut s = UnixStream::connect(&refused).unwrap();
    assert_eq!(s.read(&mut [0u8; 8]).unwrap(), 0);
    let why = lines.wait("WARN stream 2: ");
    assert!(
        why.ends_with(&format!("refused: tcp:127.0.0.1:{closed} is not on the serving end's allowlist")),
        "{why}"
    );

    assert_eq!(sigterm(&mut client), Some(0));
    assert_eq!(
        lines.wait("forward: 1 "),
        "forward: 1 streams (0 failed), 1 refused, 1000000 bytes out, 1000000 bytes back"
    );
    assert_eq!(sigterm(&mut server), Some(0));
    assert_eq!(
        server_lines.wait("forward: 1 "),
        "forward: 1 streams (0 failed), 1 refused, 1000000 bytes out, 1000000 bytes back; 1 clients"
    );
}
