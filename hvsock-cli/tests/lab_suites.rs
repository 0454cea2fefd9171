//! Other projects' own vsock test suites, unchanged, in the lab: CPython's `test.test_socket`
//! VSOCK classes and the tokio-vsock crate's `tests/`. They are what the lab promises: vsock
//! code tested with no hypervisor. Never run either outside the lab: both connect to CIDs
//! that, on a development or CI VM, leave the machine.
#![cfg(target_os = "linux")] // the lab is a Linux guest

mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{assert_ok, lines_of, stderr, stdout, HVSOCK};

/// Debian's own Python: `scripts/setup.sh` installs its test package (libpython3.X-testsuite).
const PYTHON: &str = "/usr/bin/python3";
const CPYTHON_VSOCK: [&str; 2] =
    ["test.test_socket.BasicVSOCKTest", "test.test_socket.ThreadedVSOCKSocketStreamTest"];

fn cpython_has_its_tests() {
    let o =
        Command::new(PYTHON).args(["-c", "import test.test_socket"]).output().expect("run /usr/bin/python3");
    assert!(
        o.status.success(),
        "{PYTHON} has no test.test_socket: install libpython3.X-testsuite (scripts/setup.sh does)\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// unittest's verdict: every test ran and passed, none skipped.
#[track_caller]
fn assert_unittest_ran_all(report: &str, count: usize) {
    assert!(report.contains(&format!("Ran {count} tests")), "{report}");
    assert!(report.lines().any(|l| l.trim() == "OK"), "{report}");
    assert!(!report.contains("skipped"), "{report}");
}

/// In the single-guest lab (CID 1 through vsock_loopback) and in a guest on the switch
/// (its own CID 3, a sibling beside it).
#[test]
fn cpython_vsock_tests_pass() {
    cpython_has_its_tests();
    let o = common::hvsock_command()
        .args(["lab", "run", "--timeout", "120", "--", PYTHON, "-m", "unittest", "-v"])
        .args(CPYTHON_VSOCK)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ok(&o);
    assert_unittest_ran_all(&stderr(&o), 5);

    let suite = format!("{PYTHON} -m unittest -v {} 2>&1", CPYTHON_VSOCK.join(" "));
    let o = common::hvsock_command()
        .args(["lab", "run", "--timeout", "120", "--guest", &suite, "--guest", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ok(&o);
    assert_unittest_ran_all(&lines_of(&stdout(&o), "guest 3").join("\n"), 5);
}

/// tokio-vsock's published source, fetched by cargo into our target directory.
fn tokio_vsock_source(work: &Path) -> PathBuf {
    let probe = work.join("probe");
    std::fs::create_dir_all(probe.join("src")).unwrap();
    std::fs::write(
        probe.join("Cargo.toml"),
        "[package]\nname = \"probe\"\nversion = \"0.0.0\"\nedition = \"2021\"\n[workspace]\n\
         [dependencies]\ntokio-vsock = \"=0.7.3\"\n",
    )
    .unwrap();
    std::fs::write(probe.join("src/lib.rs"), "").unwrap();
    let o = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1"])
        .current_dir(&probe)
        .output()
        .expect("run cargo metadata");
    assert!(o.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&o.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let manifest = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "tokio-vsock")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("tokio-vsock in the metadata");
    Path::new(manifest).parent().unwrap().to_path_buf()
}

/// Builds its tests as published (its own Cargo.lock) for this machine's target: its
/// `.cargo/config.toml` asks for musl, which its CI VM image uses and we need not.
fn build_tokio_vsock_tests() -> Vec<String> {
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tokio-vsock");
    let source = tokio_vsock_source(&work);
    let copy = work.join(source.file_name().unwrap());
    if !copy.join("Cargo.toml").is_file() {
        let cp = Command::new("cp").arg("-r").arg(&source).arg(&copy).status().unwrap();
        assert!(cp.success());
    }
    let host = Command::new("rustc").arg("-vV").output().unwrap();
    let host = String::from_utf8_lossy(&host.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .unwrap();
    let o = Command::new(env!("CARGO"))
        .args(["test", "--no-run", "--message-format=json", "--target", &host])
        .current_dir(&copy)
        // As published: none of our build's flags, nor its lints (scripts/test.sh builds ours
        // through clippy-driver).
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        // No debug info: the binaries only run, and it is a full build of its dependencies.
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .output()
        .expect("run cargo test --no-run for tokio-vsock");
    assert!(
        o.status.success(),
        "building tokio-vsock's tests failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let executables: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|m| m["executable"].as_str().map(str::to_string))
        .collect();
    assert!(executables.iter().any(|e| e.contains("/vsock-")), "no tests/vsock.rs binary: {executables:?}");
    executables
}

/// Its tests run on a KVM host and expect a VM with CID 3 running an echo server on port 8000
/// (their test_server); here the host is the lab's VM host and the VM a guest service.
#[test]
fn tokio_vsock_tests_pass_on_the_vm_host() {
    let tests = build_tokio_vsock_tests();
    let run_all: Vec<String> = tests.iter().map(|t| format!("{t} --test-threads=2")).collect();
    let o = common::hvsock_command()
        .args(["lab", "run", "--timeout", "180"])
        .args(["--guest-service", &format!("{HVSOCK} listen vsock:any:8000 --keep-open --exec cat")])
        .args(["--vm-host", &format!("set -e; {HVSOCK} lab wait 3:8000; {}", run_all.join("; "))])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ok(&o);
    let host = lines_of(&stdout(&o), "vm-host").join("\n");
    for test in ["test_vsock_server", "test_vsock_conn_error", "split_vsock", "into_split_vsock"] {
        assert!(host.contains(&format!("test {test} ... ok")), "{test}:\n{host}");
    }
    assert!(host.contains("test result: ok. 4 passed; 0 failed"), "{host}");
}
