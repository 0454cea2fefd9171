//! Forwards over loopback TCP and Unix sockets: both ends in one process, a real socket
//! between them (the transport is the same byte stream over vsock; the lab tests that).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};

use hvsock::Endpoint;
use tokio::sync::watch;

use super::*;
use crate::{Allowlist, Listener, Signals};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hvsock-forward-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A TCP server that sends back what it reads and closes once its client has.
async fn echo() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    port
}

fn allow(entries: &[String]) -> Allowlist {
    Allowlist::new(entries, None).unwrap()
}

/// The serving end on a Unix socket, as a task.
async fn serve(
    path: &std::path::Path,
    allow: Allowlist,
    allow_listen: Allowlist,
) -> (tokio::task::JoinHandle<u8>, Arc<Summary>) {
    let listener = Listener::bind(&Endpoint::Unix(path.into())).await.unwrap();
    let server = Server {
        allow,
        allow_listen,
        connect_timeout: Duration::from_secs(5),
        grace: Duration::from_secs(1),
        udp_idle: Duration::from_secs(60),
    };
    let summary = Arc::new(Summary::default());
    (tokio::spawn(server.serve(listener, Signals::new().unwrap(), summary.clone())), summary)
}

/// A client, started, once its connection is up; and where its `-L`s listen.
async fn client(forward: Forward) -> (Vec<String>, watch::Receiver<Option<mux::Mux>>, Arc<Summary>) {
    let bound = forward.bind().await.unwrap();
    let addrs = bound.local_addrs().unwrap();
    let mut up = bound.connection();
    let summary = Arc::new(Summary::default());
    tokio::spawn(bound.run(Signals::new().unwrap(), summary.clone()));
    up.wait_for(Option::is_some).await.unwrap();
    (addrs, up, summary)
}

fn spec(listen: Endpoint, target: Endpoint) -> Spec {
    Spec { listen, target }
}

