//! The host side of one guest: finding UML and its modules, preparing a guest's files,
//! booting it, and `Lab::run` (one guest, one command).

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::Duration;

use crate::scenario::{supervise, End, Member};
use crate::spec::{Files, Spec, DIR_PARAM, STDIN_END};

/// Loaded in this order: the core, the transport library, the loopback transport (CID 1),
/// and the netlink listing that `ss -f vsock` and `hvsock list` read.
const MODULES: [&str; 4] = [
    "net/vmw_vsock/vsock.ko",
    "net/vmw_vsock/vmw_vsock_virtio_transport_common.ko",
    "net/vmw_vsock/vsock_loopback.ko",
    "net/vmw_vsock/vsock_diag.ko",
];
/// A guest with a virtio-vsock device also loads the guest transport.
pub(crate) const DEVICE_MODULES: [&str; 5] = [
    "net/vmw_vsock/vsock.ko",
    "net/vmw_vsock/vmw_vsock_virtio_transport_common.ko",
    "net/vmw_vsock/vmw_vsock_virtio_transport.ko",
    "net/vmw_vsock/vsock_loopback.ko",
    "net/vmw_vsock/vsock_diag.ko",
];
/// IPv6 (on `lo`), loaded when the package has it: tests of dual-stack programs expect `::1`.
const IPV6_MODULES: [&str; 2] = ["lib/crc-ccitt.ko", "net/ipv6/ipv6.ko"];
const UML_BINARY: &str = "linux.uml";
const MODULE_TREE: &str = "/usr/lib/uml/modules";

/// What went wrong running a lab guest.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// `linux.uml` is not installed.
    #[error("User-Mode Linux is not installed (no `linux.uml` on PATH): install it with `apt-get install user-mode-linux`")]
    NoUml,
    /// The UML package's vsock modules are missing.
    #[error("User-Mode Linux has no module at {0} (reinstall the user-mode-linux package)")]
    NoModule(PathBuf),
    /// The guest ran past its time limit and was killed.
    #[error("the lab guest was still running after {} s and was killed (raise --timeout)", .0.as_secs_f64())]
    TimedOut(Duration),
    /// The guest's init could not set the guest up.
    #[error("the lab guest could not start: {0}")]
    Init(String),
    /// The guest stopped without saying how its command ended.
    #[error("the lab guest died: {why} (kernel console kept in {})", .console.display())]
    GuestDied {
        /// The fatal lines of its console and what to do.
        why: String,
        /// Its console log.
        console: PathBuf,
    },
    /// A signal asked the lab to stop; everything it started was stopped.
    #[error("stopped by signal {0}; every guest and host command of the lab was stopped")]
    Interrupted(i32),
    /// The lab failed; its files are kept for a look.
    #[error("{error}; the lab's files are kept in {}", .dir.display())]
    Kept {
        /// What failed.
        error: Box<LabError>,
        /// The lab directory.
        dir: PathBuf,
    },
    /// An I/O error on the host side.
    #[error("{what}: {source}")]
    Io {
        /// What we were doing.
        what: String,
        /// The error.
        source: io::Error,
    },
}

impl LabError {
    /// The exit status a command line gives for it: 124 for a timeout (as `timeout(1)`),
    /// 128 + N for signal N, 125 for the rest.
    pub fn exit_code(&self) -> i32 {
        match self {
            LabError::Kept { error, .. } => error.exit_code(),
            LabError::TimedOut(_) => 124,
            LabError::Interrupted(sig) => 128 + sig,
            _ => 125,
        }
    }
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> LabError {
    let what = what.into();
    move |source| LabError::Io { what, source }
}

/// A lab guest, ready to run a command.
///
/// What a run starts goes with this process even if it is killed outright: the first run
/// starts a small `/bin/sh` watcher, which stays for the life of this process and kills what
/// the runs left only once the process is gone.
///
/// ```no_run
/// use std::time::Duration;
/// use hvsock_lab::Lab;
/// let lab = Lab::new("/usr/local/bin/hvsock").timeout(Duration::from_secs(60));
/// let code = lab.run(&["python3".into(), "vsock_echo_test.py".into()])?;
/// # Ok::<(), hvsock_lab::LabError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Lab {
    pub(crate) init: PathBuf,
    pub(crate) timeout: Option<Duration>,
    memory_mib: u32,
    forward_stdin: bool,
    pub(crate) keep_half_close: bool,
    pub(crate) hybrid_seqpacket: bool,
    backend: Option<PathBuf>,
}

