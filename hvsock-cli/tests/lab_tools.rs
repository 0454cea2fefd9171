//! `connect`, `listen` and `list` for real, in the lab guest.
#![cfg(target_os = "linux")] // the lab is a Linux guest

mod common;
use common::{assert_ok, lab_sh, stdout};

#[test]
fn ten_mib_through_listen_and_connect_arrive_intact() {
    let o = lab_sh(
        r#"
        head -c 10485760 /dev/urandom >$T/in
        $HVSOCK listen vsock:any:5000 >$T/out 2>$T/l.err &
        ready $T/l.err
        $HVSOCK connect vsock:lo:5000 <$T/in; echo "connect=$?"
        wait; echo "listen=$?"
        [ "$(sha256sum <$T/in)" = "$(sha256sum <$T/out)" ] && echo same
        # and the other way: listen sends its stdin, connect receives
        $HVSOCK listen vsock:any:5001 <$T/in >/dev/null 2>$T/l2.err &
        ready $T/l2.err
        $HVSOCK connect vsock:lo:5001 </dev/null >$T/out2
        wait
        [ "$(sha256sum <$T/in)" = "$(sha256sum <$T/out2)" ] && echo same
        "#,
    );
    assert_ok(&o);
    assert_eq!(stdout(&o), "connect=0\nlisten=0\nsame\nsame\n");
}

#[test]
fn half_close_both_ways_with_exec_peers() {
    let o = lab_sh(
        r#"
        # an --exec peer that reads to end-of-file, then answers: needs our half-close
        $HVSOCK listen vsock:any:5010 --exec 'n=$(wc -c); echo "got $n bytes"' 2>$T/a.err &
        ready $T/a.err
        printf 'twelve bytes' | $HVSOCK connect vsock:lo:5010
        wait
        # the other way: the listening side's command speaks first and ends; the connect side
        # still sends everything after that half-close, and the command's reader gets it all
        $HVSOCK listen vsock:any:5011 --exec 'echo hello first; wc -c >&2' 2>$T/b.err &
        ready $T/b.err
        head -c 100000 /dev/zero | $HVSOCK connect vsock:lo:5011
        wait
        grep -x 100000 $T/b.err
        "#,
    );
    assert_ok(&o);
    assert_eq!(stdout(&o), "got 12 bytes\nhello first\n100000\n");
}

/// A peer that answers and closes at once (both ways: a vsock close is SHUTDOWN RCV|SEND) ends
/// the session cleanly, as with ncat and socat, while our input is still open: `connect` and
/// `listen` still send what their stdin holds (its end a moment behind: CI saw `echo | connect`
/// fail so), and end once it is quiet; only input the peer refused is a failure. A command
/// whose peer closed so may finish its work, while it runs on for a moment. What a peer that
/// refuses our data had sent still arrives whole: a command whose greeting is refused gets all
/// its input (it was killed), and input held up by a peer that closed is refused, not quiet.
#[test]
fn a_peer_that_answers_and_closes_ends_the_session_cleanly() {
    let o = lab_sh(
        r#"
        head -c 100000 /dev/urandom > $T/small; head -c 4194304 /dev/urandom > $T/big
        $HVSOCK listen vsock:any:5030 --keep-open --exec 'echo hi' 2>$T/k.err &
        ready $T/k.err
        # input that ends late on purpose (0.3 s after the peer's close): time is the case here
        rc=0; sleep 0.3 | $HVSOCK connect vsock:lo:5030 2>$T/e || rc=$?; echo "late end rc=$rc"; cat $T/e
        mkfifo $T/open; exec 3<>$T/open # a writer that never writes, and never ends
        rc=0; timeout 10 $HVSOCK connect vsock:lo:5030 <$T/open 2>$T/e || rc=$?; echo "open input rc=$rc"; cat $T/e
        exec 3>&-
        rc=0; timeout 10 $HVSOCK connect vsock:lo:5030 </dev/zero >/dev/null 2>$T/e || rc=$?
        echo "refused input rc=$rc"; grep -o 'went away (closed both ways)' $T/e
        # listen's stdin is the open input, ending only after the peer has sent and closed
        # without half-closing (0.2 s after: a late end, on purpose)
        (until [ -e $T/sent ]; do sleep 0.05; done; sleep 0.2) | $HVSOCK listen vsock:any:5031 >$T/got 2>$T/l.err & l=$!
        ready $T/l.err
        echo hello | $HVSOCK connect vsock:lo:5031 --send-only; touch $T/sent
        rc=0; wait $l || rc=$?; echo "listen rc=$rc: $(cat $T/got)"
        # a command still at work when its peer closed both ways finishes it (its 0.1 s of
        # work is the case tested)
        $HVSOCK listen vsock:any:5032 --exec "cat > $T/up; sleep 0.1; mv $T/up $T/saved" 2>$T/c.err & l=$!
        ready $T/c.err
        echo upload | $HVSOCK connect vsock:lo:5032 --send-only
        rc=0; wait $l || rc=$?; echo "exec rc=$rc: $(cat $T/saved)"
        # the command greets only after its peer has sent all and closed (late on purpose)
        $HVSOCK listen vsock:any:5033 --exec "(sleep 0.5; echo greetings) & sleep 1; cat > $T/up" 2>$T/g.err & l=$!
        ready $T/g.err
        $HVSOCK connect vsock:lo:5033 --send-only < $T/small
        rc=0; wait $l || rc=$?; echo "greeting refused rc=$rc"; grep -o 'went away (closed both ways)' $T/g.err
        cmp $T/small $T/up && echo "upload whole"
        # our input is held up by a peer that reads none of it, sends 4 MiB and closes
        $HVSOCK listen vsock:any:5034 --exec "cat $T/big" 2>$T/d.err &
        ready $T/d.err
        rc=0; timeout 20 $HVSOCK connect vsock:lo:5034 </dev/zero >$T/down 2>$T/e || rc=$?
        echo "held up rc=$rc"; grep -o 'went away (closed both ways)' $T/e; cmp $T/big $T/down && echo "download whole"
        "#,
    );
    assert_ok(&o);
    assert_eq!(
        stdout(&o),
        "hi\nlate end rc=0\nhi\nopen input rc=0\nrefused input rc=1\nwent away (closed both ways)\n\
         listen rc=0: hello\nexec rc=0: upload\n\
         greeting refused rc=1\nwent away (closed both ways)\nupload whole\n\
         held up rc=1\nwent away (closed both ways)\ndownload whole\n"
    );
}