fn tcp_port(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// Bytes that differ from stream to stream and position to position.
fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sends `sent`, half-closes, and reads until the far end closes.
async fn round_trip<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static>(
    s: S,
    sent: Vec<u8>,
) -> Vec<u8> {
    let (mut r, mut w) = tokio::io::split(s);
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    r.read_to_end(&mut back).await.unwrap();
    writer.await.unwrap();
    back
}

#[tokio::test]
async fn many_streams_carry_every_byte_both_ways_and_pass_half_closes_on() {
    let d = dir("many");
    let port = echo().await;
    let (sock, local) = (d.join("serve.sock"), d.join("local.sock"));
    let _server = serve(&sock, allow(&[format!("127.0.0.1:{port}")]), allow(&[])).await;
    let forward = Forward {
        local: vec![spec(Endpoint::Unix(local.clone()), Endpoint::Tcp("127.0.0.1".into(), port))],
        ..Forward::new(Endpoint::Unix(sock))
    };
    let (_, _up, summary) = client(forward).await;
    let mut streams = tokio::task::JoinSet::new();
    for i in 0..64u64 {
        // Sizes from none to 2 MiB: far past a stream's 256 KiB window.
        let len = (data(i, 4).iter().map(|&b| b as usize).sum::<usize>() * 2057) % (2 << 20);
        let len = if i == 0 { 0 } else { len };
        let local = local.clone();
        streams.spawn(async move {
            let sent = data(i, len);
            let back = round_trip(UnixStream::connect(&local).await.unwrap(), sent.clone()).await;
            assert!(back == sent, "stream {i}: {} bytes back of {}", back.len(), sent.len());
        });
    }
    while let Some(done) = streams.join_next().await {
        done.unwrap();
    }
    assert_eq!(summary.streams.load(Ordering::Relaxed), 64);
    assert_eq!(summary.failed.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn the_serving_end_refuses_what_its_allowlist_does_not_name_and_connects_nothing() {
    let d = dir("refuse");
    let port = echo().await;
    let forbidden = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    forbidden.set_nonblocking(true).unwrap();
    let other = forbidden.local_addr().unwrap().port();
    let sock = d.join("serve.sock");
    let (_server, served) = serve(&sock, allow(&[format!("127.0.0.1:{port}")]), allow(&[])).await;
    let forward = Forward {
        local: vec![spec(Endpoint::Tcp("127.0.0.1".into(), 0), Endpoint::Tcp("127.0.0.1".into(), other))],
        ..Forward::new(Endpoint::Unix(sock))
    };
    let (addrs, _up, summary) = client(forward).await;
    let mut s = TcpStream::connect(("127.0.0.1", tcp_port(&addrs[0]))).await.unwrap();
    let mut buf = [0u8; 16];
    let read = s.read(&mut buf).await;
    assert_eq!(read.map_err(|e| e.kind()).unwrap_err(), std::io::ErrorKind::ConnectionReset);
    // Refused before any connect: nothing ever reached the target.
    assert_eq!(forbidden.accept().unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
    assert_eq!(served.refused.load(Ordering::Relaxed), 1);
    assert_eq!(summary.refused.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_reset_is_passed_on_as_a_reset_both_ways() {
    let d = dir("reset");
    let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = target.local_addr().unwrap().port();
    let sock = d.join("serve.sock");
    let _server = serve(&sock, allow(&[format!("127.0.0.1:{port}")]), allow(&[])).await;
    let forward = Forward {
        local: vec![spec(Endpoint::Tcp("127.0.0.1".into(), 0), Endpoint::Tcp("127.0.0.1".into(), port))],
        ..Forward::new(Endpoint::Unix(sock))
    };
    let (addrs, _up, _) = client(forward).await;
    let local = ("127.0.0.1", tcp_port(&addrs[0]));
    let mut buf = [0u8; 16];

    // The target resets: the client reads a reset.
    let mut c = TcpStream::connect(local).await.unwrap();
    c.write_all(b"hello").await.unwrap();
    let (mut t, _) = target.accept().await.unwrap();
    t.read_exact(&mut buf[..5]).await.unwrap();
    socket2::SockRef::from(&t).set_linger(Some(Duration::ZERO)).unwrap();
    drop(t);
    assert_eq!(
        c.read(&mut buf).await.map_err(|e| e.kind()).unwrap_err(),
        std::io::ErrorKind::ConnectionReset
    );

    // The client resets: the target reads a reset.
    let mut c = TcpStream::connect(local).await.unwrap();
    c.write_all(b"hello").await.unwrap();
    let (mut t, _) = target.accept().await.unwrap();
    t.read_exact(&mut buf[..5]).await.unwrap();
    socket2::SockRef::from(&c).set_linger(Some(Duration::ZERO)).unwrap();
    drop(c);
    assert_eq!(
        t.read(&mut buf).await.map_err(|e| e.kind()).unwrap_err(),
        std::io::ErrorKind::ConnectionReset
    );
}

#[tokio::test]
async fn a_stalled_stream_holds_up_only_itself() {
    let d = dir("stall");
    let port = echo().await;
    let stuck = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stuck_port = stuck.local_addr().unwrap().port();
    let sock = d.join("serve.sock");
    let allowed = allow(&[format!("127.0.0.1:{port}"), format!("127.0.0.1:{stuck_port}")]);
    let _server = serve(&sock, allowed, allow(&[])).await;
    let (stalled, flowing) = (d.join("stalled.sock"), d.join("flowing.sock"));
    let forward = Forward {
        local: vec![
            spec(Endpoint::Unix(stalled.clone()), Endpoint::Tcp("127.0.0.1".into(), stuck_port)),
            spec(Endpoint::Unix(flowing.clone()), Endpoint::Tcp("127.0.0.1".into(), port)),
        ],
        ..Forward::new(Endpoint::Unix(sock))
    };
    let (_, _up, _) = client(forward).await;
    // A reader that never reads: the writer is held up once every buffer on the way is full.
    let mut s = UnixStream::connect(&stalled).await.unwrap();
    let (_never_read, _) = stuck.accept().await.unwrap();
    let held = tokio::spawn(async move {
        let chunk = vec![7u8; 1 << 20];
        loop {
            s.write_all(&chunk).await.unwrap();
        }
    });
    let mut streams = tokio::task::JoinSet::new();
    for i in 0..20u64 {
        let flowing = flowing.clone();
        streams.spawn(async move {
            let sent = data(i, 1 << 20);
            assert!(round_trip(UnixStream::connect(&flowing).await.unwrap(), sent.clone()).await == sent);
        });
    }
    while let Some(done) = streams.join_next().await {
        done.unwrap();
    }
    assert!(!held.is_finished(), "the stalled writer was never held up");
    held.abort();
}

#[tokio::test]
async fn the_serving_end_listens_for_the_client_where_allowed() {
    let d = dir("remote");
    let port = echo().await;
    let sock = d.join("serve.sock");
    let (there, denied) = (d.join("there.sock"), d.join("denied.sock"));
    let _server = serve(&sock, allow(&[]), allow(&[format!("unix:{}", there.display())])).await;
    let forward = Forward {
        remote: vec![spec(Endpoint::Unix(there.clone()), Endpoint::Tcp("127.0.0.1".into(), port))],
        ..Forward::new(Endpoint::Unix(sock.clone()))
    };
    let (_, _up, summary) = client(forward).await;
    for i in 0..8 {
        let sent = data(i, 300_000);
        assert!(round_trip(UnixStream::connect(&there).await.unwrap(), sent.clone()).await == sent);
    }
    assert_eq!(summary.streams.load(Ordering::Relaxed), 8);
    // A place not on --allow-listen, on the first connection, ends the client with the reason.
    let forward = Forward {
        remote: vec![spec(Endpoint::Unix(denied.clone()), Endpoint::Tcp("127.0.0.1".into(), port))],
        ..Forward::new(Endpoint::Unix(sock))
    };
    let bound = forward.bind().await.unwrap();
    assert_eq!(bound.run(Signals::new().unwrap(), Default::default()).await, 1);
    assert!(!denied.exists());
}

#[tokio::test]
async fn the_connection_is_made_again_when_the_serving_end_restarts() {
    let d = dir("again");
    let port = echo().await;
    let (sock, local) = (d.join("serve.sock"), d.join("local.sock"));
    let allowed = || allow(&[format!("127.0.0.1:{port}")]);
    let (server, _) = serve(&sock, allowed(), allow(&[])).await;
    let forward = Forward {
        local: vec![spec(Endpoint::Unix(local.clone()), Endpoint::Tcp("127.0.0.1".into(), port))],
        ..Forward::new(Endpoint::Unix(sock.clone()))
    };
    let (_, mut up, summary) = client(forward).await;
    let sent = data(1, 100_000);
    assert!(round_trip(UnixStream::connect(&local).await.unwrap(), sent.clone()).await == sent);
    server.abort();
    up.wait_for(Option::is_none).await.unwrap();
    let _server = serve(&sock, allowed(), allow(&[])).await;
    // The listener stayed up: a connection made now waits for the connection to come back.
    let sent = data(2, 100_000);
    assert!(round_trip(UnixStream::connect(&local).await.unwrap(), sent.clone()).await == sent);
    assert_eq!(summary.connections.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_socks5_client_reaches_what_the_serving_end_allows_and_hears_why_not() {
    let d = dir("socks");
    let port = echo().await;
    let sock = d.join("serve.sock");
    let _server = serve(&sock, allow(&[format!("127.0.0.1:{port}")]), allow(&[])).await;
    let forward =
        Forward { socks: vec![Endpoint::Tcp("127.0.0.1".into(), 0)], ..Forward::new(Endpoint::Unix(sock)) };
    let (addrs, _up, summary) = client(forward).await;
    let socks = ("127.0.0.1", tcp_port(&addrs[0]));
    // CONNECT by IPv4 address, then by name: a byte stream like any other.
    let mut by_ip = vec![5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1];
    by_ip.extend(port.to_be_bytes());
    let mut by_name = vec![5, 1, 0, 5, 1, 0, 3, 9];
    by_name.extend(b"127.0.0.1");
    by_name.extend(port.to_be_bytes());
    for request in [by_ip, by_name] {
        let mut s = TcpStream::connect(socks).await.unwrap();
        s.write_all(&request).await.unwrap();
        let mut reply = [0u8; 12];
        s.read_exact(&mut reply).await.unwrap();
        assert_eq!(reply[..4], [5, 0, 5, 0], "{reply:?}");
        let sent = data(7, 200_000);
        assert!(round_trip(s, sent.clone()).await == sent);
    }
    // Not on the allowlist: reply 2 (not allowed by the ruleset), then the end.
    let mut s = TcpStream::connect(socks).await.unwrap();
    s.write_all(&[5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 22]).await.unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).await.unwrap();
    assert_eq!(reply, [5, 0, 5, 2, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(summary.streams.load(Ordering::Relaxed), 2);
    assert_eq!(summary.refused.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn udp_datagrams_arrive_whole_each_way_and_an_unlisted_target_gets_none() {
    let d = dir("udp");
    let echo = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = echo.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, from) = echo.recv_from(&mut buf).await.unwrap();
            echo.send_to(&buf[..n], from).await.unwrap();
        }
    });
    let sock = d.join("serve.sock");
    // A TCP entry for the same port allows no UDP.
    let (_server, served) =
        serve(&sock, allow(&[format!("udp:127.0.0.1:{port}"), "127.0.0.1:9".into()]), allow(&[])).await;
    let udp = |to: u16| spec(Endpoint::Tcp("127.0.0.1".into(), 0), Endpoint::Tcp("127.0.0.1".into(), to));
    let forward = Forward { udp: vec![udp(port), udp(9)], ..Forward::new(Endpoint::Unix(sock)) };
    let bound = forward.bind().await.unwrap();
    let addrs = bound.udp_addrs().unwrap();
    let mut up = bound.connection();
    tokio::spawn(bound.run(Signals::new().unwrap(), Default::default()));
    up.wait_for(Option::is_some).await.unwrap();
    let me = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    me.connect(addrs[0]).await.unwrap();
    let mut buf = vec![0u8; 65_536];
    for (i, len) in [0, 1, 1400, 9000, MAX_DATAGRAM].into_iter().enumerate() {
        let sent = data(i as u64, len);
        me.send(&sent).await.unwrap();
        let n = me.recv(&mut buf).await.unwrap();
        assert!(buf[..n] == sent[..], "datagram {i}: {n} bytes back of {len}");
    }
    // Port 9 is not allowed for UDP: refused at the serving end, nothing sent there.
    let other = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    other.send_to(b"x", addrs[1]).await.unwrap();
    while served.refused.load(Ordering::Relaxed) == 0 {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(served.refused.load(Ordering::Relaxed), 1);
}
