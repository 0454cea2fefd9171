//! What a relay takes over real vsock, in lab guests: a vsock server whose accept queue is
//! full is waited out, not passed on as resets, and `--allow-from` lets in only the guests it
//! names (their CIDs are the hypervisor's — here, the lab's — not the guest's to choose).
#![cfg(target_os = "linux")] // the lab is a Linux guest

mod common;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::traffic::checked_clients;
use common::{assert_ok, in_lab, lab_scenario, lines_of, stdout};
use hvsock::tokio::AsyncListener;
use tokio::io::AsyncWriteExt;

/// A vsock server with a queue of 5 that accepts nothing until told (socat's fork listener
/// asks for 5); 100 clients at once through the relay, 1 B to 1 MiB each, hash-checked, three
/// rounds. The relay's connects find the queue full (vsock resets them at once: there is no
/// SYN to retransmit) and are tried again; once the server accepts, every client is served.
#[test]
fn a_full_vsock_queue_behind_the_relay_is_waited_out_for_every_client() {
    in_lab("a_full_vsock_queue_behind_the_relay_is_waited_out_for_every_client", || {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let listener = AsyncListener::bind("vsock:any:7101").await.unwrap();
            socket2::SockRef::from(&listener).listen(5).unwrap();
            let go = Arc::new(tokio::sync::Notify::new());
            let told = go.clone();
            tokio::spawn(async move {
                told.notified().await;
                while let Ok((s, _)) = listener.accept().await {
                    tokio::spawn(async move {
                        let (mut r, mut w) = tokio::io::split(s);
                        if tokio::io::copy(&mut r, &mut w).await.is_ok() {
                            let _ = w.shutdown().await;
                        }
                    });
                }
            });
            // Patience far past what the test needs: the server is told to accept as soon as
            // the first retry shows, whatever the load.
            let mut relay = Command::new(common::HVSOCK)
                .args(["relay", "tcp:127.0.0.1:7100", "vsock:1:7101", "--count", "300"])
                .args(["--full-queue-wait", "60", "-v"])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let (lines, seen) = std::sync::mpsc::channel::<String>();
            let err = BufReader::new(relay.stderr.take().unwrap());
            let log = std::thread::spawn(move || {
                let mut all = String::new();
                for line in err.lines().map_while(Result::ok) {
                    let _ = lines.send(line.clone());
                    all += &line;
                    all += "\n";
                }
                all
            });
            while !seen.recv().expect("the relay ended before listening").contains("listening on") {}
            let connect = || tokio::net::TcpStream::connect("127.0.0.1:7100");
            let first = tokio::spawn(checked_clients(100, connect));
            let retried = tokio::task::spawn_blocking(move || loop {
                match seen.recv() {
                    Ok(line) if line.contains("trying again in") => return line,
                    Ok(_) => {}
                    Err(_) => panic!("the relay ended without retrying"),
                }
            })
            .await
            .unwrap();
            assert!(retried.contains("vsock:1:7101 refused it"), "{retried}");
            go.notify_one();
            let mut total = first.await.unwrap();
            for _ in 0..2 {
                total += checked_clients(100, connect).await;
            }
            let status = tokio::task::spawn_blocking(move || relay.wait()).await.unwrap().unwrap();
            let log = log.join().unwrap();
            assert!(status.success(), "{log}");
            let summary = log.lines().find(|l| l.starts_with("relay: ")).unwrap_or_else(|| panic!("{log}"));
            assert!(summary.starts_with("relay: 300 connections (0 refused, 0 failed)"), "{summary}");
            assert!(summary.contains("waited for TO's full listen queue"), "{summary}");
            println!("{total} bytes each way; {summary}");
        });
    });
}

