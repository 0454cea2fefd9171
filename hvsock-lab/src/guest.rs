//! The guest side: init (PID 1) of the lab guest.

use std::ffi::{CStr, CString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use crate::spec::{Files, Spec, DIR_PARAM, STDIN_END};

/// Becomes the lab guest's init when this process is one; returns at once otherwise.
///
/// Call it first thing in `main` of any executable you hand to [`crate::Lab::new`]. It acts
/// only as PID 1 with the lab's boot parameter set, so it is harmless everywhere else.
pub fn init_if_guest() {
    if std::process::id() != 1 {
        return;
    }
    let Some(dir) = std::env::var_os(DIR_PARAM) else { return };
    let files = Files::new(Path::new(&dir));
    let status = match run(&files) {
        Ok(code) => format!("exit {code}\n"),
        Err(e) => format!("init-error: {e}\n"),
    };
    // The status is the host's only word on how the command ended; write it, then make sure it
    // is on the host's disk before the guest's power goes.
    let _ = fs::write(&files.status, status);
    // The kernel hands vsock packets to the device from a worker, and power-off does not wait
    // for it: a command that answered and ended just now may have its last packets queued
    // still (a guest's answer was lost so, about once in 150 runs under load). A real VM takes
    // seconds to power off; this one idles a moment, which lets every runnable worker run.
    thread::sleep(Duration::from_millis(20));
    // SAFETY: plain system calls with no pointers.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    loop {
        thread::sleep(Duration::from_secs(1));
    }
}

fn run(files: &Files) -> Result<i32, String> {
    mount_basics();
    let spec: Spec = fs::read(&files.spec)
        .map_err(|e| format!("cannot read {}: {e}", files.spec.display()))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("bad spec: {e}")))?;
    for module in &spec.modules {
        load_module(module).map_err(|e| format!("cannot load kernel module {}: {e}", module.display()))?;
    }
    loopback_up().map_err(|e| format!("cannot bring interface lo up: {e}"))?;
    mount_module_tree(&spec.module_tree);
    if let Some(dir) = spec.listening.clone() {
        thread::spawn(move || mirror_listening(&dir));
    }
    run_command(&spec, files)
}