impl Lab {
    /// A lab whose guest init is `init`: an executable that calls
    /// [`init_if_guest`](crate::init_if_guest) first in `main`.
    pub fn new(init: impl Into<PathBuf>) -> Lab {
        Lab {
            init: init.into(),
            timeout: None,
            memory_mib: 512,
            forward_stdin: false,
            keep_half_close: false,
            hybrid_seqpacket: false,
            backend: None,
        }
    }

    /// Kill the guest when it runs longer than this.
    pub fn timeout(mut self, timeout: Duration) -> Lab {
        self.timeout = Some(timeout);
        self
    }

    /// Guest memory (default 512 MiB; only what is touched is used).
    pub fn memory_mib(mut self, mib: u32) -> Lab {
        self.memory_mib = mib;
        self
    }

    /// Let the switch pass half-closes on as a Linux peer would: a host's to a guest as SHUTDOWN
    /// SEND alone, a guest's to the host as end-of-file. By default it acts as Firecracker and
    /// vhost-device-vsock do, so that tests see what users of those VMMs see: after the host's
    /// half-close the guest can send nothing (RCV|SEND), and a guest's half-close never reaches
    /// the host.
    pub fn keep_half_close(mut self, yes: bool) -> Lab {
        self.keep_half_close = yes;
        self
    }

    /// Make each guest's hybrid socket (`HVSOCK_LAB_VM<cid>`) take SOCK_SEQPACKET connections
    /// (with the `CONNECT <port>` line and the `OK` answer as messages of their own), which
    /// reach the guest's SEQPACKET listeners: the device-wide socket type Firecracker's
    /// proposed `vsock_type` chooses. A guest's connections to the host keep their own type.
    pub fn hybrid_seqpacket(mut self, yes: bool) -> Lab {
        self.hybrid_seqpacket = yes;
        self
    }

    /// Give [`Lab::run`]'s guest a virtio-vsock device from a third-party vhost-user backend
    /// listening at `socket` (vhost-device-vsock's `--socket`), through a control-plane proxy
    /// that fixes UML 6.1's quirks; the guest's CID and host side are the backend's.
    pub fn vhost_user_backend(mut self, socket: impl Into<PathBuf>) -> Lab {
        self.backend = Some(socket.into());
        self
    }

    /// Give the command this process's standard input (by default it reads end-of-file).
    pub fn forward_stdin(mut self, yes: bool) -> Lab {
        self.forward_stdin = yes;
        self
    }

    /// Runs `argv` in a fresh guest, in this process's working directory and environment, with
    /// its stdout and stderr copied to ours as they come; returns its exit status (128 + N when
    /// signal N ended it). The lab's files are removed afterwards, unless the lab itself failed
    /// (the error names where they are kept).
    pub fn run(&self, argv: &[OsString]) -> Result<i32, LabError> {
        let uml = find_uml()?;
        let modules = find_modules(&uml, if self.backend.is_some() { &DEVICE_MODULES } else { &MODULES })?;
        let dir = make_dir()?;
        match self.run_in(&uml, &dir, argv, modules) {
            // The console names the directory already.
            Err(e @ LabError::GuestDied { .. }) => Err(e),
            Err(e @ (LabError::TimedOut(_) | LabError::Init(_))) => {
                Err(LabError::Kept { error: Box::new(e), dir })
            }
            result => {
                if std::env::var_os("HVSOCK_LAB_KEEP").is_none() {
                    let _ = fs::remove_dir_all(&dir);
                }
                result
            }
        }
    }

    fn run_in(
        &self,
        uml: &Path,
        dir: &Path,
        argv: &[OsString],
        modules: Vec<PathBuf>,
    ) -> Result<i32, LabError> {
        let files = Files::new(dir);
        prepare(&files, argv, modules, &[], false)?;
        if self.forward_stdin {
            let stdin_dir = files.stdin_dir.clone();
            thread::spawn(move || forward_stdin(&stdin_dir));
        } else {
            File::create(files.stdin_dir.join(STDIN_END))
                .map_err(io_err("cannot close the guest's stdin"))?;
        }
        let mut extra = Vec::new();
        if let Some(backend) = &self.backend {
            let proxy = crate::vhost_proxy::VhostProxy::start(&dir.join("vhost-proxy.sock"), backend)
                .map_err(io_err(format!("cannot start the vhost-user proxy for {}", backend.display())))?;
            extra.push(format!("virtio_uml.device={}:19", proxy.path().display()));
        }
        let child = self.boot(uml, dir, &files, &extra)?;
        let out = Tail::open(&files.stdout, Box::new(io::stdout()))?;
        let err = Tail::open(&files.stderr, Box::new(io::stderr()))?;
        let mut members = [Member::new("guest".into(), false, child, vec![out, err], Some(files))];
        supervise(&mut members, self.timeout)?;
        let [member] = members;
        match member.end.expect("supervise ends every member").0 {
            End::Code(code) => Ok(code),
            End::Failed(e) => Err(e),
            End::StillRunning | End::Stopped => Err(LabError::TimedOut(self.timeout.unwrap_or_default())),
        }
    }

