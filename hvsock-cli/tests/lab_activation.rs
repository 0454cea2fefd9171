//! systemd socket activation for real: Debian's `systemd-socket-activate` binds the socket and
//! hands it to `listen`, `relay` and `server`, in the lab guest.
#![cfg(target_os = "linux")] // the lab is a Linux guest

mod common;
use common::{assert_ok, hvsock, lab_sh, stderr, stdout};

#[test]
fn listen_relay_and_server_take_a_handed_over_socket() {
    let o = lab_sh(
        r#"
act() { systemd-socket-activate "$@" 2>>$T/act & }
# The command reads none of its input: send it none (a byte the peer closed on is refused).
act -l vsock:1:5000 --fdname=agent $HVSOCK listen systemd:agent --keep-open --exec 'echo activated'
$HVSOCK lab wait 5000
$HVSOCK connect vsock:lo:5000 --retries 20 </dev/null
$HVSOCK connect vsock:lo:5000 --retries 20 </dev/null
act -l vsock:1:5001 $HVSOCK relay systemd: vsock:lo:5000 --count 1
$HVSOCK lab wait 5001
$HVSOCK connect vsock:lo:5001 --retries 20 </dev/null | sed 's/^/relayed: /'
act -l 127.0.0.1:5003 $HVSOCK relay systemd: vsock:lo:5000 --count 1
python3 -c 'import socket, time
for _ in range(100):
    try:
        s = socket.create_connection(("127.0.0.1", 5003)); break
    except OSError: time.sleep(0.1)
s.shutdown(socket.SHUT_WR); print("from tcp:", s.makefile().read().strip())'
act -l vsock:1:19000 $HVSOCK server --systemd --count 1
$HVSOCK lab wait 19000
$HVSOCK client lo --retries 20 | tail -1
# systemd 252's activator cannot bind vsock SOCK_SEQPACKET: a minimal one, as the protocol says.
cat > $T/activate.py <<'PY'
import os, socket, sys
s = socket.socket(socket.AF_VSOCK, socket.SOCK_SEQPACKET); s.bind((1, int(sys.argv[1]))); s.listen()
pid = os.fork()
if pid == 0:
    if s.fileno() != 3:
        os.dup2(s.fileno(), 3)
    os.set_inheritable(3, True)
    os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1", LISTEN_FDNAMES="msgs")
    os.execvp(sys.argv[2], sys.argv[2:])
os.waitpid(pid, 0)
PY
python3 $T/activate.py 5002 $HVSOCK listen systemd:msgs --lines > $T/seq &
$HVSOCK lab wait 5002
echo 'a message' | $HVSOCK connect vsock-seqpacket:lo:5002 --lines; wait $!
echo "seqpacket: $(cat $T/seq)"
# A socket of the wrong kind is refused with what it is.
act -l 127.0.0.1:5004 $HVSOCK server --systemd --count 1
python3 -c 'import socket, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", 5004)); break
    except OSError: time.sleep(0.1)'
# Its one line comes when it comes: no time limit of ours (the lab run's own ends a hang).
until grep -q 'hvsock:' $T/act; do sleep 0.05; done
grep 'hvsock:' $T/act
"#,
    );
    assert_ok(&o);
    let out = stdout(&o);
    assert_eq!(out.matches("activated").count(), 4, "{out}");
    assert!(out.contains("relayed: activated"), "{out}");
    assert!(out.contains("from tcp: activated"), "{out}");
    assert!(out.contains("Hello: World!"), "{out}");
    assert!(out.contains("seqpacket: a message"), "{out}");
    assert!(out.contains("hvsock: --systemd: the socket handed over is a listening stream AF_INET socket, not a listening vsock stream socket"), "{out}");
}

#[test]
fn without_a_service_manager_it_is_one_line() {
    for args in
        [&["listen", "systemd:"][..], &["relay", "systemd:x", "tcp:127.0.0.1:1"], &["server", "--systemd"]]
    {
        let o = hvsock(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("systemd") && !err.contains("listening on"), "{args:?}: {err}");
    }
    // A manager that says there is a socket where there is none: one line, not an abort.
    let o = common::hvsock_command()
        .args(["listen", "systemd:"])
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", "0")
        .output()
        .unwrap();
    assert!(stderr(&o).contains("no socket was handed over"), "{}", stderr(&o)); // not ours: LISTEN_PID
    let o = std::process::Command::new("/bin/sh")
        .args(["-c", &format!("LISTEN_PID=$$ LISTEN_FDS=1 exec {} listen systemd: 3<&-", common::HVSOCK)])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("descriptor 3 is not open"), "{}", stderr(&o));
    let o = hvsock(&["connect", "systemd:"]);
    assert!(stderr(&o).contains("not for connecting"), "{}", stderr(&o));
}