#[test]
fn keep_open_exec_serves_many_and_errors_are_one_line() {
    let o = lab_sh(
        r#"
        $HVSOCK listen vsock:any:5020 --keep-open --exec 'tr a-z A-Z' 2>$T/k.err &
        srv=$!
        ready $T/k.err
        for w in one two three; do printf $w | $HVSOCK connect vsock:lo:5020; echo; done
        kill $srv
        rc=0; $HVSOCK connect vsock:lo:5999 </dev/null 2>$T/e || rc=$?; echo "rc=$rc"; cat $T/e
        rc=0; $HVSOCK listen - 2>$T/e || rc=$?; echo "rc=$rc"; cat $T/e
        "#,
    );
    assert_ok(&o);
    assert_eq!(
        stdout(&o),
        "ONE\nTWO\nTHREE\nrc=1\nhvsock: cannot connect to vsock:1:5999: nothing is listening there (os error 104)\n\
         rc=1\nhvsock: `-` cannot listen: give a vsock:, hv:, hybrid:, tcp: or unix: endpoint\n"
    );
}

#[test]
fn list_shows_listener_and_connection_with_owners() {
    let o = lab_sh(
        r#"
        $HVSOCK listen vsock:any:5030 >/dev/null 2>$T/l.err &
        lpid=$!
        ready $T/l.err
        quiet | $HVSOCK connect vsock:lo:5030 &
        cpid=$!   # the last command of the pipeline
        i=0; until $HVSOCK list --port 5030 | grep -q ESTAB; do i=$((i+1)); [ $i -lt 200 ] || exit 9; sleep 0.02; done
        echo "pids $lpid $cpid"
        $HVSOCK list --port 5030 --json
        $HVSOCK list --listening
        "#,
    );
    assert_ok(&o);
    let out = stdout(&o);
    let mut lines = out.lines();
    let pids: Vec<u64> = lines.next().unwrap().split(' ').skip(1).map(|p| p.parse().unwrap()).collect();
    let json: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let rows = json.as_array().unwrap();
    let find = |state: &str, local_port: u64| {
        rows.iter()
            .find(|r| r["state"] == state && r["local"]["port"] == local_port)
            .unwrap_or_else(|| panic!("no {state} on {local_port}: {json}"))
    };
    let pid_of = |r: &serde_json::Value| r["processes"][0]["pid"].as_u64().unwrap();
    let listening = find("LISTEN", 5030);
    assert_eq!(listening["local"]["cid"], u32::MAX);
    assert_eq!(pid_of(listening), pids[0]);
    let accepted = find("ESTAB", 5030);
    assert_eq!(pid_of(accepted), pids[0]);
    let client_port = accepted["peer"]["port"].as_u64().unwrap();
    let client = find("ESTAB", client_port);
    assert_eq!(client["peer"]["port"], 5030);
    assert_eq!(pid_of(client), pids[1]);
    assert_eq!(rows.len(), 3, "{json}");
    let table: Vec<&str> = lines.collect();
    assert!(table[0].starts_with("STATE"), "{table:?}");
    assert!(table
        .iter()
        .any(|l| l.starts_with("LISTEN") && l.contains("*:5030") && l.contains("hvsock(pid=")));
    assert!(!table.iter().any(|l| l.starts_with("ESTAB")), "--listening shows only listeners");
}

#[test]
fn relay_closes_idle_connections_after_its_timeout() {
    let o = lab_sh(
        r#"
        $HVSOCK listen vsock:any:5041 --exec cat 2>/dev/null &
        $HVSOCK relay tcp:127.0.0.1:5040 vsock:1:5041 --timeout 0.5 --count 1 2>$T/r.err &
        relay=$!
        ready $T/r.err
        start=$(date +%s%N)
        # stdin stays open and silent; the guest's power-off ends the sleep
        ( sleep 60 | { rc=0; $HVSOCK connect tcp:127.0.0.1:5040 2>$T/c.err || rc=$?; echo "$rc $(date +%s%N)" >$T/done; } ) &
        i=0; until [ -s $T/done ]; do i=$((i+1)); [ $i -lt 400 ] || exit 9; sleep 0.05; done
        read rc end <$T/done
        took=$(( (end - start) / 1000000 ))
        wait $relay
        [ $took -lt 5000 ] && echo "closed in time"
        echo "connect rc=$rc"; grep -c 'idle for the --timeout' $T/r.err; grep '^relay:' $T/r.err
        "#,
    );
    assert_ok(&o);
    assert_eq!(
        stdout(&o),
        "closed in time\nconnect rc=1\n1\nrelay: 1 connections (0 refused, 1 failed), 0 bytes to vsock:1:5041, 0 bytes back\n"
    );
}