    pub(crate) fn boot(
        &self,
        uml: &Path,
        dir: &Path,
        files: &Files,
        extra: &[String],
    ) -> Result<Child, LabError> {
        let console = File::create(&files.console).map_err(io_err("cannot create the console log"))?;
        let console2 = console.try_clone().map_err(io_err("cannot create the console log"))?;
        let mut cmd = Command::new(uml);
        if let Some(shim) = crate::xstate_shim::install(dir)? {
            // Anything the caller preloads comes first; the shim talks to the kernel directly.
            let mut preload = std::env::var_os("LD_PRELOAD").unwrap_or_default();
            if !preload.is_empty() {
                preload.push(" ");
            }
            preload.push(shim);
            cmd.env("LD_PRELOAD", preload);
        }
        cmd.arg(format!("mem={}M", self.memory_mib))
            .args(["root=/dev/root", "rootfstype=hostfs", "rootflags=/", "rw"])
            .arg(format!("init={}", self.init.display()))
            .arg(format!("{DIR_PARAM}={}", dir.display()))
            // The kernel console goes to the log; the command's output has files of its own.
            .args(["con=null", "con0=null,fd:1", "ssl=null", "umid=guest"])
            // Two thirds of a boot's CPU went to two things no guest uses (initcall_debug):
            // 256 legacy BSD ptys made (1.3 s of guest time; openpty uses /dev/ptmx) and the
            // RAID-6 code's speed test (0.85 s; nothing here mounts btrfs RAID). Without them
            // a guest boots in 0.45 CPU-s instead of 1.6.
            .args(["pty.legacy_count=0", "initcall_blacklist=raid6_select_algo"])
            .arg(format!("uml_dir={}", dir.display()))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(console)
            .stderr(console2)
            // Its own process group, so that stopping it takes UML's helper processes too.
            .process_group(0);
        // SAFETY: prctl in the child before exec; a guest must not outlive a killed lab.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(io_err(format!("cannot start {}", uml.display())))?;
        crate::reaper::watch(child.id());
        Ok(child)
    }
}

/// Writes a guest's spec and the empty files it appends to.
pub(crate) fn prepare(
    files: &Files,
    argv: &[OsString],
    modules: Vec<PathBuf>,
    env: &[(OsString, OsString)],
    watch_listening: bool,
) -> Result<(), LabError> {
    let spec = Spec {
        argv: argv.to_vec(),
        cwd: std::env::current_dir().map_err(io_err("cannot read the working directory"))?,
        env: std::env::vars_os()
            .filter(|(k, _)| k != "LD_PRELOAD") // meant for this machine's programs
            .chain([("HVSOCK_LAB_GUEST".into(), "1".into())])
            .chain(env.iter().cloned())
            .collect(),
        modules,
        module_tree: PathBuf::from(MODULE_TREE),
        listening: watch_listening.then(|| files.listening.clone()),
    };
    let json = serde_json::to_vec(&spec).expect("a spec always serialises");
    fs::write(&files.spec, json).map_err(io_err(format!("cannot write {}", files.spec.display())))?;
    for p in [&files.stdout, &files.stderr] {
        File::create(p).map_err(io_err(format!("cannot create {}", p.display())))?;
    }
    if watch_listening {
        fs::create_dir(&files.listening).map_err(io_err("cannot create the listening directory"))?;
    }
    fs::create_dir(&files.stdin_dir).map_err(io_err("cannot create the stdin directory"))
}

