//! The exchange of the Hyper-V socket wildcards article's C# sample, for real, inside the lab guest; and interop with programs we
//! did not write (socat, Python's AF_VSOCK).
#![cfg(target_os = "linux")] // the lab is a Linux guest

mod common;
use common::{assert_ok, lab_sh, stdout};

#[test]
fn the_articles_exchange_any_and_loopback() {
    let o = lab_sh(
        r#"
        $HVSOCK server any --count 1 >$T/server.out 2>$T/server.err &
        ready $T/server.err
        $HVSOCK client lo
        wait
        echo ---; cat $T/server.out
        "#,
    );
    assert_ok(&o);
    let out = stdout(&o);
    let (client, server) = out.split_once("---\n").unwrap();
    assert_eq!(client, "Connected to 19000, 1\nHello: World!\n");
    let mut lines = server.lines();
    let connected = lines.next().unwrap();
    assert!(connected.starts_with("connected: vsock:1:"), "{server}");
    assert_eq!(lines.next(), Some("World!"));
}

#[test]
fn the_articles_spelling_and_no_arguments() {
    let o = lab_sh(
        r#"
        $HVSOCK /server any --count 1 2>$T/a.err >/dev/null &
        ready $T/a.err
        $HVSOCK /client lo 19000
        wait
        $HVSOCK 2>$T/b.err >/dev/null &   # no arguments: a loopback server on 19000
        ready $T/b.err
        $HVSOCK /client loopback 00004A38-FACB-11E6-BD58-64006A7986D3 --message again
        "#,
    );
    assert_ok(&o);
    assert_eq!(stdout(&o), "Connected to 19000, 1\nHello: World!\nConnected to 19000, 1\nHello: again\n");
}

#[test]
fn refused_connect_is_one_clear_line() {
    let o = lab_sh(
        r#"
        rc=0; $HVSOCK client lo 19999 2>$T/err || rc=$?
        echo "rc=$rc"; cat $T/err
        "#,
    );
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.starts_with("rc=1\n"), "{out}");
    assert!(out.contains("hvsock: cannot connect to vsock:1:19999: nothing is listening there"), "{out}");
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[test]
fn fifty_clients_and_a_silent_one_against_one_server() {
    let o = lab_sh(
        r#"
        $HVSOCK server any 19010 --count 52 >$T/server.out 2>$T/server.err &
        ready $T/server.err
        # one that connects and closes without a word, one that connects and stays silent
        python3 -c 'import socket; s=socket.socket(socket.AF_VSOCK); s.connect((1,19010)); s.close()'
        python3 -c 'import socket,sys,time; s=socket.socket(socket.AF_VSOCK); s.connect((1,19010)); open(sys.argv[1], "w").close(); time.sleep(60)' $T/silent &
        silent=$!
        # connected before the others start (a slow start under load once came after them)
        until [ -e $T/silent ]; do sleep 0.02; done
        for i in $(seq 1 50); do
            got=$($HVSOCK client lo 19010 --message "client $i" | tail -n 1)
            [ "$got" = "Hello: client $i" ] || { echo "client $i got: $got"; exit 1; }
        done
        kill $silent   # only now: the server answered all 50 while it sat there
        wait
        # Every connection is told of: a "connected" line, or (the silent one, when the fifty took
        # longer than the server's 10 s wait for a first byte) its one line on stderr.
        told=$(grep -c '^connected: vsock:1:' $T/server.out || true)
        quiet=$(grep -c 'sent nothing in time; closed' $T/server.err || true)
        echo ok; echo $((told + quiet)); grep -c '^client [0-9]*$' $T/server.out
        "#,
    );
    assert_ok(&o);
    assert_eq!(stdout(&o), "ok\n52\n50\n");
}

#[test]
fn interop_with_socat_both_ways() {
    let o = lab_sh(
        r#"
        # socat's client against our server
        $HVSOCK server any 19020 --count 1 >/dev/null 2>$T/s.err &
        ready $T/s.err
        printf 'from socat' | socat - VSOCK-CONNECT:1:19020
        echo; wait
        # our client against socat's server
        printf '#!/bin/sh\nprintf "Hello: "; exec cat\n' >$T/answer; chmod +x $T/answer
        socat VSOCK-LISTEN:19021 EXEC:$T/answer &
        $HVSOCK client lo 19021 --message 'from hvsock' --retries 100 --retry-wait 0.05
        wait
        "#,
    );
    assert_ok(&o);
    assert_eq!(stdout(&o), "Hello: from socat\nConnected to 19021, 1\nHello: from hvsock\n");
}

#[test]
fn interop_with_python_both_ways() {
    let o = lab_sh(
        r#"
        cat >$T/py_server.py <<'PY'
import socket, sys
s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
s.bind((socket.VMADDR_CID_ANY, 19030)); s.listen()
print("listening on", s.getsockname(), file=sys.stderr, flush=True)
c, peer = s.accept()
data = b""
while chunk := c.recv(4096): data += chunk
c.sendall(b"Hello: " + data); c.close()
PY
        python3 $T/py_server.py 2>$T/py.err &
        ready $T/py.err
        $HVSOCK client lo 19030 --message 'to python'
        wait
        $HVSOCK server lo 19031 --count 1 >/dev/null 2>$T/s.err &
        ready $T/s.err
        python3 -c '
import socket
s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
s.connect((1, 19031))  # VMADDR_CID_LOCAL
s.sendall(b"from python"); s.shutdown(socket.SHUT_WR)
print(s.recv(4096).decode())'
        wait
        "#,
    );
    assert_ok(&o);
    assert_eq!(stdout(&o), "Connected to 19030, 1\nHello: to python\nHello: from python\n");
}

#[test]
fn client_retries_until_the_server_comes_up_and_info_in_the_guest() {
    let o = lab_sh(
        r#"
        # Nothing listens for the first second (time is the case: the client must bridge it);
        # its retries last 20 s, far longer.
        $HVSOCK client lo 19040 --retries 400 --retry-wait 0.05 --message late >$T/c.out 2>&1 &
        sleep 1
        $HVSOCK server lo 19040 --count 1 >/dev/null 2>&1
        wait
        cat $T/c.out
        rc=0; $HVSOCK client lo 19041 --retries 3 --retry-wait 0.05 2>$T/e || rc=$?
        echo "rc=$rc"; cat $T/e
        $HVSOCK info --json
        "#,
    );
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.starts_with("Connected to 19040, 1\nHello: late\nrc=1\nhvsock: cannot connect to vsock:1:19041: nothing is listening there"), "{out}");
    let json = out.lines().last().unwrap();
    assert!(json.contains("\"local_cid\":1,"), "{json}");
    assert!(json.contains("\"transports\":[\"vsock\",\"vsock_loopback\",\"vsock_diag\"]"), "{json}");
    assert!(json.contains("\"hypervisor\":\"User-Mode Linux (an hvsock lab guest)\""), "{json}");
}
