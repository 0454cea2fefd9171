//! `hvsock lab run` itself: output, status, stdin, timeouts.
#![cfg(target_os = "linux")] // the lab is a Linux guest

mod common;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_ok, lab_sh, stderr, stdout, HVSOCK};

#[test]
fn passes_output_status_cwd_env_and_loads_vsock() {
    let o = lab_sh(
        r#"
        echo out; echo err >&2
        echo "cwd=$(pwd)"
        echo "guest=$HVSOCK_LAB_GUEST marker=${LAB_MARKER:-}"
        for m in vsock vsock_loopback vsock_diag; do grep -q "^$m " /proc/modules && echo "module $m"; done
        exit 7
        "#,
    );
    // lab_sh cannot set LAB_MARKER; the runner passes our environment as it is.
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("out\n"), "{out}");
    assert_eq!(stderr(&o), "err\n");
    let cwd = std::env::current_dir().unwrap();
    assert!(out.contains(&format!("cwd={}\n", cwd.display())), "{out}");
    assert!(out.contains("guest=1 marker=\n"), "{out}");
    for m in ["vsock", "vsock_loopback", "vsock_diag"] {
        assert!(out.contains(&format!("module {m}\n")), "{m}: {out}");
    }
}

#[test]
fn forwards_stdin_byte_for_byte_and_reports_signals() {
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let mut child = Command::new(HVSOCK)
        .args(["lab", "run", "--timeout", "60", "--", "sh", "-c", "wc -c; kill -TERM $$"])
        .env("LAB_MARKER", "x")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(stdout(&o).trim(), "3000000", "{}", stderr(&o));
    assert_eq!(o.status.code(), Some(128 + 15));
}

#[test]
fn a_missing_command_is_127_with_its_name() {
    let o = Command::new(HVSOCK).args(["lab", "run", "--", "no-such-command-xyz"]).output().unwrap();
    assert_eq!(o.status.code(), Some(127));
    assert!(stderr(&o).contains("cannot run `no-such-command-xyz`"), "{}", stderr(&o));
}

#[test]
fn timeout_kills_the_guest() {
    let start = Instant::now();
    let o = Command::new(HVSOCK)
        .args(["lab", "run", "--timeout", "3", "--", "sh", "-c", "echo started; sleep 60"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(20), "took {:?}", start.elapsed());
    assert_eq!(o.status.code(), Some(124));
    assert_eq!(stdout(&o), "started\n");
    assert!(stderr(&o).contains("still running after 3 s and was killed"), "{}", stderr(&o));
}

#[test]
fn env_of_the_caller_reaches_the_command() {
    let o = Command::new(HVSOCK)
        .args(["lab", "run", "--", "sh", "-c", "echo $LAB_MARKER"])
        .env("LAB_MARKER", "seen in guest")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ok(&o);
    assert_eq!(stdout(&o), "seen in guest\n");
}