/// How the guest's command ended, from the status file its init wrote last.
pub(crate) fn read_status(files: &Files) -> Result<i32, LabError> {
    let status = fs::read_to_string(&files.status).unwrap_or_default();
    if let Some(code) = status.strip_prefix("exit ") {
        return code.trim().parse().map_err(|_| LabError::Init(format!("unreadable status `{status}`")));
    }
    if let Some(msg) = status.strip_prefix("init-error: ") {
        return Err(LabError::Init(msg.trim().to_string()));
    }
    let console = fs::read(&files.console).unwrap_or_default();
    Err(LabError::GuestDied {
        why: crate::console::why_died(&String::from_utf8_lossy(&console)),
        console: files.console.clone(),
    })
}

/// Copies what the guest appends to a file to one of our outputs, each line prefixed when
/// several guests share the terminal.
pub(crate) struct Tail {
    file: File,
    to: Box<dyn Write>,
    buf: Vec<u8>,
    prefix: Option<String>,
    partial: Vec<u8>,
}

impl Tail {
    pub(crate) fn open(path: &Path, to: Box<dyn Write>) -> Result<Tail, LabError> {
        let file = File::open(path).map_err(io_err(format!("cannot open {}", path.display())))?;
        Ok(Tail { file, to, buf: vec![0; 64 * 1024], prefix: None, partial: Vec::new() })
    }

    pub(crate) fn prefixed(mut self, prefix: String) -> Tail {
        self.prefix = Some(prefix);
        self
    }

    pub(crate) fn pump(&mut self) {
        while let Ok(n @ 1..) = self.file.read(&mut self.buf) {
            // A reader that went away (`| head`) must not stop the guest's run.
            match &self.prefix {
                None => drop(self.to.write_all(&self.buf[..n])),
                Some(prefix) => {
                    self.partial.extend_from_slice(&self.buf[..n]);
                    while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = self.partial.drain(..=end).collect();
                        let _ = self.to.write_all(prefix.as_bytes());
                        let _ = self.to.write_all(&line);
                    }
                }
            }
        }
        let _ = self.to.flush();
    }

    /// The last line, if it had no newline.
    pub(crate) fn finish(&mut self) {
        self.pump();
        if let (Some(prefix), false) = (&self.prefix, self.partial.is_empty()) {
            let _ = self.to.write_all(prefix.as_bytes());
            let _ = self.to.write_all(&self.partial);
            let _ = self.to.write_all(b"\n");
            self.partial.clear();
        }
        let _ = self.to.flush();
    }
}

/// Feeds our stdin to the guest as chunk files, each written aside and renamed into place.
fn forward_stdin(dir: &Path) {
    let mut stdin = io::stdin().lock();
    let mut buf = vec![0; 256 * 1024];
    for n in 0u64.. {
        let got = match stdin.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(got) => got,
        };
        let tmp = dir.join(format!(".{n}"));
        if fs::write(&tmp, &buf[..got]).and_then(|()| fs::rename(&tmp, dir.join(n.to_string()))).is_err() {
            break;
        }
    }
    let _ = File::create(dir.join(STDIN_END));
}

/// `HVSOCK_UML` names a `linux.uml` to use instead of the one on PATH.
pub(crate) fn find_uml() -> Result<PathBuf, LabError> {
    if let Some(uml) = std::env::var_os("HVSOCK_UML") {
        let uml = PathBuf::from(uml);
        return if uml.is_file() { Ok(uml) } else { Err(LabError::NoUml) };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join(UML_BINARY))
        .find(|p| p.is_file())
        .ok_or(LabError::NoUml)
}

/// The modules (paths under `kernel/`) of the running UML kernel's own version, then the
/// IPv6 ones where the package has them.
pub(crate) fn find_modules(uml: &Path, names: &[&str]) -> Result<Vec<PathBuf>, LabError> {
    let out = Command::new(uml)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(io_err(format!("cannot run {} --version", uml.display())))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let dir = Path::new(MODULE_TREE).join(&version).join("kernel");
    let mut modules = names
        .iter()
        .map(|m| {
            let p = dir.join(m);
            if p.is_file() {
                Ok(p)
            } else {
                Err(LabError::NoModule(p))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ipv6: Vec<PathBuf> = IPV6_MODULES.iter().map(|m| dir.join(m)).collect();
    if ipv6.iter().all(|p| p.is_file()) {
        modules.extend(ipv6);
    }
    Ok(modules)
}

pub(crate) fn make_dir() -> Result<PathBuf, LabError> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "hvsock-lab-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir); // left by an earlier process with our pid
    fs::create_dir_all(&dir).map_err(io_err(format!("cannot create {}", dir.display())))?;
    Ok(dir)
}
