//! Helpers for tests that run the `hvsock` binary, in the lab guest or outside it.
#![allow(dead_code)] // each test file uses its own share of these

use std::process::{Command, Output, Stdio};

/// The binary under test.
pub const HVSOCK: &str = env!("CARGO_BIN_EXE_hvsock");

/// Shell functions the lab scripts share: `ready FILE` waits until a server has written
/// `listening on` into FILE (its stderr); `quiet` is an input that stays open and sends
/// nothing until the guest powers off (its sleep is no wait for anything: no test runs a day).
const PRELUDE: &str = r#"
quiet() { exec sleep 86400; }
ready() { i=0; until grep -q 'listening on' "$1" 2>/dev/null; do i=$((i+1)); [ $i -lt 500 ] || { echo "never ready: $1" >&2; cat "$1" >&2; exit 90; }; sleep 0.02; done; }
T=$(mktemp -d)
"#;

/// The binary under test as a command whose lab guests (and their host roles) find Debian's
/// `python3` first, the peer `scripts/setup.sh` installs: a `python3` earlier on PATH may be
/// a version manager's shim, a shell script that forks a dozen times (seconds in the guest).
pub fn hvsock_command() -> Command {
    let mut cmd = Command::new(HVSOCK);
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.env("PATH", format!("/usr/bin:/bin:{path}"));
    cmd
}

/// Stops a process a test started: SIGTERM first, which `hvsock lab run` answers by stopping
/// its guests and their UML helper processes (a SIGKILL would leave the helpers behind), then
/// SIGKILL if it is still there after 10 s.
#[cfg(unix)]
pub fn stop(child: &mut std::process::Child) {
    if matches!(child.try_wait(), Ok(None)) {
        // SAFETY: kill(2) on the pid of our own child, not yet reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let start = std::time::Instant::now();
        while matches!(child.try_wait(), Ok(None)) && start.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A process's stderr, line by line, as it comes.
pub struct Lines(std::sync::mpsc::Receiver<String>, Vec<String>);

impl Lines {
    pub fn of(child: &mut std::process::Child) -> Lines {
        use std::io::BufRead;
        let err = child.stderr.take().expect("stderr piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Lines(rx, Vec::new())
    }

    /// The lines passed over while waiting.
    pub fn seen(&self) -> &[String] {
        &self.1
    }

    /// Waits for a line that contains `text` (the bound is for a hang, not a pace).
    pub fn wait(&mut self, text: &str) -> String {
        loop {
            match self.0.recv_timeout(std::time::Duration::from_secs(60)) {
                Ok(line) if line.contains(text) => return line,
                Ok(line) => self.1.push(line),
                Err(_) => panic!("no line with `{text}`; it printed: {:?}", self.1),
            }
        }
    }
}

/// `hvsock ARGS` started, with no stdin, its stderr read as [`Lines`].
pub fn spawn(args: &[&str]) -> (std::process::Child, Lines) {
    let mut child =
        hvsock_command().args(args).stdin(Stdio::null()).stderr(Stdio::piped()).spawn().expect("run hvsock");
    let lines = Lines::of(&mut child);
    (child, lines)
}

/// `hvsock ARGS` outside the lab, with no stdin.
pub fn hvsock(args: &[&str]) -> Output {
    hvsock_command().args(args).stdin(Stdio::null()).output().expect("run hvsock")
}

/// Runs a `sh -eu` script in a fresh lab guest; `$HVSOCK` is the binary under test.
pub fn lab_sh(script: &str) -> Output {
    hvsock_command()
        .args(["lab", "run", "--timeout", "120", "--", "sh", "-euc"])
        .arg(format!("{PRELUDE}\n{script}"))
        .env("HVSOCK", HVSOCK)
        .stdin(Stdio::null())
        .output()
        .expect("run hvsock lab run")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success, showing everything the command printed when it did not succeed.
#[track_caller]
pub fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// Runs `body` inside a lab guest: outside the lab this re-runs the calling test (by its
/// exact name) in a guest, where `HVSOCK_LAB_GUEST` is set and `body` runs for real.
pub fn in_lab(test_name: &str, body: impl FnOnce()) {
    if std::env::var_os("HVSOCK_LAB_GUEST").is_some() {
        body();
        return;
    }
    let me = std::env::current_exe().expect("test binary path");
    let o = hvsock_command()
        .args(["lab", "run", "--timeout", "120", "--"])
        .arg(me)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .stdin(Stdio::null())
        .output()
        .expect("run hvsock lab run");
    assert_ok(&o);
    // A test filter that matched nothing also exits 0: make sure the body really ran.
    assert!(stdout(&o).contains("1 passed"), "the test did not run in the guest:\n{}", stdout(&o));
}

#[cfg(target_os = "linux")]
pub mod traffic;

/// `hvsock lab run --guest G... --host H...`; `$HVSOCK` is the binary under test everywhere.
pub fn lab_scenario(guests: &[&str], hosts: &[&str]) -> Output {
    lab_scenario_with(&[], guests, hosts)
}

/// [`lab_scenario`] with more `lab run` flags.
pub fn lab_scenario_with(flags: &[&str], guests: &[&str], hosts: &[&str]) -> Output {
    lab_scenario_command(flags, guests, hosts).output().expect("run hvsock lab run")
}

/// The command [`lab_scenario_with`] runs, for a test that changes its environment.
pub fn lab_scenario_command(flags: &[&str], guests: &[&str], hosts: &[&str]) -> Command {
    let mut cmd = hvsock_command();
    cmd.args(["lab", "run", "--timeout", "120"]).args(flags);
    for g in guests {
        cmd.arg("--guest").arg(format!("set -eu; {g}"));
    }
    for h in hosts {
        cmd.arg("--host").arg(format!("set -eu; {h}"));
    }
    cmd.env("HVSOCK", HVSOCK).stdin(Stdio::null());
    cmd
}

/// The lines one participant (`guest 3`, `host 1`) printed, without their prefix.
pub fn lines_of(out: &str, who: &str) -> Vec<String> {
    let prefix = format!("[{who}] ");
    out.lines().filter_map(|l| l.strip_prefix(&prefix)).map(str::to_string).collect()
}
