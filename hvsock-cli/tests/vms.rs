//! `hvsock vms` and VM names in endpoints, against real processes whose command lines look
//! like the VMMs' (a harmless Python under their names), and a lab run's guests. Nothing here
//! connects an AF_VSOCK socket outside the lab: names are only resolved (`hvsock addr`).
#![cfg(target_os = "linux")] // /proc, the lab

mod common;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use common::{assert_ok, hvsock, stderr, stdout};

/// A process that sleeps under a VMM's name with its arguments, killed when dropped.
struct FakeVmm(Child);

impl FakeVmm {
    fn start(argv0: &str, args: &[&str]) -> FakeVmm {
        let child = Command::new("/usr/bin/python3")
            .arg0(argv0)
            .args(["-c", "import time; time.sleep(60)"])
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        // Until exec has happened, /proc shows the test's own command line.
        let cmdline = format!("/proc/{}/cmdline", child.id());
        for _ in 0..200 {
            if std::fs::read(&cmdline).is_ok_and(|c| c.starts_with(argv0.as_bytes())) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        FakeVmm(child)
    }
}

impl Drop for FakeVmm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn vmm_processes_are_found_and_their_names_resolve() {
    let tag = std::process::id();
    let dir = std::env::temp_dir().join(format!("hvsock-vms-test-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    let fc_config = dir.join("fc.json");
    std::fs::write(
        &fc_config,
        format!(r#"{{"vsock":{{"guest_cid":3,"uds_path":"{}/fc.vsock"}}}}"#, dir.display()),
    )
    .unwrap();
    let q = format!("q{tag}");
    let fc = format!("fc{tag}");
    let ch = format!("ch{tag}");
    let qemu = FakeVmm::start(
        "qemu-system-x86_64",
        &[
            "-name",
            &format!("guest={q},debug-threads=on"),
            "-device",
            "vhost-vsock-pci,id=vsock0,guest-cid=42",
        ],
    );
    let libvirt_style = FakeVmm::start(
        "/usr/bin/qemu-system-x86_64",
        &[
            "-name",
            &format!("twin{tag}"),
            "-device",
            r#"{"driver":"vhost-vsock-pci","id":"vsock0","guest-cid":43}"#,
        ],
    );
    let twin = FakeVmm::start(
        "qemu-kvm",
        &["-name", &format!("twin{tag}"), "-device", "vhost-vsock-device,guest-cid=44"],
    );
    let _fc = FakeVmm::start("firecracker", &["--id", &fc, "--config-file", fc_config.to_str().unwrap()]);
    let _ch = FakeVmm::start(
        "cloud-hypervisor",
        &["--vsock", &format!("cid=5,socket={}/ch.vsock,id={ch}", dir.display())],
    );
    let _crosvm = FakeVmm::start("crosvm", &["run", "--cid", "46", "vmlinux"]);
    let _vhd = FakeVmm::start(
        "vhost-device-vsock",
        &["--vm", &format!("guest-cid=7,socket={0}/vhost.sock,uds-path={0}/vhd{tag}.vsock", dir.display())],
    );

    let o = hvsock(&["vms", "--json"]);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let find = |name: &str| {
        v["vms"].as_array().unwrap().iter().filter(|e| e["name"] == name).cloned().collect::<Vec<_>>()
    };
    let q_entry = &find(&q)[0];
    assert_eq!(q_entry["reach"]["cid"], 42, "{v}");
    assert_eq!(q_entry["source"], format!("process {} (qemu-system-x86_64)", qemu.0.id()));
    assert_eq!(find(&format!("twin{tag}")).len(), 2, "{v}");
    assert_eq!(
        find(&fc)[0]["reach"]["hybrid"],
        format!("/proc/{}/root{}/fc.vsock", _fc.0.id(), dir.display())
    );
    assert_eq!(find(&ch)[0]["reach"]["hybrid"], format!("{}/ch.vsock", dir.display()));
    assert_eq!(find(&format!("crosvm-{}", _crosvm.0.id()))[0]["reach"]["cid"], 46);
    assert_eq!(find(&format!("vhd{tag}"))[0]["reach"]["hybrid"], format!("{}/vhd{tag}.vsock", dir.display()));

    // Names work wherever a VM goes; `addr` says what one resolved to, and from where.
    let o = hvsock(&["addr", &format!("vsock:{q}:5000")]);
    assert_ok(&o);
    assert!(
        stdout(&o).contains(&format!("name     {q} is CID 42 (QEMU/KVM, from process {}", qemu.0.id())),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("connect  CID 42, port 5000"), "{}", stdout(&o));
    let o = hvsock(&["addr", &format!("vsock:{}:5000", ch.to_uppercase())]);
    assert!(
        stdout(&o).contains(&format!("endpoint hybrid:{}/ch.vsock:5000", dir.display())),
        "{}",
        stdout(&o)
    );
    let o = hvsock(&["addr", &format!("vsock-seqpacket:{fc}:52")]);
    assert!(stdout(&o).contains("endpoint hybrid-seqpacket:"), "{}", stdout(&o));
    // The names table wins over a VM called the same; two VMs of one name are an error that
    // lists them; a VM that is gone is one clear line.
    let o = hvsock(&["addr", &format!("vsock:twin{tag}:1")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("names 2 VMs: CID 43") && stderr(&o).contains("CID 44"), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    drop(qemu);
    drop(libvirt_style);
    drop(twin);
    let o = hvsock(&["addr", &format!("vsock:{q}:5000")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains(&format!("`{q}` is not a VM name here")), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A directory of its own for a test's lab runs, so that what other runs on this machine do
/// cannot change what it sees.
fn private_tmp(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hvsock-vms-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Another run's file naming `lab-vm3`, as a run left it, under `tmp`; `pid` is its process.
fn other_run(tmp: &std::path::Path, pid: u32) -> std::path::PathBuf {
    let dir = tmp.join("hvsock-lab-1-0");
    std::fs::create_dir_all(&dir).unwrap();
    let vm = serde_json::json!({"name": "lab-vm3", "cid": 3, "uds": dir.join("vm3.sock"), "run_dir": dir, "pid": pid});
    let file = dir.join("vms.json");
    std::fs::write(&file, serde_json::json!({"pid": pid, "guests": [vm]}).to_string()).unwrap();
    file
}

/// A run killed outright leaves its file behind, and its pid is soon another process's (the
/// CI machine had one from hours before, and a running process with its pid): not listed.
#[test]
fn a_killed_runs_left_file_is_not_listed_though_its_pid_lives() {
    let tmp = private_tmp("stale");
    other_run(&tmp, std::process::id());
    let o = common::hvsock_command().args(["vms", "--json"]).env("TMPDIR", &tmp).output().unwrap();
    assert_ok(&o);
    assert!(!stdout(&o).contains("lab-vm3"), "{}", stdout(&o));
    let o = common::hvsock_command().args(["addr", "vsock:lab-vm3:1"]).env("TMPDIR", &tmp).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stderr(&o).contains("`lab-vm3` is not a VM name here"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_lab_runs_guests_by_name() {
    // Another run is going on beside this one (its file is locked as a running run's is):
    // inside this run, its names are this run's.
    let tmp = private_tmp("names");
    let file = other_run(&tmp, 1);
    // -o: the lock is flock's own, gone when it is stopped (not its command's too).
    let mut other = Command::new("flock")
        .arg("-o")
        .arg(&file)
        .args(["-c", "echo locked; exec sleep 300"])
        .stdout(Stdio::piped())
        .process_group(0) // flock's command is its child: both go with the group below
        .spawn()
        .unwrap();
    let mut locked = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(other.stdout.take().unwrap()), &mut locked)
        .unwrap();
    assert_eq!(locked, "locked\n");
    let o = common::lab_scenario_command(
        &["--guest-service", "$HVSOCK listen vsock:any:5000 --keep-open --exec 'echo guest 3 here'"],
        &["$HVSOCK lab wait 3:5000; $HVSOCK vms | sed 1d | awk '{ print $1, $2, $3 }'; $HVSOCK connect vsock:lab-vm3:5000 < /dev/null"],
        &["$HVSOCK lab wait 3:5000; $HVSOCK vms --json; $HVSOCK connect vsock:lab-vm3:5000 < /dev/null"],
    )
    .env("TMPDIR", &tmp)
    .output()
    .unwrap();
    // The other run is needed only while this one runs: stopped before any assertion, so a
    // failing one leaves nothing behind.
    // SAFETY: kill(2) on the process group of our own child, not yet reaped.
    unsafe { libc::kill(-(other.id() as libc::pid_t), libc::SIGKILL) };
    common::stop(&mut other);
    assert_ok(&o);
    let out = stdout(&o);
    // Inside the run, guests by CID; from this machine, by their hybrid sockets.
    assert_eq!(
        common::lines_of(&out, "guest 4"),
        ["lab-vm3 CID 3", "lab-vm4 CID 4", "guest 3 here"],
        "{out}"
    );
    let host = common::lines_of(&out, "host 1");
    let v: serde_json::Value = serde_json::from_str(&host[0]).unwrap();
    // Only the lab's: other tests running beside this one start VMM-shaped processes (and a
    // real vhost-device-vsock), which this machine's `vms` rightly lists too.
    let names: Vec<&str> = v["vms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["source"].as_str().is_some_and(|s| s.starts_with("lab run ")))
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["lab-vm3", "lab-vm4"], "{v}");
    let vm3 =
        &v["vms"].as_array().unwrap().iter().find(|e| e["name"] == "lab-vm3").unwrap()["reach"]["hybrid"];
    assert!(
        vm3.as_str().unwrap().ends_with("/vm3.sock") && !vm3.as_str().unwrap().contains("hvsock-lab-1-0"),
        "{v}"
    );
    assert_eq!(host[1], "guest 3 here", "{out}");
    // Once the run has ended, its names are gone (and the other run's file, left behind with
    // a pid that lives, is not a running run's).
    let o =
        common::hvsock_command().args(["addr", "vsock:lab-vm3:5000"]).env("TMPDIR", &tmp).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stderr(&o).contains("`lab-vm3` is not a VM name here"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&tmp);
}
