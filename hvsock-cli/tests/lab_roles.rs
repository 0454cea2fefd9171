//! Lab scenarios as tests need them: services, readiness without sleeps, reports that name
//! participants, and a KVM-style host VM (CID 2 with real AF_VSOCK).
#![cfg(target_os = "linux")] // the lab is a Linux guest

mod common;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::{assert_ok, lines_of, stderr, stdout, HVSOCK};

/// `hvsock lab run` with these flags and their commands (`$HVSOCK` is the binary under test).
fn lab(args: &[(&str, &str)], timeout: &str) -> Output {
    let mut cmd = common::hvsock_command();
    cmd.args(["lab", "run", "--timeout", timeout]);
    for (flag, command) in args {
        cmd.arg(flag).arg(command);
    }
    cmd.env("HVSOCK", HVSOCK).stdin(Stdio::null()).output().expect("run hvsock lab run")
}

/// A service that never exits ends the run once its clients are done; `lab wait` replaces
/// sleeps and retries; CIDs follow the command line's order across --guest-service/--guest.
#[test]
fn services_stop_when_clients_finish_and_wait_needs_no_sleep() {
    let start = Instant::now();
    let o = lab(
        &[
            ("--guest", "$HVSOCK lab wait 4:5000 && $HVSOCK client 4 5000 --message first"),
            ("--guest-service", "$HVSOCK server any 5000"),
            // The guest's half-close does not reach a hybrid host (as behind real VMMs): the
            // answer follows one read, as the article's server does, not an end-of-file.
            ("--host-service", "$HVSOCK listen hybrid:$HVSOCK_LAB_VM5:6000 --keep-open --exec 'printf \"Hello: \"; dd bs=65536 count=1 status=none'"),
            ("--guest", "$HVSOCK lab wait 4:5000 && $HVSOCK client 4 5000 --message second && $HVSOCK lab wait 2:6000 && $HVSOCK client parent 6000 --message up"),
            ("--host", "$HVSOCK lab wait 4:5000 && echo World | $HVSOCK connect hybrid:$HVSOCK_LAB_VM4:5000 --no-shutdown"),
        ],
        "90",
    );
    assert_ok(&o);
    assert!(start.elapsed() < Duration::from_secs(60), "took {:?}", start.elapsed());
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(lines_of(&out, "guest 3").contains(&"Hello: first".to_string()), "{out}");
    assert!(lines_of(&out, "guest 5").contains(&"Hello: second".to_string()), "{out}");
    assert!(lines_of(&out, "guest 5").contains(&"Hello: up".to_string()), "{out}");
    assert_eq!(lines_of(&out, "host 2"), ["Hello: World"], "{out}");
    for line in [
        "lab: guest 3 exited 0",
        "lab: guest 4 stopped at the end (service)",
        "lab: host 1 stopped at the end (service)",
        "lab: guest 5 exited 0",
        "lab: host 2 exited 0",
    ] {
        assert!(err.contains(line), "{line}: {err}");
    }
}

/// The status is the first failing participant's, the line says which one and what was
/// still running at the timeout, and the lab's files are kept and named.
#[test]
fn a_timeout_report_names_every_participant() {
    let o = lab(
        &[
            ("--guest", "sleep 600"),
            ("--guest", "echo failing; exit 101"),
            ("--guest-service", "exit 0"),
            ("--host", "sleep 600"),
        ],
        "20",
    );
    assert_eq!(o.status.code(), Some(101), "{}", stderr(&o));
    let err = stderr(&o);
    for line in [
        "lab: guest 3 still running at the timeout, killed",
        "lab: guest 4 exited 101",
        "lab: guest 5 exited 0",
        "lab: host 1 still running at the timeout, killed",
        "hvsock: lab: guest 4 failed first (exited 101); at the 20 s timeout still running: guest 3, host 1",
    ] {
        assert!(err.contains(line), "{line}: {err}");
    }
    let kept = err.rsplit("the lab's files are kept in ").next().unwrap().trim();
    assert!(std::path::Path::new(kept).join("guest3/console.log").is_file(), "{err}");
    std::fs::remove_dir_all(kept).unwrap();

    // A service that fails on its own is a failure; with nothing else failing it sets the status.
    let o = lab(&[("--guest-service", "exit 3"), ("--guest", "sleep 2")], "60");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("hvsock: lab: guest 3 failed first (exited 3)"), "{}", stderr(&o));
}