/// `--allow-from 4` on a relay in guest 3: guest 4 gets through, guest 5 is closed before a
/// byte of it is read (the upstream never sees it), and the refusal names its CID.
#[test]
fn allow_from_lets_in_only_the_guests_it_names() {
    let o = lab_scenario(
        &[
            // Guest 3: the relay in front of a command that notes each connection it gets; it
            // stops once both guests have been seen (a refusal and a relayed connection).
            "d=$(mktemp -d)
             $HVSOCK listen tcp:127.0.0.1:7000 --keep-open --exec \"echo seen >> $d/up; echo hello\" 2> $d/listen &
             until grep -q 'listening on' $d/listen; do sleep 0.02; done
             $HVSOCK relay vsock:any:6000 tcp:127.0.0.1:7000 --allow-from 4 --count 2 -v 2> $d/relay
             grep -o 'from vsock:5:[0-9]*: refused: not on --allow-from' $d/relay | sed 's/vsock:5:[0-9]*/vsock:5:PORT/'
             echo upstream saw $(grep -c seen $d/up)
             grep '^relay:' $d/relay | cut -d, -f1-2",
            "$HVSOCK lab wait 3:6000; echo hi | $HVSOCK connect vsock:3:6000",
            "$HVSOCK lab wait 3:6000; echo hi | $HVSOCK connect vsock:3:6000 2>/dev/null || true; echo guest 5 got nothing",
        ],
        &[],
    );
    assert_ok(&o);
    let out = stdout(&o);
    assert_eq!(
        lines_of(&out, "guest 3"),
        [
            "from vsock:5:PORT: refused: not on --allow-from",
            "upstream saw 1",
            "relay: 2 connections (1 refused, 0 failed)"
        ],
        "{out}"
    );
    assert_eq!(lines_of(&out, "guest 4"), ["hello"], "{out}");
    assert_eq!(lines_of(&out, "guest 5"), ["guest 5 got nothing"], "{out}");
}

/// A vsock listener's queue, read back by what it takes (vsock_diag reports no queue length):
/// `listen --keep-open` serves one connection at a time, so while the first is served the
/// others wait in the queue, and vsock resets a connect past it at once. `--backlog 3` takes
/// four (Linux counts a queue as full past its length) and resets the fifth; the default
/// (the system's maximum) takes 200 and more.
#[test]
fn a_vsock_listeners_queue_is_as_long_as_asked() {
    in_lab("a_vsock_listeners_queue_is_as_long_as_asked", || {
        use std::io::{Read, Write};
        for (port, backlog, want) in [(7200, Some("3"), 4), (7201, None, 200)] {
            let mut cmd = Command::new(common::HVSOCK);
            cmd.args(["listen", &format!("vsock:any:{port}"), "--keep-open"])
                .args(backlog.map(|b| ["--backlog", b]).iter().flatten());
            let mut listen =
                cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
            let mut err = BufReader::new(listen.stderr.take().unwrap());
            let mut line = String::new();
            err.read_line(&mut line).unwrap();
            assert!(line.contains("listening on"), "{line}");
            // The first client, seen on listen's stdout: it is accepted and being served.
            let mut first = hvsock::Stream::connect(format!("vsock:1:{port}")).unwrap();
            first.write_all(b"x").unwrap();
            let mut b = [0u8; 1];
            listen.stdout.as_mut().unwrap().read_exact(&mut b).unwrap();
            let mut queued = Vec::new();
            let refused = loop {
                match hvsock::Stream::connect(format!("vsock:1:{port}")) {
                    Ok(s) if queued.len() < 1000 => queued.push(s),
                    Ok(_) => break None,
                    Err(e) => break Some(e),
                }
            };
            match backlog {
                Some(_) => {
                    assert_eq!(queued.len(), want, "--backlog 3: {refused:?}");
                    let e = refused.expect("a connect past the queue");
                    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
                }
                None => assert!(queued.len() >= want, "default: only {} queued: {refused:?}", queued.len()),
            }
            let _ = listen.kill();
            let _ = listen.wait();
        }
    });
}
