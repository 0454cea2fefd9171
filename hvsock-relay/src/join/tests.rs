//! The driver over real sockets (Unix socket pairs and TCP on loopback): what the policy
//! decides reaches the sockets.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
    (c.unwrap(), s.unwrap().0)
}

/// Two TCP connections joined: client <-> [a  join  b] <-> server.
async fn joined(options: Options) -> (TcpStream, TcpStream, tokio::task::JoinHandle<End>) {
    let (client, a) = tcp_pair().await;
    let (b, server) = tcp_pair().await;
    let task = tokio::spawn(async move {
        let (a, b) = (Conn::tcp(a, "client".into()), Conn::tcp(b, "server".into()));
        join(a, b, options, &Counters::default()).await
    });
    (client, server, task)
}

#[tokio::test]
async fn half_closes_pass_through_and_the_answer_still_comes() {
    let (mut client, mut server, task) = joined(Options::default()).await;
    client.write_all(b"request").await.unwrap();
    client.shutdown().await.unwrap();
    let mut got = Vec::new();
    server.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"request");
    server.write_all(b"answer").await.unwrap();
    drop(server);
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"answer");
    assert_eq!(task.await.unwrap(), End::Clean);
}

/// The far side learns of a failure as a reset. Wine closes a socket with a FIN whatever its
/// linger (real Windows resets): there, only that the connection ended is checked.
async fn expect_reset(s: &mut TcpStream) {
    let mut buf = [0u8; 1];
    let r = s.read(&mut buf).await;
    #[cfg(unix)]
    assert!(matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset), "{r:?}");
    #[cfg(not(unix))]
    assert!(matches!(&r, Ok(0) | Err(_)), "{r:?}");
}

// Unix only: a client's reset cannot be made under wine (see `expect_reset`).
#[cfg(unix)]
#[tokio::test]
async fn a_reset_on_one_side_is_a_reset_on_the_other() {
    let (client, mut server, task) = joined(Options::default()).await;
    socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO)).unwrap();
    drop(client);
    let end = task.await.unwrap();
    assert!(matches!(end, End::Error(_)), "{end:?}");
    expect_reset(&mut server).await;
}

#[tokio::test]
async fn the_idle_limit_resets_both() {
    let options = Options { idle: Some(Duration::from_millis(50)), ..Options::default() };
    let (mut client, mut server, task) = joined(options).await;
    assert_eq!(task.await.unwrap(), End::Idle);
    expect_reset(&mut client).await;
    expect_reset(&mut server).await;
}

#[tokio::test]
async fn a_stop_cuts_the_connection_as_a_reset_never_a_clean_end() {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let options = Options { stop: Some(stopped), ..Options::default() };
    let (mut client, _server, task) = joined(options).await;
    client.write_all(b"half an upload").await.unwrap();
    stop.send(true).unwrap();
    let end = task.await.unwrap();
    assert!(matches!(&end, End::Error(e) if e.contains("cut")), "{end:?}");
    expect_reset(&mut client).await;
}

#[cfg(unix)]
#[tokio::test]
async fn a_unix_stream_bulk_copy_keeps_every_byte_in_order() {
    let (client, a) = tokio::net::UnixStream::pair().unwrap();
    let (b, server) = tokio::net::UnixStream::pair().unwrap();
    let task = tokio::spawn(async move {
        let (a, b) = (Conn::unix(a, "a".into()), Conn::unix(b, "b".into()));
        let counters = Counters::default();
        let end = join(a, b, Options::default(), &counters).await;
        (end, counters.a_to_b.load(std::sync::atomic::Ordering::Relaxed))
    });
    let data: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        cw.write_all(&sent).await.unwrap();
        cw.shutdown().await.unwrap();
    });
    let mut got = Vec::new();
    sr.read_to_end(&mut got).await.unwrap();
    writer.await.unwrap();
    sw.shutdown().await.unwrap();
    assert_eq!(cr.read(&mut [0u8; 1]).await.unwrap(), 0);
    assert!(got == data, "bytes lost or reordered: {} of {}", got.len(), data.len());
    assert_eq!(task.await.unwrap(), (End::Clean, data.len() as u64));
}