#[test]
fn wait_says_clearly_why_it_cannot_wait() {
    let o = lab(
        &[
            ("--guest", "echo never listens"),
            ("--guest", "$HVSOCK lab wait 3:5000 2>&1; echo exit=$?; $HVSOCK lab wait 9:5000 2>&1; echo exit=$?; $HVSOCK lab wait --timeout 0.5 5000 2>&1; echo exit=$?"),
        ],
        "60",
    );
    assert_ok(&o);
    assert_eq!(
        lines_of(&stdout(&o), "guest 4"),
        [
            "hvsock: guest 3 ended without listening on port 5000",
            "exit=1",
            "hvsock: 9:5000: this lab has no guest with CID 9",
            "exit=1",
            "hvsock: nothing listened on 5000 within 0.5 s",
            "exit=1",
        ],
        "{}",
        stdout(&o)
    );
    let o = common::hvsock(&["lab", "wait", "3:5000"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not inside a lab scenario"), "{}", stderr(&o));
    let o = common::hvsock(&["lab", "wait", "3:x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("port `x` is not a number"), "{}", stderr(&o));
}

/// The VM host is what a KVM host is to its guests: its own CID reads 2, it binds 2 and any,
/// guests reach it as `parent`, and it reaches guests by their CIDs; its loopback works.
/// (The servers' stderr is kept, to say why if this fails: it failed once with its cause unseen.)
#[test]
fn the_vm_host_is_a_kvm_style_host() {
    let o = lab(
        &[
            (
                "--vm-host",
                "$HVSOCK info | grep 'local CID'
                 $HVSOCK server 2 5002 --count 1 &
                 $HVSOCK server any 5003 --count 2 &
                 $HVSOCK lab wait 5002 5003 3:7000
                 $HVSOCK client lo 5003 --message self | grep Hello
                 $HVSOCK client 3 7000 --message 'from the host' | grep Hello
                 wait",
            ),
            (
                "--guest",
                "$HVSOCK server any 7000 --count 1 &
                 $HVSOCK lab wait 2:5002 2:5003
                 $HVSOCK client parent 5002 --message 'to 2' | grep Hello
                 $HVSOCK client 2 5003 --message 'to any' | grep Hello
                 wait",
            ),
        ],
        "90",
    );
    assert_ok(&o);
    let out = stdout(&o);
    let host = lines_of(&out, "vm-host");
    for line in ["local CID       2 (a host: serves guests)", "Hello: self", "Hello: from the host"] {
        assert!(host.contains(&line.to_string()), "{line}: {out}");
    }
    let guest = lines_of(&out, "guest 3");
    for line in ["Hello: to 2", "Hello: to any"] {
        assert!(guest.contains(&line.to_string()), "{line}: {out}");
    }
}

/// A program written for a KVM host runs unchanged on the VM host: it reads its CID through
/// /dev/vsock, binds that CID, and connects to a guest by CID; the guest sees CID 2 as peer.
#[test]
fn a_program_for_a_kvm_host_runs_unchanged() {
    let host_program = r#"
import fcntl, socket, struct
with open("/dev/vsock", "rb") as f:
    cid = struct.unpack("I", fcntl.ioctl(f, socket.IOCTL_VM_SOCKETS_GET_LOCAL_CID, b"    "))[0]
assert cid == socket.VMADDR_CID_HOST, cid
srv = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
srv.bind((cid, 9000)); srv.listen()
c = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
c.connect((3, 9001)); c.sendall(b"ping"); c.shutdown(socket.SHUT_WR)
print("guest answered", c.recv(100).decode())
conn, peer = srv.accept()
print("guest called back from CID", peer[0], conn.recv(100).decode())
"#;
    let guest_program = r#"
import socket
s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
s.bind((socket.VMADDR_CID_ANY, 9001)); s.listen()
conn, peer = s.accept()
assert conn.recv(100) == b"ping"
conn.sendall(b"pong from CID 3 to CID %d" % peer[0]); conn.close()
b = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
b.connect((socket.VMADDR_CID_HOST, 9000)); b.sendall(b"hello"); b.close()
"#;
    let dir = std::env::temp_dir().join(format!("hvsock-kvm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("host.py"), host_program).unwrap();
    std::fs::write(dir.join("guest.py"), guest_program).unwrap();
    let o = lab(
        &[
            ("--vm-host", &format!("$HVSOCK lab wait 3:9001 && python3 {}/host.py", dir.display())),
            ("--guest", &format!("python3 {}/guest.py", dir.display())),
        ],
        "90",
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert_ok(&o);
    assert_eq!(
        lines_of(&stdout(&o), "vm-host"),
        ["guest answered pong from CID 3 to CID 2", "guest called back from CID 3 hello"],
        "{}",
        stdout(&o)
    );
}

/// With a VM host in the lab, this machine still reaches guests through their hybrid sockets.
#[test]
fn hybrid_host_connections_still_work_beside_a_vm_host() {
    let o = lab(
        &[
            ("--vm-host-service", "$HVSOCK server any 5000"),
            ("--guest-service", "$HVSOCK server any 5001"),
            ("--host", "$HVSOCK lab wait 3:5001 && echo World | $HVSOCK connect hybrid:$HVSOCK_LAB_VM3:5001 --no-shutdown"),
            ("--guest", "$HVSOCK lab wait 2:5000 && $HVSOCK client parent 5000 --message guest4"),
        ],
        "90",
    );
    assert_ok(&o);
    let out = stdout(&o);
    assert_eq!(lines_of(&out, "host 1"), ["Hello: World"], "{out}");
    assert!(lines_of(&out, "guest 4").contains(&"Hello: guest4".to_string()), "{out}");
}
