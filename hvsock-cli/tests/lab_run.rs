//! `hvsock lab run` itself: output, status, stdin, timeouts.
#![cfg(target_os = "linux")] // the lab is a Linux guest

mod common;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_ok, lab_sh, stderr, stdout};

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
    let mut child = common::hvsock_command()
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
    let o = common::hvsock_command().args(["lab", "run", "--", "no-such-command-xyz"]).output().unwrap();
    assert_eq!(o.status.code(), Some(127));
    assert!(stderr(&o).contains("cannot run `no-such-command-xyz`"), "{}", stderr(&o));
}

#[test]
fn timeout_kills_the_guest() {
    // The limit covers the boot and the echo: 20 s, fifteen times a boot's 1.3 s, because
    // the time is what is tested and other tests' guests and builds share the CPU (3 s failed
    // once in CI: a guest booting among parallel tests had not printed yet). The test waits
    // on no CPU meanwhile.
    let start = Instant::now();
    let o = common::hvsock_command()
        .args(["lab", "run", "--timeout", "20", "--", "sh", "-c", "echo started; sleep 600"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(60), "took {:?}", start.elapsed());
    assert_eq!(o.status.code(), Some(124));
    assert_eq!(stdout(&o), "started\n", "{}", stderr(&o));
    assert!(stderr(&o).contains("still running after 20 s and was killed"), "{}", stderr(&o));
}

#[test]
fn env_of_the_caller_reaches_the_command() {
    let o = common::hvsock_command()
        .args(["lab", "run", "--", "sh", "-c", "echo $LAB_MARKER"])
        .env("LAB_MARKER", "seen in guest")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ok(&o);
    assert_eq!(stdout(&o), "seen in guest\n");
}

/// Builds the fixture that makes this CPU look like an AMX one to linux.uml (see its source).
fn xstate_shrinker() -> std::path::PathBuf {
    let so = std::env::temp_dir().join(format!("hvsock-xstate-shrink-{}.so", std::process::id()));
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/xstate_shrink.c");
    let cc = Command::new("cc").args(["-O2", "-fPIC", "-shared", "-o"]).arg(&so).arg(src).status().unwrap();
    assert!(cc.success(), "cannot build {src}");
    so
}

/// An AMX CPU, simulated: the kernel refuses UML's short FPU-state write. Without the lab's
/// xstate shim the guest panics at boot, and the user gets the console's fatal lines and
/// what to do in one line; with it (the default) the guest boots and runs the command.
#[test]
fn boots_where_the_kernel_refuses_short_xstate_writes() {
    let shrink = xstate_shrinker();
    let o = common::hvsock_command()
        .args(["lab", "run", "--", "echo", "booted"])
        .env("LD_PRELOAD", &shrink)
        .env("HVSOCK_LAB_XSTATE_SHIM", "0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("`userspace - ptrace set fp regs failed, errno = 14`, then `Kernel panic"), "{err}");
    assert!(err.contains("AMX") && err.contains("HVSOCK_LAB_XSTATE_SHIM"), "{err}");
    let console = err.trim_end().rsplit("kernel console kept in ").next().unwrap().trim_end_matches(')');
    assert!(std::fs::read_to_string(console).unwrap().contains("Kernel panic"), "{console}");
    std::fs::remove_dir_all(std::path::Path::new(console).parent().unwrap()).unwrap();

    let o = common::hvsock_command()
        .args(["lab", "run", "--", "sh", "-c", "echo booted; python3 -c 'print(sum(range(10**5)))'"])
        .env("LD_PRELOAD", &shrink)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    std::fs::remove_file(&shrink).unwrap();
    assert_ok(&o);
    assert_eq!(stdout(&o), "booted\n4999950000\n");
}

/// Lab directories of the `hvsock` process `pid` still in the temp dir.
fn lab_dirs_of(pid: u32) -> Vec<std::path::PathBuf> {
    let prefix = format!("hvsock-lab-{pid}-");
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

#[test]
fn lab_files_go_after_a_run_and_stay_named_after_a_timeout() {
    let child = common::hvsock_command().args(["lab", "run", "--", "sh", "-c", "exit 3"]).spawn().unwrap();
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(lab_dirs_of(pid), Vec::<std::path::PathBuf>::new());

    let child = common::hvsock_command()
        .args(["lab", "run", "--timeout", "3", "--", "sleep", "60"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(124));
    let kept = lab_dirs_of(pid);
    assert_eq!(kept.len(), 1);
    assert!(
        stderr(&o).contains(&format!("the lab's files are kept in {}", kept[0].display())),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&kept[0]).unwrap();
}

/// Processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(needle))
        .collect()
}

/// SIGTERM and SIGINT stop every guest, the switch and every host command, and say so.
#[test]
fn a_signal_stops_every_guest_and_host_command() {
    for (sig, scenario) in [(libc::SIGTERM, true), (libc::SIGINT, true), (libc::SIGTERM, false)] {
        let marker = format!("hvsock-signal-test-{}-{sig}-{scenario}", std::process::id());
        let ready = std::env::temp_dir().join(&marker);
        let _ = std::fs::remove_file(&ready);
        let mut cmd = common::hvsock_command();
        cmd.args(["lab", "run", "--timeout", "60"]);
        let guest = format!("touch {}; exec sleep 77.{sig}", ready.display());
        if scenario {
            cmd.args(["--guest", &guest, "--guest", "sleep 78", "--host", &format!("sleep 79; : {marker}")]);
        } else {
            cmd.args(["--", "sh", "-c", &guest]);
        }
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let pid = child.id();
        let start = Instant::now();
        while !ready.exists() {
            assert!(start.elapsed() < Duration::from_secs(30), "the guest never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid as i32, sig) };
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(128 + sig), "{}", stderr(&o));
        assert!(stderr(&o).contains(&format!("stopped by signal {sig}")), "{}", stderr(&o));
        let left = still_running_after(&format!("hvsock-lab-{pid}-"), Duration::from_secs(3));
        assert!(left.is_empty(), "left running: {left:?}");
        assert!(processes_with(&marker).is_empty(), "the host command was left running");
        assert_eq!(lab_dirs_of(pid), Vec::<std::path::PathBuf>::new());
        std::fs::remove_file(&ready).unwrap();
    }
}

/// Killed processes take a moment to go (SIGKILL is delivered, not waited for): what still
/// runs with `needle` in its command line after `within`.
fn still_running_after(needle: &str, within: Duration) -> Vec<String> {
    let start = Instant::now();
    let mut left = processes_with(needle);
    while !left.is_empty() && start.elapsed() < within {
        std::thread::sleep(Duration::from_millis(50));
        left = processes_with(needle);
    }
    left
}

/// A lab killed outright (SIGKILL: no handler of its own runs) takes with it what it started:
/// each guest's UML helper processes, and what a host command left running in the background
/// (both outlived the parent-death signal their leaders get, and kept running for ever).
#[test]
fn a_lab_killed_outright_leaves_nothing_running() {
    let marker = format!("hvsock-sigkill-test-{}", std::process::id());
    let ready = std::env::temp_dir().join(&marker);
    let _ = std::fs::remove_file(&ready);
    let mut child = common::hvsock_command()
        .args(["lab", "run", "--timeout", "60"])
        .args(["--guest", &format!("touch {}; exec sleep 77", ready.display())])
        .args(["--host", &format!("sh -c 'sleep 79; : {marker}' & wait")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let start = Instant::now();
    // The background child: the lab's and the host command's own command lines name it too.
    let background = || processes_with(&marker).iter().any(|c| c.starts_with("sh -c sleep 79"));
    while !(ready.exists() && background()) {
        assert!(start.elapsed() < Duration::from_secs(30), "the guest or the host command never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left = still_running_after(&format!("hvsock-lab-{pid}-"), Duration::from_secs(5));
    assert!(left.is_empty(), "UML left running: {left:?}");
    let left = still_running_after(&marker, Duration::from_secs(5));
    assert!(left.is_empty(), "the host command's background child left running: {left:?}");
    // Its files stay behind, as nothing of the lab's ran to remove them.
    for dir in lab_dirs_of(pid) {
        std::fs::remove_dir_all(dir).unwrap();
    }
    std::fs::remove_file(&ready).unwrap();
}

#[test]
fn modprobe_finds_uml_modules_and_ipv6_loopback_works() {
    let o = lab_sh(
        r#"
        modprobe dummy
        grep -q '^dummy ' /proc/modules && echo "dummy loaded"
        python3 -c '
import socket
s = socket.socket(socket.AF_INET6); s.bind(("::1", 0)); s.listen()
c = socket.create_connection(s.getsockname()[:2]); a, _ = s.accept()
c.sendall(b"six"); print("ipv6", a.recv(3).decode())'
        "#,
    );
    assert_ok(&o);
    assert_eq!(stdout(&o), "dummy loaded\nipv6 six\n");
}
