//! `hvsock bench` in the lab: every test over vsock in one guest, across the switch both ways,
//! and a corrupted byte caught wherever it happens.
#![cfg(target_os = "linux")] // the lab is a Linux guest

mod common;
use common::{assert_ok, lab_scenario, lines_of, stdout};
use serde_json::Value;

fn json_lines(out: &str) -> Vec<Value> {
    out.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Checks a result's figures are the run's own and sane.
fn check(r: &Value) {
    match r["test"].as_str().unwrap() {
        "stream" => {
            let ways = if r["direction"] == "both" { 2 } else { 1 };
            assert_eq!(
                r["bytes"].as_u64().unwrap(),
                (8 << 20) * r["streams"].as_u64().unwrap() * ways,
                "{r}"
            );
            let rate = r["mib_per_s"].as_f64().unwrap();
            assert!(rate > 1.0 && rate < 1e6, "{r}");
        }
        "rr" | "conn" => {
            let l = &r["latency_us"];
            let p = |k: &str| l[k].as_f64().unwrap();
            assert!(
                0.0 < p("p50") && p("p50") <= p("p99") && p("p99") <= p("p99_9") && p("p99_9") <= p("max"),
                "{r}"
            );
            assert!(r["per_s"].as_f64().unwrap() > 1.0, "{r}");
        }
        other => panic!("unknown test {other}"),
    }
}

#[test]
fn every_test_over_vsock_and_tcp_with_sane_figures() {
    let o = common::lab_sh(
        r#"
        $HVSOCK bench --serve vsock:any:5201 2>$T/server &
        ready $T/server
        for d in up down both; do $HVSOCK bench vsock:lo:5201 --direction $d --bytes 8M --json; done
        $HVSOCK bench vsock:lo:5201 --direction both --streams 3 --bytes 8M --size 64K --json
        $HVSOCK bench vsock:lo:5201 --test rr --messages 2000 --json
        $HVSOCK bench vsock:lo:5201 --test rr --messages 200 --size 64K --json
        $HVSOCK bench vsock:lo:5201 --test conn --conns 200 --concurrency 4 --json
        $HVSOCK bench --serve tcp:127.0.0.1:5202 2>$T/tcp &
        ready $T/tcp
        $HVSOCK bench tcp:127.0.0.1:5202 --bytes 8M --json
        $HVSOCK bench vsock:lo:5201 --bytes 8M | head -1
        "#,
    );
    assert_ok(&o);
    let out = stdout(&o);
    let results = json_lines(&out);
    assert_eq!(results.len(), 8, "{out}");
    results.iter().for_each(check);
    assert_eq!(results[6]["connections"], 200, "{out}");
    assert_eq!(results[4]["messages"], 2000, "{out}");
    assert_eq!(results[7]["endpoint"], "tcp:127.0.0.1:5202", "{out}");
    assert!(
        out.ends_with("test     direction  streams      write          bytes   seconds       MiB/s\n"),
        "{out}"
    );
}

/// A relay that flips one byte: the end that receives it says where, and the run fails.
#[test]
fn a_corrupted_byte_is_caught_each_way_and_in_round_trips() {
    let o = common::lab_sh(
        r#"
        cat > $T/bad.py <<'PY'
import socket, sys, threading
listen, up, way, at = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen)); srv.listen()
print("listening on", listen, flush=True)
def pipe(a, b, flip_at, skip_line):
    seen = 0
    line_done = not skip_line
    while data := a.recv(65536):
        data = bytearray(data)
        if not line_done:
            nl = data.find(b"\n")
            if nl < 0:
                b.sendall(data); continue
            b.sendall(data[:nl + 1]); data = data[nl + 1:]; line_done = True
        if flip_at is not None and seen <= flip_at < seen + len(data):
            data[flip_at - seen] ^= 0x40
        seen += len(data)
        b.sendall(data)
    try: b.shutdown(socket.SHUT_WR)
    except OSError: pass
while True:
    c, _ = srv.accept()
    u = socket.create_connection(("127.0.0.1", up))
    threading.Thread(target=pipe, args=(c, u, at if way == "up" else None, True), daemon=True).start()
    threading.Thread(target=pipe, args=(u, c, at if way == "down" else None, False), daemon=True).start()
PY
        $HVSOCK bench --serve tcp:127.0.0.1:5300 2>$T/server &
        ready $T/server
        python3 $T/bad.py 5301 5300 up 100000 > $T/up &
        python3 $T/bad.py 5302 5300 down 200000 > $T/down &
        ready $T/up; ready $T/down
        $HVSOCK bench tcp:127.0.0.1:5301 --bytes 1M 2>&1 && echo "up: not caught"; echo "up: exit $?"
        $HVSOCK bench tcp:127.0.0.1:5302 --bytes 1M --direction down 2>&1 && echo "down: not caught"; echo "down: exit $?"
        $HVSOCK bench tcp:127.0.0.1:5301 --test rr --size 1K --messages 200 2>&1 && echo "rr: not caught"; echo "rr: exit $?"
        $HVSOCK bench tcp:127.0.0.1:5300 --bytes 1M --direction both >/dev/null && echo "clean: ok"
        "#,
    );
    assert_ok(&o);
    assert_eq!(
        stdout(&o),
        "hvsock: the server found a fault in what it received: a wrong byte at offset 100000\n\
         up: exit 1\n\
         hvsock: received a fault: a wrong byte at offset 200000\n\
         down: exit 1\n\
         hvsock: message 98 came back different\n\
         rr: exit 1\n\
         clean: ok\n"
    );
}

/// Across the switch: the host measures a guest through its hybrid socket, and the guest
/// measures the host through CID 2.
#[test]
fn across_the_switch_both_ways() {
    // The guest stays up until the host's last echo has arrived: a guest that powers off
    // right after its server's last write may take the bytes still in flight with it.
    let done = std::env::temp_dir().join(format!("hvsock-bench-test-{}", std::process::id()));
    let _ = std::fs::remove_file(&done);
    let done = done.display();
    let o = lab_scenario(
        &[&format!(
            "$HVSOCK bench --serve vsock:any:5401 --count 2 &
             $HVSOCK bench vsock:2:5402 --retries 100 --bytes 8M --direction both --json
             until [ -e {done} ]; do sleep 0.05; done"
        )],
        &[
            &format!(
                "$HVSOCK lab wait 3:5401 && $HVSOCK bench hybrid:$HVSOCK_LAB_VM3:5401 --bytes 8M --json &&
                 $HVSOCK bench hybrid:$HVSOCK_LAB_VM3:5401 --test rr --messages 500 --json; s=$?; touch {done}; exit $s"
            ),
            "$HVSOCK bench --serve hybrid:$HVSOCK_LAB_VM3:5402 --count 1",
        ],
    );
    let _ = std::fs::remove_file(done.to_string());
    assert_ok(&o);
    let out = stdout(&o);
    let guest = json_lines(&lines_of(&out, "guest 3").join("\n"));
    let host = json_lines(&lines_of(&out, "host 1").join("\n"));
    assert_eq!((guest.len(), host.len()), (1, 2), "{out}");
    guest.iter().chain(&host).for_each(check);
}
