//! The endpoint table over real sockets (TCP on loopback, Unix stream and SOCK_SEQPACKET,
//! hybrid vsock against a small fake VMM): each kind opens, by both faces, and carries bytes
//! (or whole messages) to a listener the same table bound.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::blocking::{Listener as BlockingListener, Socket};
use crate::{connect, Listener};

const T: Duration = Duration::from_secs(30);

struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("hvsock-open-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Each kind the tests cover: where to listen, and where a client connects to reach it (a
/// hybrid listener is reached as a guest reaches it, at `UDS_PORT`).
#[cfg(unix)]
fn kinds(dir: &Dir) -> Vec<(hvsock::Endpoint, hvsock::Endpoint)> {
    let p = |name: &str| dir.0.join(name).display().to_string();
    let ep = |s: String| s.parse::<hvsock::Endpoint>().unwrap();
    vec![
        (ep(format!("unix:{}", p("s"))), ep(format!("unix:{}", p("s")))),
        (ep(format!("unix-seqpacket:{}", p("q"))), ep(format!("unix-seqpacket:{}", p("q")))),
        (ep(format!("hybrid:{}:52", p("vm"))), ep(format!("unix:{}", p("vm_52")))),
        (ep(format!("hybrid-seqpacket:{}:53", p("vm"))), ep(format!("unix-seqpacket:{}", p("vm_53")))),
    ]
}

/// Windows has TCP only, of the kinds a test can reach without a VM.
#[cfg(not(unix))]
fn kinds(_: &Dir) -> Vec<(hvsock::Endpoint, hvsock::Endpoint)> {
    Vec::new()
}

/// A TCP listener on a port of the system's choosing, and the endpoint that reaches it.
fn tcp_kind() -> (BlockingListener, hvsock::Endpoint) {
    let l = BlockingListener::bind(&"tcp:127.0.0.1:0".parse().unwrap()).unwrap();
    let BlockingListener::Tcp(t) = &l else { panic!("a TCP endpoint bound as another kind") };
    let to = format!("tcp:127.0.0.1:{}", t.local_addr().unwrap().port()).parse().unwrap();
    (l, to)
}

#[test]
fn the_blocking_face_opens_every_kind_and_carries_bytes() {
    let dir = Dir::new();
    let mut all: Vec<(BlockingListener, hvsock::Endpoint)> =
        kinds(&dir).into_iter().map(|(at, to)| (BlockingListener::bind(&at).unwrap(), to)).collect();
    all.push(tcp_kind());
    for (listener, to) in all {
        let mut client = Socket::connect(&to, T, 0).unwrap();
        let mut server = listener.accept().unwrap();
        assert_eq!(client.carries_messages(), listener.carries_messages(), "{to}");
        assert_eq!(server.carries_messages(), listener.carries_messages(), "{to}");
        client.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        server.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping", "{to}");
    }
}

#[tokio::test]
async fn the_async_face_opens_every_kind_and_carries_bytes() {
    let dir = Dir::new();
    let mut all = Vec::new();
    for (at, to) in kinds(&dir) {
        all.push((Listener::bind(&at).await.unwrap(), to));
    }
    let (tcp, to) = tcp_kind();
    all.push((Listener::from_blocking(tcp).unwrap(), to));
    for (listener, to) in all {
        let (client, server) = tokio::join!(connect(&to, T, 0), listener.accept());
        let (mut client, mut server) = (client.unwrap(), server.unwrap());
        assert_eq!(client.messages.is_some(), listener.carries_messages(), "{to}");
        assert_eq!(server.messages.is_some(), listener.carries_messages(), "{to}");
        client.writer.write_all(b"pong").await.unwrap();
        let mut got = [0u8; 4];
        server.reader.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong", "{to}");
    }
}

#[cfg(unix)]
/// A VMM's hybrid socket that answers one `CONNECT 52` with `OK 7` and then echoes.
fn fake_vmm(path: &std::path::Path) -> std::thread::JoinHandle<()> {
    let l = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut s, _) = l.accept().unwrap();
            let mut line = hvsock::line::Line::new(64);
            line.read_from(&mut s).unwrap();
            assert_eq!(line.text(), "CONNECT 52");
            s.write_all(b"OK 7\n").unwrap();
            let mut b = [0u8; 4];
            s.read_exact(&mut b).unwrap();
            s.write_all(&b).unwrap();
        }
    })
}

