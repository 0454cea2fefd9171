//! `hvsock relay` for real, inside the lab guest: many clients at once, both directions of
//! endpoint kinds, the allowlist, resets, and the exit summary.
#![cfg(target_os = "linux")] // the lab is a Linux guest

mod common;
use common::in_lab;
use common::traffic::{checked_clients, echo_tcp, echo_vsock, start};
use hvsock::tokio::AsyncStream;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

#[test]
fn relay_tcp_to_vsock_200_clients_at_once() {
    in_lab("relay_tcp_to_vsock_200_clients_at_once", || {
        runtime().block_on(async {
            echo_vsock("vsock:any:7001").await;
            let (relay, log) = start(&["relay", "tcp:127.0.0.1:7000", "vsock:1:7001", "--count", "200"]);
            let total = checked_clients(200, || tokio::net::TcpStream::connect("127.0.0.1:7000")).await;
            let status = tokio::task::spawn_blocking(move || { let mut r = relay; r.wait() }).await.unwrap().unwrap();
            let log = log.join().unwrap();
            assert!(status.success(), "{log}");
            assert!(
                log.contains(&format!("relay: 200 connections (0 refused, 0 failed), {total} bytes to vsock:1:7001, {total} bytes back")),
                "{log}"
            );
            println!("{total} bytes each way through the relay");
        });
    });
}

#[test]
fn relay_vsock_to_tcp_200_clients_at_once() {
    in_lab("relay_vsock_to_tcp_200_clients_at_once", || {
        runtime().block_on(async {
            echo_tcp("127.0.0.1:7011").await;
            let (relay, log) = start(&["relay", "vsock:any:7010", "tcp:127.0.0.1:7011", "--count", "200", "--max-conns", "64"]);
            let total = checked_clients(200, || AsyncStream::connect("vsock:1:7010")).await;
            let status = tokio::task::spawn_blocking(move || { let mut r = relay; r.wait() }).await.unwrap().unwrap();
            let log = log.join().unwrap();
            assert!(status.success(), "{log}");
            assert!(
                log.contains(&format!("relay: 200 connections (0 refused, 0 failed), {total} bytes to tcp:127.0.0.1:7011, {total} bytes back")),
                "{log}"
            );
        });
    });
}

#[test]
fn relay_allowlist_refusals_and_a_reset_mid_stream() {
    in_lab("relay_allowlist_refusals_and_a_reset_mid_stream", || {
        runtime().block_on(async {
            echo_vsock("vsock:any:7021").await;
            echo_vsock("vsock:any:7022").await;
            let (relay, log) = start(&[
                "relay",
                "tcp:127.0.0.1:7020",
                "vsock:1:*",
                "--allow",
                "1:7021",
                "--count",
                "5",
                "-v",
            ]);
            let ask = |line: &'static str| async move {
                let mut s = BufReader::new(tokio::net::TcpStream::connect("127.0.0.1:7020").await.unwrap());
                s.get_mut().write_all(line.as_bytes()).await.unwrap();
                let mut answer = String::new();
                s.read_line(&mut answer).await.unwrap();
                (s, answer)
            };
            // allowed: OK, then the stream is the echo service's
            let (mut s, answer) = ask("CONNECT 1:7021\n").await;
            assert_eq!(answer, "OK\n");
            s.get_mut().write_all(b"ping").await.unwrap();
            s.get_mut().shutdown().await.unwrap();
            let mut echoed = String::new();
            s.read_to_string(&mut echoed).await.unwrap();
            assert_eq!(echoed, "ping");
            // not listed, or not a CONNECT line: refused with a reason, then closed
            let (mut s, answer) = ask("CONNECT 1:7022\n").await;
            assert_eq!(answer, "ERR 1:7022 is not on the allowlist\n");
            assert_eq!(s.read(&mut [0u8; 8]).await.unwrap(), 0);
            let (_, answer) = ask("GET / HTTP/1.0\n").await;
            assert_eq!(answer, "ERR expected `CONNECT HOST:PORT`, got `GET / HTTP/1.0`\n");
            // a client that resets mid-stream
            let (s, answer) = ask("CONNECT 1:7021\n").await;
            assert_eq!(answer, "OK\n");
            let mut tcp = s.into_inner();
            tcp.write_all(&vec![7u8; 64 * 1024]).await.unwrap();
            socket2::SockRef::from(&tcp).set_linger(Some(std::time::Duration::ZERO)).unwrap(); // close = reset
            drop(tcp);
            // ... does not take the relay down
            let (mut s, answer) = ask("CONNECT 1:7021\n").await;
            assert_eq!(answer, "OK\n");
            s.get_mut().write_all(b"still here").await.unwrap();
            s.get_mut().shutdown().await.unwrap();
            let mut echoed = String::new();
            s.read_to_string(&mut echoed).await.unwrap();
            assert_eq!(echoed, "still here");

            let status = tokio::task::spawn_blocking(move || {
                let mut r = relay;
                r.wait()
            })
            .await
            .unwrap()
            .unwrap();
            let log = log.join().unwrap();
            assert!(status.success(), "{log}");
            assert!(log.contains("refused: 1:7022 is not on the allowlist"), "{log}");
            assert!(log.contains("refused: expected `CONNECT HOST:PORT`"), "{log}");
            assert!(log.contains("read: Connection reset by peer"), "{log}");
            assert!(log.contains("relay: 5 connections (2 refused, 1 failed)"), "{log}");
        });
    });
}