/// proc and sys for the programs; devtmpfs so /dev is the guest's, not the host's directory
/// seen through hostfs; tmpfs where programs expect private scratch space.
fn mount_basics() {
    for (source, target, fstype) in [
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
        ("devtmpfs", "/dev", "devtmpfs"),
        ("devpts", "/dev/pts", "devpts"),
        ("tmpfs", "/dev/shm", "tmpfs"),
        ("tmpfs", "/run", "tmpfs"),
    ] {
        let _ = fs::create_dir_all(target);
        let c = |s: &str| CString::new(s).expect("no NUL");
        let (source, target, fstype) = (c(source), c(target), c(fstype));
        // SAFETY: valid C strings; a failed mount leaves things as they were.
        unsafe { libc::mount(source.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
    }
}

/// `modprobe` looks in /lib/modules/RELEASE; UML's modules live elsewhere. A bind mount in
/// the guest shows them there (creating the empty directory on this machine if it has none).
fn mount_module_tree(tree: &Path) {
    let target = Path::new("/lib/modules");
    if !tree.is_dir() || (!target.is_dir() && fs::create_dir_all(target).is_err()) {
        return;
    }
    let (Ok(source), Ok(target)) =
        (CString::new(tree.as_os_str().as_encoded_bytes()), CString::new("/lib/modules"))
    else {
        return;
    };
    // SAFETY: valid C strings; a failed mount leaves things as they were.
    unsafe {
        libc::mount(source.as_ptr(), target.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null())
    };
}

/// Keeps `dir` holding one empty file per vsock port listening in this guest, so that other
/// participants can wait for a server without connecting to it (`hvsock lab wait`).
fn mirror_listening(dir: &Path) {
    let mut shown = std::collections::BTreeSet::new();
    loop {
        if let Ok(table) = hvsock::diag::table() {
            let now: std::collections::BTreeSet<u32> =
                table.iter().filter(|s| s.state == "LISTEN").map(|s| s.local.port).collect();
            for port in now.difference(&shown) {
                let _ = File::create(dir.join(port.to_string()));
            }
            for port in shown.difference(&now) {
                let _ = fs::remove_file(dir.join(port.to_string()));
            }
            shown = now;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn load_module(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    let params: &CStr = c"";
    // SAFETY: an open fd and an empty parameter string.
    let rc = unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), params.as_ptr(), 0) };
    match rc {
        0 => Ok(()),
        _ => match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            e => Err(e),
        },
    }
}

/// The guest kernel starts with `lo` down; TCP to 127.0.0.1 needs it up.
fn loopback_up() -> io::Result<()> {
    #[repr(C)]
    struct IfReq {
        name: [u8; 16],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    const SIOCGIFFLAGS: libc::c_ulong = 0x8913;
    const SIOCSIFFLAGS: libc::c_ulong = 0x8914;
    // SAFETY: a fresh socket fd we own.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `sock` is ours alone.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    let mut req = IfReq { name: [0; 16], flags: 0, _pad: [0; 22] };
    req.name[..2].copy_from_slice(b"lo");
    // SAFETY: both ioctls read and write one ifreq, which `req` is laid out as.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), SIOCGIFFLAGS as _, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), SIOCSIFFLAGS as _, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn run_command(spec: &Spec, files: &Files) -> Result<i32, String> {
    let append = |p: &Path| {
        OpenOptions::new().append(true).open(p).map_err(|e| format!("cannot open {}: {e}", p.display()))
    };
    let stdout = append(&files.stdout)?;
    let mut stderr = append(&files.stderr)?;
    let (stdin_read, stdin_write) = pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
    let program = spec.argv.first().ok_or("no command given")?;
    let child = Command::new(program)
        .args(&spec.argv[1..])
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::from(stdin_read))
        .stdout(stdout)
        .stderr(stderr.try_clone().map_err(|e| e.to_string())?)
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(e) => {
            let _ = writeln!(stderr, "lab: cannot run `{}`: {e}", program.to_string_lossy());
            return Ok(if e.kind() == io::ErrorKind::NotFound { 127 } else { 126 });
        }
    };
    let stdin_dir = files.stdin_dir.clone();
    thread::spawn(move || feed_stdin(&stdin_dir, File::from(stdin_write)));
    Ok(reap_until(child.id() as libc::pid_t))
}

/// Waits for `pid`, reaping the orphans that, as PID 1, become ours meanwhile.
fn reap_until(pid: libc::pid_t) -> i32 {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes one int.
        let got = unsafe { libc::waitpid(-1, &mut status, 0) };
        if got == pid {
            return if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            };
        }
        if got < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return 125;
        }
    }
}

/// Copies the host's standard input, chunk by chunk, into the command's stdin pipe.
fn feed_stdin(dir: &Path, mut pipe: File) {
    let mut next = 0u64;
    loop {
        let chunk = dir.join(next.to_string());
        // A directory listing always asks the host; a lookup of a name might be answered from
        // the guest's cache of names that did not exist a moment ago.
        let names: Vec<PathBuf> = match fs::read_dir(dir) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(_) => return,
        };
        if names.contains(&chunk) {
            match fs::read(&chunk) {
                Ok(bytes) if pipe.write_all(&bytes).is_ok() => next += 1,
                _ => return, // the command closed its stdin: stop feeding
            }
        } else if names.iter().any(|p| p.file_name() == Some(STDIN_END.as_ref())) {
            return; // all chunks read; dropping the pipe is the command's end-of-file
        } else {
            thread::sleep(Duration::from_millis(10));
        }
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds, which we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds are fresh and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
