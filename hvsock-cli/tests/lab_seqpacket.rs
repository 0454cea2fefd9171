//! vsock SOCK_SEQPACKET through the library, blocking and async, against real AF_VSOCK: each
//! test re-runs itself inside a lab guest (see `common::in_lab`).
#![cfg(target_os = "linux")] // the lab is a Linux guest

mod common;
use std::io::ErrorKind;
use std::net::Shutdown;
use std::thread;
use std::time::{Duration, Instant};

use common::in_lab;
use hvsock::tokio::{AsyncSeqpacket, AsyncSeqpacketListener};
use hvsock::{BufferSize, Connector, Seqpacket, SeqpacketListener, SocketAddr, VsockAddr};

/// Message `i` of a run: a size from 1 B to 64 KiB and bytes that say which message it is.
fn message(i: u32) -> Vec<u8> {
    let mut x = i.wrapping_mul(2654435761) ^ 0x5bd1e995;
    x ^= x >> 15;
    let len = 1 + (x as usize % (64 << 10));
    (0..len).map(|j| (j as u32).wrapping_mul(31).wrapping_add(i) as u8).collect()
}

#[test]
fn messages_keep_their_boundaries_both_ways() {
    in_lab("messages_keep_their_boundaries_both_ways", || {
        const N: u32 = 300;
        let l = SeqpacketListener::bind("vsock:any:20101").unwrap();
        assert_eq!(l.local_addr().unwrap(), SocketAddr::Vsock(VsockAddr::new(VsockAddr::CID_ANY, 20101)));
        // The server echoes message for message, and checks what it got.
        let server = thread::spawn(move || {
            let (s, peer) = l.accept().unwrap();
            assert_eq!(s.peer_addr().unwrap(), peer);
            let mut buf = vec![0u8; 256 << 10];
            for i in 0..N {
                let m = s.recv(&mut buf).unwrap();
                assert!(!m.is_truncated());
                assert_eq!(&buf[..m.bytes], &message(i)[..], "message {i} as the server got it");
                assert_eq!(s.send(&buf[..m.bytes]).unwrap(), m.bytes);
            }
            // The client's end of data is one empty receive.
            assert_eq!(s.recv(&mut buf).unwrap(), hvsock::Received { bytes: 0, len: 0 });
        });
        let c = Seqpacket::connect("vsock:lo:20101").unwrap();
        let reader = c.try_clone().unwrap();
        let echoes = thread::spawn(move || {
            let mut buf = vec![0u8; 256 << 10];
            for i in 0..N {
                let m = reader.recv(&mut buf).unwrap();
                assert_eq!(&buf[..m.bytes], &message(i)[..], "message {i} as it came back");
            }
        });
        // Sent while the echoes come back: messages queue behind each other and still arrive
        // one for one.
        for i in 0..N {
            assert_eq!(c.send(&message(i)).unwrap(), message(i).len());
        }
        c.shutdown(Shutdown::Write).unwrap();
        echoes.join().unwrap();
        server.join().unwrap();
    });
}

