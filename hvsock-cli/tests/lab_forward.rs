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
                "--grace",
                "1",
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
            let summary = lines.wait("forward: ");
            println!("{total} + {total_r} + {again} bytes each way; {summary}");
            // Failed: the two resets, and the stalled stream when the connection dropped.
            assert!(summary.starts_with("forward: 1073 streams (3 failed), 0 refused, "), "{summary}");
            assert!(summary.ends_with("; the connection made again 1 times"), "{summary}");
            assert_eq!(code, Some(0), "{summary}");
            let _ = server.wait();
        });
    });
}
