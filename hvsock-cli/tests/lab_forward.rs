//! `hvsock forward` over real vsock in the lab: 1,000 streams at once on one connection, a
//! stalled stream beside flowing ones, resets, `-R`, the serving end killed and started again;
//! and every way through the switch (guest to guest, guest to host, host to guest).
#![cfg(target_os = "linux")] // the lab is a Linux guest

mod common;
use std::time::Duration;

use common::traffic::{checked_clients_of, echo_tcp};
use common::{in_lab, spawn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixStream};

#[test]
fn forward_over_vsock_1000_streams_a_stalled_one_resets_and_a_restart() {
    in_lab("forward_over_vsock_1000_streams_a_stalled_one_resets_and_a_restart", || {
        // The test's own echo holds a socket per stream.
        let _ = hvsock_relay::descriptors::Ceiling::raise();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            echo_tcp("127.0.0.1:7101").await;
            let stuck = TcpListener::bind("127.0.0.1:7102").await.unwrap();
            let resetting = TcpListener::bind("127.0.0.1:7103").await.unwrap();
            let dir = std::env::temp_dir().join(format!("lab-forward-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let sock = |name: &str| dir.join(name).display().to_string();
            let serve = [
                "forward",
                "--serve",
                "vsock:any:7100",
                "--allow",
                "127.0.0.1:7101",
                "--allow",
                "127.0.0.1:7102",
                "--allow",
                "127.0.0.1:7103",
                "--allow-listen",
                "127.0.0.1:7104",
                "--grace",
                "1",
                // A thousand connects at once to the test's echo, on the guest's one CPU: some
                // SYNs are dropped and retried (1 s, 3 s, 7 s), past the usual 5 s.
                "--connect-timeout",
                "60",
            ];
            let (mut server, mut server_lines) = spawn(&serve);
            server_lines.wait("forward: serving on");
            let (echo, stalled) = (sock("echo.sock"), sock("stalled.sock"));
            let (mut client, mut lines) = spawn(&[
                "forward",
                "vsock:1:7100",
                "--keepalive",
                "60",
                "-L",
                &format!("{echo}:127.0.0.1:7101"),
                "-L",
                &format!("{stalled}:127.0.0.1:7102"),
                "-L",
                "127.0.0.1:7105:127.0.0.1:7103",
                "-R",
                "7104:127.0.0.1:7101",
            ]);
            lines.wait("forward: connected to vsock:1:7100");

            // A reader that never reads: its writer is held up, and stays so.
            let mut held = UnixStream::connect(&stalled).await.unwrap();
            let (_never_read, _) = stuck.accept().await.unwrap();
            let writer = tokio::spawn(async move {
                let chunk = vec![1u8; 1 << 20];
                loop {
                    if let Err(e) = held.write_all(&chunk).await {
                        return e;
                    }
                }
            });
            // 1,000 streams at once on the one connection, beside it, every byte checked.
            let echo_path = echo.clone();
            let total =
                checked_clients_of(1000, 64 << 10, move || UnixStream::connect(echo_path.clone())).await;
            assert!(!writer.is_finished());
            // -R: the serving end's 127.0.0.1:7104 is our echo.
            let total_r =
                checked_clients_of(20, 256 << 10, || tokio::net::TcpStream::connect("127.0.0.1:7104")).await;

            // A reset passed on as a reset, each way (TCP at both ends: a Unix socket has none).
            let mut buf = [0u8; 5];
            let mut c = tokio::net::TcpStream::connect("127.0.0.1:7105").await.unwrap();
            c.write_all(b"hello").await.unwrap();
            let (mut t, _) = resetting.accept().await.unwrap();
            t.read_exact(&mut buf).await.unwrap();
            socket2::SockRef::from(&c).set_linger(Some(Duration::ZERO)).unwrap();
            drop(c);
            assert_eq!(
                t.read(&mut buf).await.map_err(|e| e.kind()).unwrap_err(),
                std::io::ErrorKind::ConnectionReset
            );
            let mut c = tokio::net::TcpStream::connect("127.0.0.1:7105").await.unwrap();
            c.write_all(b"hello").await.unwrap();
            let (mut t, _) = resetting.accept().await.unwrap();
            t.read_exact(&mut buf).await.unwrap();
            socket2::SockRef::from(&t).set_linger(Some(Duration::ZERO)).unwrap();
            drop(t);
            assert_eq!(
                c.read(&mut buf).await.map_err(|e| e.kind()).unwrap_err(),
                std::io::ErrorKind::ConnectionReset
            );

            // The serving end killed and started again: the client makes the connection again
            // by itself, its listeners up all along.
            server.kill().unwrap();
            server.wait().unwrap();
            lines.wait("forward: the connection to vsock:1:7100 dropped");
            let (mut server, mut server_lines) = spawn(&serve);
            server_lines.wait("forward: serving on");
            lines.wait("forward: connected to vsock:1:7100 again");
            let echo_path = echo.clone();
            let again =
                checked_clients_of(50, 64 << 10, move || UnixStream::connect(echo_path.clone())).await;
            // The stalled stream was open when the connection dropped: it was reset (a Unix
            // socket's reset is its close: the writer's next write fails).
            let e = writer.await.unwrap();
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");

            for child in [&mut client, &mut server] {
                // SAFETY: kill(2) on the pid of our own child, not yet reaped.
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            }
            let code = client.wait().unwrap().code();
            // The last streams' joins may still be ending when the test has all its bytes:
            // the stop gives them the grace period, and the summary comes after.
            let summary = lines.wait(" streams (");
            println!("{total} + {total_r} + {again} bytes each way; {summary}");
            // Failed: the two resets, and the stalled stream when the connection dropped.
            assert!(summary.starts_with("forward: 1073 streams (3 failed), 0 refused, "), "{summary}");
            assert!(summary.ends_with("; the connection made again 1 times"), "{summary}");
            let seen = lines
                .seen()
                .iter()
                .filter(|l| !l.contains(": open") && !l.contains(": closed, "))
                .collect::<Vec<_>>();
            assert_eq!(code, Some(0), "{summary}\n{seen:#?}");
            let _ = server.wait();
        });
    });
}