#[test]
fn truncation_peek_empty_messages_timeouts_and_sizes() {
    in_lab("truncation_peek_empty_messages_timeouts_and_sizes", || {
        let l = SeqpacketListener::bind("vsock:lo:20102").unwrap();
        l.set_buffer_size(BufferSize::Size, 64 << 10).unwrap();
        let c = Connector::new().timeout(Duration::from_secs(2)).connect_seqpacket("vsock:lo:20102").unwrap();
        let (s, _) = l.accept().unwrap();

        // A short buffer keeps the message's start and says how long it was; the rest is gone,
        // and the next message is untouched.
        c.send(&[7u8; 1000]).unwrap();
        c.send(b"next").unwrap();
        let mut small = [0u8; 10];
        match s.peek(&mut small) {
            Ok(m) => assert_eq!((m.bytes, m.len, m.is_truncated()), (10, 1000, true), "a peek says it too"),
            // Linux 6.1 (the lab's) cannot peek at vsock messages: one clear error.
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
                assert!(e.to_string().contains("cannot peek at vsock SEQPACKET messages"), "{e}");
            }
        }
        let m = s.recv(&mut small).unwrap();
        assert_eq!((m.bytes, m.len, m.is_truncated()), (10, 1000, true));
        assert_eq!(small, [7u8; 10]);
        let mut buf = [0u8; 64];
        let m = s.recv(&mut buf).unwrap();
        assert_eq!(&buf[..m.bytes], b"next");

        // Linux drops an empty message: it is "sent" and nothing arrives.
        assert_eq!(c.send(&[]).unwrap(), 0);
        c.send(b"after empty").unwrap();
        let m = s.recv(&mut buf).unwrap();
        assert_eq!(&buf[..m.bytes], b"after empty");

        // A receive timeout.
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        assert_eq!(s.read_timeout().unwrap(), Some(Duration::from_millis(200)));
        let start = Instant::now();
        let e = s.recv(&mut buf).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{e}");
        assert!(start.elapsed() >= Duration::from_millis(150));

        // A message larger than the receiver's whole buffer can never be received: refused.
        assert_eq!(s.buffer_size(BufferSize::Size).unwrap(), 64 << 10, "inherited from the listener");
        let e = c.send(&vec![1u8; (64 << 10) + 1]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EMSGSIZE), "{e}");
        c.send(&vec![2u8; 64 << 10]).unwrap();
        let mut big = vec![0u8; 64 << 10];
        let m = s.recv(&mut big).unwrap();
        assert_eq!((m.bytes, m.is_truncated()), (64 << 10, false));

        // Non-blocking, and the peer going away.
        s.set_nonblocking(true).unwrap();
        assert_eq!(s.recv(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
        drop(c);
        s.set_nonblocking(false).unwrap();
        assert_eq!(s.recv(&mut buf).unwrap().len, 0);

        // Nobody on the port: a reset at once, as for streams.
        let e = Seqpacket::connect("vsock:lo:20199").unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused), "{e}");
    });
}

#[test]
fn async_messages_larger_than_the_free_room_arrive_whole() {
    in_lab("async_messages_larger_than_the_free_room_arrive_whole", || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            const N: u32 = 200;
            let l = AsyncSeqpacketListener::bind("vsock:any:20103").await.unwrap();
            let server = tokio::spawn(async move {
                let (s, _) = l.accept().await.unwrap();
                let mut buf = vec![0u8; 256 << 10];
                // Let the client's messages pile up first: its later sends find less room
                // than they need, and must still arrive whole (not in part, not twice).
                tokio::time::sleep(Duration::from_millis(500)).await;
                for i in 0..N {
                    let m = s.recv(&mut buf).await.unwrap();
                    assert_eq!(&buf[..m.bytes], &message(i)[..], "message {i}");
                }
                match s.peek(&mut buf).await {
                    Ok(m) => assert_eq!(&buf[..m.bytes], b"last"),
                    Err(e) => assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}"),
                }
                let m = s.recv(&mut buf).await.unwrap();
                assert_eq!(&buf[..m.bytes], b"last");
                s.send(b"bye").await.unwrap();
                assert_eq!(s.recv(&mut buf).await.unwrap().len, 0);
            });
            let c = Connector::new().retries(20).connect_seqpacket_async("vsock:lo:20103").await.unwrap();
            assert_eq!(c.peer_addr().unwrap(), SocketAddr::Vsock(VsockAddr::new(1, 20103)));
            for i in 0..N {
                c.send(&message(i)).await.unwrap();
            }
            c.send(b"last").await.unwrap();
            let mut buf = [0u8; 16];
            let m = c.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..m.bytes], b"bye");
            c.shutdown(Shutdown::Write).unwrap();
            server.await.unwrap();

            // A blocking connection taken over.
            let l = SeqpacketListener::bind("vsock:lo:20104").unwrap();
            let blocking = thread::spawn(|| Seqpacket::connect("vsock:lo:20104").unwrap());
            let (s, _) = l.accept().unwrap();
            let s = AsyncSeqpacket::from_std(s).unwrap();
            let b = blocking.join().unwrap();
            b.send(b"to async").unwrap();
            let m = s.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..m.bytes], b"to async");
        });
    });
}

