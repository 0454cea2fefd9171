//! The async API (hvsock::tokio) against real AF_VSOCK, mirroring the blocking API's tests.
#![cfg(target_os = "linux")] // the lab is a Linux guest

mod common;
use std::io::ErrorKind;
use std::time::{Duration, Instant};

use common::in_lab;
use common::traffic::data;
use hvsock::tokio::{AsyncListener, AsyncStream};
use hvsock::{Listener, SocketAddr, Stream, VsockAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Runtime::new().unwrap().block_on(f)
}

fn vsock(cid: u32, port: u32) -> SocketAddr {
    SocketAddr::Vsock(VsockAddr::new(cid, port))
}

#[test]
fn async_connect_accept_addresses_and_half_close() {
    in_lab("async_connect_accept_addresses_and_half_close", || {
        block_on(async {
            let listener = AsyncListener::bind("vsock:any:21001").await.unwrap();
            assert_eq!(listener.local_addr().unwrap(), vsock(VsockAddr::CID_ANY, 21001));
            let server = tokio::spawn(async move {
                let (mut s, peer) = listener.accept().await.unwrap();
                assert_eq!(s.peer_addr().unwrap(), peer);
                assert_eq!(s.local_addr().unwrap(), vsock(1, 21001));
                let mut got = Vec::new();
                s.read_to_end(&mut got).await.unwrap(); // ends because the client half-closed
                s.write_all(b"reply after your EOF").await.unwrap();
                (got, peer)
            });
            let mut c = AsyncStream::connect("vsock:lo:21001").await.unwrap();
            assert_eq!(c.peer_addr().unwrap(), vsock(1, 21001));
            c.write_all(b"request").await.unwrap();
            c.shutdown().await.unwrap();
            let mut reply = String::new();
            c.read_to_string(&mut reply).await.unwrap();
            let (got, peer) = server.await.unwrap();
            assert_eq!(got, b"request");
            assert_eq!(reply, "reply after your EOF");
            assert_eq!(peer.as_vsock().unwrap().port, c.local_addr().unwrap().as_vsock().unwrap().port);
            assert!(c.write_all(b"after shutdown").await.is_err());
        });
    });
}

#[test]
fn async_refusals_unreachable_cids_and_timeouts() {
    in_lab("async_refusals_unreachable_cids_and_timeouts", || {
        block_on(async {
            let e = AsyncStream::connect("vsock:lo:21999").await.unwrap_err();
            assert!(matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused), "{e}");
            let e = AsyncStream::connect("vsock:5:1").await.unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ENODEV), "{e}");
            let e = AsyncStream::connect("vsock:any:1").await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            // A silent peer: a read waits (without blocking the runtime) until a timeout says so.
            let listener = AsyncListener::bind("vsock:lo:21002").await.unwrap();
            let mut c = AsyncStream::connect("vsock:lo:21002").await.unwrap();
            let (_silent, _) = listener.accept().await.unwrap();
            let start = Instant::now();
            let r = tokio::time::timeout(Duration::from_millis(200), c.read(&mut [0u8; 8])).await;
            assert!(r.is_err(), "read returned without data: {r:?}");
            assert!(start.elapsed() >= Duration::from_millis(190));
            // A second accept with nobody connecting stays pending, and the runtime stays live.
            assert!(tokio::time::timeout(Duration::from_millis(100), listener.accept()).await.is_err());
        });
    });
}

#[test]
fn async_split_halves_sixteen_mib_each_way_and_std_conversions() {
    in_lab("async_split_halves_sixteen_mib_each_way_and_std_conversions", || {
        const LEN: usize = 16 << 20;
        // Blocking listener and stream converted into async ones, and back.
        let std_listener = Listener::bind("vsock:lo:21010").unwrap();
        block_on(async move {
            let listener = AsyncListener::from_std(std_listener).unwrap();
            let server = tokio::spawn(async move {
                let (s, _) = listener.accept().await.unwrap();
                let (mut r, mut w) = s.into_split();
                let writer = tokio::spawn(async move {
                    w.write_all(&data(2, LEN)).await.unwrap();
                    drop(w); // dropping the owned write half half-closes
                });
                let mut got = Vec::new();
                r.read_to_end(&mut got).await.unwrap();
                writer.await.unwrap();
                got
            });
            let c = AsyncStream::from_std(Stream::connect("vsock:lo:21010").unwrap()).unwrap();
            let (mut r, mut w) = c.into_split();
            let writer = tokio::spawn(async move {
                for chunk in data(1, LEN).chunks(100_003) {
                    w.write_all(chunk).await.unwrap();
                }
                w.shutdown().await.unwrap();
                w
            });
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            let w = writer.await.unwrap();
            assert!(got == data(2, LEN), "server->client bytes differ");
            assert!(server.await.unwrap() == data(1, LEN), "client->server bytes differ");
            let c = r.reunite(w).unwrap();
            // Back to blocking: reads block again, and see the peer's end as end-of-file.
            let blocking = c.into_std().unwrap();
            assert_eq!(std::io::Read::read(&mut &blocking, &mut [0u8; 8]).unwrap(), 0);
        });
        // Borrowed halves in one task.
        block_on(async {
            let listener = AsyncListener::bind("vsock:lo:21011").await.unwrap();
            let mut c = AsyncStream::connect("vsock:lo:21011").await.unwrap();
            let (mut s, _) = listener.accept().await.unwrap();
            let (mut r, mut w) = c.split();
            let (sent, echoed) = tokio::join!(
                async {
                    w.write_all(b"borrowed halves").await.unwrap();
                    w.shutdown().await.unwrap();
                },
                async {
                    let mut buf = Vec::new();
                    s.read_to_end(&mut buf).await.unwrap();
                    s.write_all(&buf).await.unwrap();
                    s.shutdown().await.unwrap();
                    let mut back = Vec::new();
                    r.read_to_end(&mut back).await.unwrap();
                    back
                }
            );
            let () = sent;
            assert_eq!(echoed, b"borrowed halves");
        });
    });
}

/// The async connect is the blocking one's policy: the caller's timeout reaches the kernel
/// (whose own vsock connect timer would end a non-blocking connect after 2 s), options and
/// retries apply, and "not there yet" is retried until the server appears.
#[test]
fn connector_connect_async_applies_the_timeout_and_retries() {
    in_lab("connector_connect_async_applies_the_timeout_and_retries", || {
        block_on(async {
            let late = tokio::spawn(async {
                tokio::time::sleep(Duration::from_millis(600)).await;
                let listener = AsyncListener::bind("vsock:any:21050").await.unwrap();
                let (mut s, _) = listener.accept().await.unwrap();
                s.write_all(b"late but there").await.unwrap();
            });
            let connector = hvsock::Connector::new()
                .timeout(Duration::from_secs(30))
                .retries(50)
                .retry_wait(Duration::from_millis(50))
                .buffer_size(128 * 1024);
            let mut c = connector.connect_async("vsock:lo:21050").await.unwrap();
            let mut got = String::new();
            c.read_to_string(&mut got).await.unwrap();
            assert_eq!(got, "late but there");
            late.await.unwrap();
            let c = c.into_std().unwrap();
            assert_eq!(c.connect_timeout_option().unwrap(), Duration::from_secs(30));
            assert_eq!(c.buffer_size(hvsock::BufferSize::Size).unwrap(), 128 * 1024);
            // Without retries, nothing listening is one refusal, at once.
            let e = hvsock::Connector::new().connect_async("vsock:lo:21051").await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
        });
    });
}