/// Every way through the lab's switch, each forward hash-checked at several sizes with a
/// half-close each way (`connect` half-closes at the end of its input; `cat` answers, then
/// ends): guest 4 to guest 3 and to the host (the host serves on guest 4's hybrid socket),
/// and the host to guest 3 through guest 3's hybrid socket.
#[test]
fn forward_every_way_through_the_switch() {
    let dir = std::env::temp_dir().join(format!("lab-forward-ways-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    // A line per size: same, or not.
    let check = |who: &str, to: &str| {
        let file = who.replace(' ', "-");
        format!(
            "for n in 0 1 65537 1234567; do
               head -c $n /dev/urandom > {d}/{file}.data
               a=$($HVSOCK connect {to} < {d}/{file}.data | sha256sum)
               b=$(sha256sum < {d}/{file}.data)
               if [ \"$a\" = \"$b\" ]; then echo \"{who}: $n same\"; else echo \"{who}: $n differs\"; fi
             done"
        )
    };
    // Waits for a line in a log (a server's readiness, a client's connection).
    let until =
        |log: &str, text: &str| format!("until grep -q '{text}' {d}/{log} 2>/dev/null; do sleep 0.02; done");
    let guest3 = format!(
        "$HVSOCK listen tcp:127.0.0.1:7201 -k --exec cat 2>{d}/echo3 &
         {}
         $HVSOCK forward --serve vsock:any:7200 --allow 127.0.0.1:7201 2>/dev/null &
         wait",
        until("echo3", "listening on")
    );
    let host_service = format!(
        "$HVSOCK listen unix:{d}/host-echo.sock -k --exec cat 2>{d}/echo-host &
         {}
         exec $HVSOCK forward --serve hybrid:$HVSOCK_LAB_VM4:7202 --allow {d}/host-echo.sock 2>/dev/null",
        until("echo-host", "listening on")
    );
    let guest4 = format!(
        "$HVSOCK lab wait 3:7200
         $HVSOCK forward vsock:3:7200 -L 127.0.0.1:7300:127.0.0.1:7201 2>{d}/g4 &
         p1=$!
         $HVSOCK forward vsock:2:7202 -L 127.0.0.1:7302:{d}/host-echo.sock 2>{d}/g4h &
         p2=$!
         {}
         {}
         {}
         {}
         kill $p1 $p2; wait",
        until("g4", "connected to"),
        check("guest to guest", "tcp:127.0.0.1:7300"),
        until("g4h", "connected to"),
        check("guest to host", "tcp:127.0.0.1:7302"),
    );
    let host1 = format!(
        "$HVSOCK lab wait 3:7200
         $HVSOCK forward hybrid:$HVSOCK_LAB_VM3:7200 -L {d}/h1.sock:127.0.0.1:7201 2>{d}/h1 &
         p1=$!
         {}
         {}
         kill $p1; wait",
        until("h1", "connected to"),
        check("host to guest", &format!("unix:{d}/h1.sock")),
    );
    let o = common::lab_scenario_with(
        &["--guest-service", &guest3, "--host-service", &host_service],
        &[&guest4],
        &[&host1],
    );
    let out = common::stdout(&o);
    let logs = ["g4", "g4h", "h1"].map(|f| std::fs::read_to_string(dir.join(f)).unwrap_or_default());
    common::assert_ok(&o);
    let same = |who: &str| ["0", "1", "65537", "1234567"].map(|n| format!("{who}: {n} same"));
    let guest4: Vec<String> = same("guest to guest").into_iter().chain(same("guest to host")).collect();
    assert_eq!(common::lines_of(&out, "guest 4"), guest4, "{out}\n{logs:?}");
    // The host service is host 1; the --host, host 2.
    assert_eq!(common::lines_of(&out, "host 2"), same("host to guest"), "{out}\n{logs:?}");
}

/// `-D` with curl's SOCKS5 client (`--socks5-hostname`: the name goes to the serving end),
/// over vsock in one guest: an allowed target answers, one not allowed is refused in the
/// SOCKS reply, and nothing reaches it.
#[test]
fn forward_socks5_with_curl() {
    let o = common::lab_sh(
        r#"$HVSOCK listen tcp:127.0.0.1:7401 -k --exec 'while read -r l && [ "$l" != "$(printf "\r")" ]; do :; done; printf "HTTP/1.0 200 OK\r\nContent-Length: 20\r\n\r\nhello through socks\n"' 2>$T/web &
           ready $T/web
           $HVSOCK forward --serve vsock:any:7400 --allow localhost:7401 2>$T/serve &
           $HVSOCK lab wait 7400
           $HVSOCK forward vsock:1:7400 -D 1080 -v 2>$T/client &
           until grep -q 'connected to' $T/client; do sleep 0.02; done
           curl -sS --socks5-hostname 127.0.0.1:1080 http://localhost:7401/
           curl -sS --socks5-hostname 127.0.0.1:1080 http://localhost:7402/ 2>/dev/null || echo "refused: curl exit $?"
           grep -o 'refused: tcp:localhost:7402 is not on the serving end.s allowlist' $T/client"#,
    );
    common::assert_ok(&o);
    let out = common::stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "hello through socks", "{out}");
    assert!(lines[1].starts_with("refused: curl exit "), "{out}");
    assert_eq!(lines[2], "refused: tcp:localhost:7402 is not on the serving end's allowlist", "{out}");
}

/// `-L udp:` over vsock in one guest: datagrams of several sizes, each back whole from a
/// Python UDP echo, through the serving end's socket.
#[test]
fn forward_udp_datagrams_whole() {
    let o = common::lab_sh(
        r#"python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 7501))
print("listening on", flush=True)
while True:
    d, a = s.recvfrom(65536); s.sendto(d, a)' > $T/echo &
           ready $T/echo
           $HVSOCK forward --serve vsock:any:7500 --allow udp:127.0.0.1:7501 2>$T/serve &
           $HVSOCK lab wait 7500
           $HVSOCK forward vsock:1:7500 -L udp:7502:127.0.0.1:7501 2>$T/client &
           until grep -q 'connected to' $T/client; do sleep 0.02; done
           python3 -c '
import os, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect(("127.0.0.1", 7502)); s.settimeout(60)
for n in (0, 1, 1472, 8192, 65507):
    d = os.urandom(n); s.send(d); back = s.recv(65536)
    print(n, "same" if back == d else "differs (%d bytes)" % len(back))'"#,
    );
    common::assert_ok(&o);
    let out = common::stdout(&o);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["0 same", "1 same", "1472 same", "8192 same", "65507 same"],
        "{out}"
    );
}