/// A SOCK_SEQPACKET peer for the command-line tests, over vsock or Unix sockets:
///   echo vsock PORT | echo unix PATH          echo each message back, for ever
///   send vsock CID PORT N | send unix PATH N | send hybrid UDS PORT N
///                                             N messages of 1 B .. 64 KiB, each checked as
///                                             it comes back; prints `ok N` or what differed
const MSGS_PY: &str = r#"
import os, socket, sys, time
def msg(i):
    x = (i * 2654435761) & 0xffffffff
    n = 1 + (x ^ (x >> 15)) % 65536
    return bytes((j * 31 + i) & 0xff for j in range(n))
def dial(kind, args):
    for _ in range(200):
        try:
            if kind == "vsock":
                s = socket.socket(socket.AF_VSOCK, socket.SOCK_SEQPACKET); s.connect((int(args[0]), int(args[1])))
            else:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.connect(args[0])
                if kind == "hybrid":
                    s.send(b"CONNECT %s\n" % args[1].encode())
                    ok = s.recv(64)
                    if not ok.startswith(b"OK "):
                        raise OSError("answer %r" % ok)
            return s
        except OSError:
            time.sleep(0.1)
    raise SystemExit("cannot connect")
mode, kind = sys.argv[1], sys.argv[2]
if mode == "echo":
    if kind == "vsock":
        l = socket.socket(socket.AF_VSOCK, socket.SOCK_SEQPACKET); l.bind((socket.VMADDR_CID_ANY, int(sys.argv[3])))
    else:
        l = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); l.bind(sys.argv[3])
    l.listen()
    print("listening", flush=True)
    while True:
        c, _ = l.accept()
        while (m := c.recv(1 << 20)):
            c.send(m)
        c.close()
else:
    n = int(sys.argv[-1])
    s = dial(kind, sys.argv[3:-1])
    bad = []
    for i in range(n):
        s.send(msg(i))
        back = s.recv(1 << 20)
        if back != msg(i):
            bad.append((i, len(msg(i)), len(back)))
    print("ok %d" % n if not bad else "differ %r" % bad[:5], flush=True)
"#;

/// `python3 msgs.py ARGS` for a lab script, the helper written to the shared /tmp first.
///
/// Written once per test process, whole, under its final name: rewriting it in place for each
/// call truncated it while another test's guest was starting Python on it, which then ran an
/// empty program, printed nothing and exited 0 (the VM-host test lost its "ok 100" so).
fn msgs(args: &str) -> String {
    static PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let path = PATH.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("hvsock-msgs-{}.py", std::process::id()));
        let partial = path.with_extension("partial");
        std::fs::write(&partial, MSGS_PY).unwrap();
        std::fs::rename(&partial, &path).unwrap();
        path
    });
    format!("/usr/bin/python3 {} {args}", path.display())
}