#[cfg(unix)]
#[tokio::test]
async fn both_faces_reach_a_guest_port_through_a_hybrid_socket() {
    let dir = Dir::new();
    let vm = dir.0.join("vm.sock");
    let vmm = fake_vmm(&vm);
    let to: hvsock::Endpoint = format!("hybrid:{}:52", vm.display()).parse().unwrap();
    let mut s = Socket::connect(&to, T, 0).unwrap();
    s.write_all(b"echo").unwrap();
    let mut got = [0u8; 4];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"echo");
    let mut c = connect(&to, T, 0).await.unwrap();
    c.writer.write_all(b"ohce").await.unwrap();
    c.reader.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"ohce");
    vmm.join().unwrap();
}

#[tokio::test]
async fn what_cannot_be_opened_is_one_line_from_either_face() {
    #[cfg(unix)]
    let dir = Dir::new();
    #[cfg(unix)]
    let missing: hvsock::Endpoint = format!("unix:{}", dir.0.join("none").display()).parse().unwrap();
    // A port just closed: nothing listens there.
    #[cfg(not(unix))]
    let missing = tcp_kind().1;
    let blocking = Socket::connect(&missing, T, 0).err().unwrap().to_string();
    let engine = connect(&missing, T, 0).await.err().unwrap().to_string();
    assert_eq!(blocking, engine, "one table, one message");
    assert!(blocking.starts_with(&format!("cannot connect to {missing}: ")), "{blocking}");
    let systemd: hvsock::Endpoint = "systemd:".parse().unwrap();
    assert!(connect(&systemd, T, 0).await.err().unwrap().to_string().contains("not for connecting"));
    let stdio: hvsock::Endpoint = "-".parse().unwrap();
    assert!(Socket::connect(&stdio, T, 0).err().unwrap().to_string().contains("`-` is not a socket"));
    assert!(Listener::bind(&stdio).await.err().unwrap().to_string().contains("`-` cannot listen"));
    for text in [blocking, engine] {
        assert!(!text.contains('\n'), "{text}");
    }
}

#[test]
fn only_a_full_queue_is_waited_out_and_only_for_its_kinds() {
    use std::io::{Error, ErrorKind as K};
    let ep = |s: &str| s.parse::<hvsock::Endpoint>().unwrap();
    for (to, kind, waited) in [
        ("vsock:3:5000", K::ConnectionReset, true),
        ("vsock:3:5000", K::ConnectionRefused, false),
        ("vsock:3:5000", K::TimedOut, false),
        ("vsock-seqpacket:3:5000", K::ConnectionReset, true),
        ("unix:/s", K::WouldBlock, true),
        ("unix:/s", K::ConnectionRefused, false), // nobody listens: at once, as before
        ("unix-seqpacket:/s", K::WouldBlock, true),
        ("hybrid:/vm:52", K::ConnectionReset, true),
        ("hybrid:/vm:52", K::ConnectionRefused, true), // the guest's queue: the VMM closes
        ("hybrid:/vm:52", K::WouldBlock, true),        // the VMM's own queue
        ("hybrid:/vm:52", K::NotFound, false),
        ("hybrid-seqpacket:/vm:52", K::ConnectionRefused, true),
        ("tcp:127.0.0.1:80", K::ConnectionReset, false), // TCP retries its SYN itself
        ("tcp:127.0.0.1:80", K::WouldBlock, false),
    ] {
        assert_eq!(super::full_queue(&ep(to), &Error::from(kind)), waited, "{to} {kind:?}");
    }
}

#[test]
fn full_queue_waits_grow_are_jittered_and_stay_within_the_patience() {
    use super::FullQueue;
    assert_eq!(FullQueue::new(Duration::ZERO).next(), None, "no patience: no retry");
    for patience in [Duration::from_millis(1), Duration::from_secs(1), Duration::from_secs(5)] {
        let waits: Vec<Duration> = FullQueue::new(patience).collect();
        assert_eq!(waits.iter().sum::<Duration>(), patience, "the whole patience is used, no more");
        for (i, w) in waits.iter().enumerate().take(waits.len() - 1) {
            let base = (Duration::from_millis(5) * 2u32.pow(i.min(6) as u32)).min(Duration::from_millis(200));
            assert!(*w >= base / 2 && *w <= base * 3 / 2, "wait {i}: {w:?} against {base:?}");
        }
    }
    // Clients refused together do not all come back together.
    let firsts: std::collections::HashSet<Duration> =
        (0..20).map(|_| FullQueue::new(Duration::from_secs(1)).next().unwrap()).collect();
    assert!(firsts.len() > 1, "{firsts:?}");
}