#[test]
fn connect_and_listen_carry_messages_as_lines_or_reads() {
    let o = common::lab_sh(&format!(
        r#"
$HVSOCK listen vsock-seqpacket:any:5000 --lines > $T/lines 2>$T/l1 &
ready $T/l1
$HVSOCK list --listening --port 5000 | tail -1 | awk '{{ print "listed:", $1, $2, $3 }}'
$HVSOCK info | grep '^seqpacket'
printf 'one\ntwo\n\nthree' | $HVSOCK connect vsock-seqpacket:lo:5000 --lines
wait
echo "lines: $(tr '\n' '|' < $T/lines)"
# Without --lines a read of input is one message, and a message one write.
python3 - "$T/got" <<'PY' &
import socket, sys
l = socket.socket(socket.AF_VSOCK, socket.SOCK_SEQPACKET); l.bind((socket.VMADDR_CID_ANY, 5001)); l.listen()
c, _ = l.accept()
sizes = []
while (m := c.recv(1 << 20)):
    sizes.append(len(m))
    open(sys.argv[1], "a").close()
print("message sizes", sizes, flush=True)
PY
$HVSOCK lab wait 5001
# The second write waits until the first arrived: a slow connect must not find both in the pipe.
(printf aaa; while [ ! -e $T/got ]; do sleep 0.05; done; printf bbbb) | $HVSOCK connect vsock-seqpacket:lo:5001
wait
python3 - <<'PY'
import socket, subprocess
l = socket.socket(socket.AF_VSOCK, socket.SOCK_SEQPACKET); l.bind((socket.VMADDR_CID_ANY, 5003)); l.listen()
p = subprocess.Popen(["{hvsock}", "connect", "vsock-seqpacket:lo:5003"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
c, _ = l.accept()
for m in [b"a", b"bb" * 1000, b"ccc" * 30000]:
    c.send(m)
c.shutdown(socket.SHUT_WR)
p.stdin.close()
print("stdout got", len(p.stdout.read()), flush=True)
PY
# A command behind --lines answers message for message.
$HVSOCK listen vsock-seqpacket:any:5002 --lines --exec 'tr a-z A-Z' 2>$T/l2 &
ready $T/l2
printf 'abc\ndef\n' | $HVSOCK connect vsock-seqpacket:lo:5002 --lines > $T/upper
echo "upper: $(tr '\n' '|' < $T/upper)"
"#,
        hvsock = common::HVSOCK,
    ));
    common::assert_ok(&o);
    let out = common::stdout(&o);
    assert!(out.contains("lines: one|two|three|"), "{out}");
    assert!(out.contains("listed: LISTEN seqpacket *:5000"), "{out}");
    assert!(out.contains("seqpacket       loopback (CID 1): yes"), "{out}");
    assert!(out.contains("message sizes [3, 4]"), "{out}");
    assert!(out.contains("stdout got 92001"), "{out}");
    assert!(out.contains("upper: ABC|DEF|"), "{out}");
}

#[test]
fn the_relay_keeps_boundaries_and_refuses_to_mix_kinds() {
    let o = common::lab_sh(&format!(
        r#"
{echo} &
$HVSOCK lab wait 5000
$HVSOCK relay vsock-seqpacket:any:6000 vsock-seqpacket:lo:5000 --count 1 2>$T/r &
ready $T/r
{send}
wait $!
tail -1 $T/r
$HVSOCK relay vsock-seqpacket:any:6001 vsock:lo:5000 2>&1 && exit 1 || echo "refused: $?"
"#,
        echo = msgs("echo vsock 5000"),
        send = msgs("send vsock 1 6000 300"),
    ));
    common::assert_ok(&o);
    let out = common::stdout(&o);
    assert!(out.contains("ok 300"), "{out}");
    assert!(out.contains("relay: 1 connections (0 refused, 0 failed)"), "{out}");
    assert!(out.contains("FROM carries messages (SOCK_SEQPACKET) and TO a byte stream"), "{out}");
    assert!(out.contains("refused: 1"), "{out}");
}

/// Messages of 1 B .. 64 KiB guest to guest and guest to host through the switch, each echoed
/// and checked (a message split over several RX buffers must arrive as one), and a socket
/// type the other side does not have refused both ways.
#[test]
fn through_the_switch_guest_to_guest_and_guest_to_host() {
    let mismatch = r#"python3 - <<'PY'
import socket
for ty, port in ((socket.SOCK_STREAM, 7000), (socket.SOCK_SEQPACKET, 7001)):
    s = socket.socket(socket.AF_VSOCK, ty)
    try:
        s.connect((2, port)); print("connected", port)
    except OSError as e:
        print("refused", port, e.errno)
PY"#;
    // The host's two services say they listen in files the guest sees (the shared /tmp).
    let ready = std::env::temp_dir().join(format!("hvsock-seq-ready-{}", std::process::id()));
    std::fs::create_dir_all(&ready).unwrap();
    let r = ready.display();
    let o = common::lab_scenario_with(
        &[
            "--guest-service",
            &msgs("echo vsock 5000"),
            "--host-service",
            &format!("{} > {r}/7000", msgs("echo unix ${HVSOCK_LAB_VM4}_7000")),
            "--host-service",
            &format!("$HVSOCK listen hybrid:$HVSOCK_LAB_VM4:7001 --keep-open 2> {r}/7001"),
        ],
        &[&format!(
            "$HVSOCK lab wait 3:5000; {g2g}
             until grep -q listening {r}/7000 && grep -q 'listening on' {r}/7001; do sleep 0.02; done
             {g2h}; {mismatch}",
            g2g = msgs("send vsock 3 5000 200"),
            g2h = msgs("send vsock 2 7000 100"),
        )],
        &[],
    );
    let _ = std::fs::remove_dir_all(&ready);
    common::assert_ok(&o);
    let out = common::stdout(&o);
    assert_eq!(
        common::lines_of(&out, "guest 4"),
        ["ok 200", "ok 100", "refused 7000 104", "refused 7001 104"],
        "{out}"
    );
}

/// With `--hybrid-seqpacket` the guests' hybrid sockets take SOCK_SEQPACKET connections: the
/// CONNECT line and the OK answer are messages, then each message is one of the guest's.
#[test]
fn host_to_guest_through_a_seqpacket_hybrid_socket() {
    let o = common::lab_scenario_with(
        &[
            "--hybrid-seqpacket",
            "--guest-service",
            &format!(
                "$HVSOCK listen vsock:any:5001 --keep-open &
                 $HVSOCK listen vsock-seqpacket:any:5002 --keep-open --lines --exec 'while read l; do sleep 0.3; echo $l; done' &
                 {}",
                msgs("echo vsock 5000")
            ),
        ],
        &[],
        &[&format!(
            "$HVSOCK lab wait 3:5000; $HVSOCK lab wait 3:5001; $HVSOCK lab wait 3:5002; {h2g}
             # The answers come after our input has ended: a VMM would drop them if our end of
             # input went to the guest at once as a half-close (it is a full close there). The
             # guest's fresh shell may take over the default quiet second to start on a loaded
             # machine (seen in CI): it gets 5 s.
             printf 'x\\ny\\n' | $HVSOCK connect hybrid-seqpacket:$HVSOCK_LAB_VM3:5002 --lines --shutdown-quiet 5 | tr '\\n' '|'; echo
             $HVSOCK connect hybrid-seqpacket:$HVSOCK_LAB_VM3:5001 < /dev/null 2>&1 || echo \"stream listener: $?\"
             $HVSOCK connect hybrid:$HVSOCK_LAB_VM3:5000 < /dev/null 2>&1 || echo \"stream connect: $?\"",
            h2g = msgs("send hybrid $HVSOCK_LAB_VM3 5000 100"),
        )],
    );
    common::assert_ok(&o);
    let out = common::stdout(&o);
    let host = common::lines_of(&out, "host 1");
    assert_eq!(host[..2], ["ok 100", "x|y|"], "{out}");
    assert!(host.iter().any(|l| l.contains("nothing listens on guest port 5001")), "{out}");
    assert!(host.contains(&"stream listener: 1".to_string()), "{out}");
    assert!(
        host.iter()
            .any(|l| l.contains("takes SOCK_SEQPACKET connections") || l.contains("Protocol wrong type")),
        "{out}"
    );
    assert!(host.contains(&"stream connect: 1".to_string()), "{out}");
}

/// The lab's KVM-style host (a VM with CID 2 and real AF_VSOCK) takes SEQPACKET as any guest
/// does: a guest reaches its Python echo through `parent`, and it reaches a guest's by CID.
#[test]
fn the_vm_host_speaks_seqpacket_both_ways() {
    let done = std::env::temp_dir().join(format!("hvsock-vmhost-done-{}", std::process::id()));
    let done = done.display();
    let o = common::lab_scenario_with(
        &[
            "--guest-service",
            &msgs("echo vsock 6000"),
            "--vm-host",
            // It serves until guest 4 is done (a file in the shared /tmp says so).
            &format!(
                "{} & $HVSOCK lab wait 3:6000; {}; until [ -e {done} ]; do sleep 0.1; done",
                msgs("echo vsock 5000"),
                msgs("send vsock 3 6000 50")
            ),
        ],
        &[&format!(
            "$HVSOCK lab wait 2:5000; {}; echo 'guest: $HVSOCK connect' | $HVSOCK connect vsock-seqpacket:parent:5000 --lines; touch {done}",
            msgs("send vsock 2 5000 100"),
        )],
        &[],
    );
    common::assert_ok(&o);
    let out = common::stdout(&o);
    assert_eq!(common::lines_of(&out, "vm-host"), ["listening", "ok 50"], "{out}");
    assert_eq!(common::lines_of(&out, "guest 4"), ["ok 100", "guest: $HVSOCK connect"], "{out}");
    let _ = std::fs::remove_file(done.to_string());
}
