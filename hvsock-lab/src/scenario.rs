//! Several participants on one vsock switch: guests (child VMs, CID 3, 4, ...), optionally a
//! KVM-style host VM (CID 2, real AF_VSOCK), and commands on this machine, which otherwise
//! plays a hybrid-vsock host (Firecracker, Cloud Hypervisor) through Unix sockets.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::runner::{find_modules, find_uml, io_err, make_dir, prepare, read_status, Tail, DEVICE_MODULES};
use crate::spec::{Files, STDIN_END};
use crate::switch::{uds_path, vhost_path, Switch};
use crate::{Lab, LabError, Role};

/// One command of a scenario, run through `/bin/sh -c`.
#[derive(Clone, Debug)]
pub struct Participant {
    /// Where it runs.
    pub role: Role,
    /// The shell command.
    pub command: String,
    /// A service is started first and stopped once every other participant has finished;
    /// being stopped then is not a failure (a service that fails on its own still is).
    pub service: bool,
}

/// What to run: guests, an optional KVM-style host VM, and host commands beside them.
///
/// Everyone sees `HVSOCK_LAB_DIR` and `HVSOCK_LAB_VM<cid>`, a guest's hybrid socket (connect
/// there and send `CONNECT <port>\n` to reach the guest; the guest's connections to host port
/// P arrive at `$HVSOCK_LAB_VM<cid>_P` unless there is a VM host). VMs see `HVSOCK_LAB_CID`.
///
/// ```no_run
/// use hvsock_lab::{Lab, Scenario};
/// let scenario = Scenario::new()
///     .guest_service("hvsock server any 5000")
///     .guest("hvsock lab wait 3:5000 && hvsock client 3 5000");
/// let report = Lab::new("/usr/local/bin/hvsock").run_scenario(&scenario)?;
/// assert_eq!(report.status(), 0);
/// # Ok::<(), hvsock_lab::LabError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Scenario {
    /// In the order given; guests take CIDs in this order.
    pub participants: Vec<Participant>,
}

impl Scenario {
    /// An empty scenario.
    pub fn new() -> Scenario {
        Scenario::default()
    }

    /// Adds a participant.
    pub fn with(mut self, role: Role, command: impl Into<String>, service: bool) -> Scenario {
        self.participants.push(Participant { role, command: command.into(), service });
        self
    }

    /// A guest (the next CID from 3 up).
    pub fn guest(self, command: impl Into<String>) -> Scenario {
        self.with(Role::Guest, command, false)
    }

    /// A guest that serves the others (started first, stopped at the end).
    pub fn guest_service(self, command: impl Into<String>) -> Scenario {
        self.with(Role::Guest, command, true)
    }

    /// The KVM-style host VM (CID 2).
    pub fn vm_host(self, command: impl Into<String>) -> Scenario {
        self.with(Role::VmHost, command, false)
    }

    /// A command on this machine.
    pub fn host(self, command: impl Into<String>) -> Scenario {
        self.with(Role::Host, command, false)
    }
}

/// How a participant ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Its command exited with this status (128 + N for signal N).
    Exited(i32),
    /// A service, stopped because everyone else had finished.
    Stopped,
    /// Still running at the timeout, and killed.
    StillRunning,
    /// The guest died or could not start; why.
    Died(String),
}

impl Ending {
    /// The exit status it stands for: its own, 0 for a stopped service, 124 at a timeout,
    /// 125 for a guest that died.
    pub fn code(&self) -> i32 {
        match self {
            Ending::Exited(code) => *code,
            Ending::Stopped => 0,
            Ending::StillRunning => 124,
            Ending::Died(_) => 125,
        }
    }

    /// Whether it counts as a failure.
    pub fn failed(&self) -> bool {
        self.code() != 0
    }
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ending::Exited(code) => write!(f, "exited {code}"),
            Ending::Stopped => f.write_str("stopped at the end (service)"),
            Ending::StillRunning => f.write_str("still running at the timeout, killed"),
            Ending::Died(why) => write!(f, "died: {why}"),
        }
    }
}

/// How one participant ended, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// `guest 3`, `vm-host` or `host 1`.
    pub who: String,
    /// Whether it was a service.
    pub service: bool,
    /// How it ended.
    pub ending: Ending,
    /// When, from the start of the run.
    pub after: Duration,
}

/// How a scenario went.
#[derive(Clone, Debug)]
pub struct Report {
    /// One per participant, in the scenario's order.
    pub outcomes: Vec<Outcome>,
    /// Set when the run hit its timeout.
    pub timed_out: Option<Duration>,
    /// The lab directory, kept because a guest died or the run timed out.
    pub kept: Option<PathBuf>,
}

impl Report {
    /// The participant that failed first, if any did.
    pub fn first_failure(&self) -> Option<&Outcome> {
        self.outcomes.iter().filter(|o| o.ending.failed()).min_by_key(|o| o.after)
    }

    /// The run's exit status: the first failing participant's, else 0.
    pub fn status(&self) -> i32 {
        self.first_failure().map_or(0, |o| o.ending.code())
    }

    /// One line saying what failed, or `None` when nothing did.
    pub fn summary(&self) -> Option<String> {
        let first = self.first_failure()?;
        let mut line = format!("{} failed first ({})", first.who, first.ending);
        if let Some(t) = self.timed_out {
            let running: Vec<&str> = self
                .outcomes
                .iter()
                .filter(|o| o.ending == Ending::StillRunning)
                .map(|o| o.who.as_str())
                .collect();
            line += &format!(
                "; at the {} s timeout still running: {} (raise --timeout if they were not stuck)",
                t.as_secs_f64(),
                running.join(", ")
            );
        }
        if let Some(dir) = &self.kept {
            line += &format!("; the lab's files are kept in {}", dir.display());
        }
        Some(line)
    }
}

impl Lab {
    /// Runs a scenario: boots the VMs (in parallel) on a fresh switch, starting services
    /// first, runs the host commands, streams everyone's output with a `[guest 3]`/`[host 1]`
    /// prefix, and waits for every participant that is not a service; then stops the
    /// services. At the timeout everything still running is killed.
    pub fn run_scenario(&self, scenario: &Scenario) -> Result<Report, LabError> {
        let uml = find_uml()?;
        let modules = find_modules(&uml, &DEVICE_MODULES)?;
        let vm_hosts = scenario.participants.iter().filter(|p| p.role == Role::VmHost).count();
        if vm_hosts > 1 {
            return Err(LabError::Init("a lab has one VM host (CID 2) at most".into()));
        }
        let dir = make_dir()?;
        // CIDs: the VM host is 2; guests count from 3 in the order given.
        let mut next_guest = 3..;
        let cids: Vec<Option<u32>> = scenario
            .participants
            .iter()
            .map(|p| match p.role {
                Role::Guest => next_guest.next(),
                Role::VmHost => Some(2),
                Role::Host => None,
            })
            .collect();
        let vm_cids: Vec<u32> = cids.iter().flatten().copied().collect();
        let options = crate::switch::Options {
            keep_half_close: self.keep_half_close,
            hybrid_seqpacket: self.hybrid_seqpacket,
        };
        let switch =
            Switch::start(&dir, &vm_cids, options).map_err(io_err("cannot start the vsock switch"))?;
        // For `hvsock vms` elsewhere, until the switch is gone.
        let registration = crate::registry::register(&dir, &vm_cids, |cid| uds_path(&dir, cid));
        let mut env: Vec<(OsString, OsString)> = vec![("HVSOCK_LAB_DIR".into(), dir.clone().into())];
        for &cid in vm_cids.iter().filter(|&&c| c != 2) {
            env.push((format!("HVSOCK_LAB_VM{cid}").into(), uds_path(&dir, cid).into()));
        }

        let start = Instant::now();
        let mut members: Vec<Member> = Vec::new();
        // Services first, so that they are up (or booting) before their clients start.
        let mut order: Vec<usize> = (0..scenario.participants.len()).collect();
        order.sort_by_key(|&i| !scenario.participants[i].service);
        let mut slots: Vec<Option<Member>> = (0..order.len()).map(|_| None).collect();
        let mut started = Ok(());
        for &i in &order {
            let p = &scenario.participants[i];
            let member = match cids[i] {
                Some(cid) => self.start_vm(&uml, &dir, p, cid, &modules, &env),
                None => {
                    let n = cids[..i].iter().zip(&scenario.participants).filter(|(c, _)| c.is_none()).count();
                    start_host(p, n + 1, &env)
                }
            };
            match member {
                Ok(m) => slots[i] = Some(m),
                Err(e) => {
                    started = Err(e);
                    break;
                }
            }
        }
        members.extend(slots.into_iter().flatten());
        if let Err(e) = started {
            stop_all(&mut members, || End::Stopped);
            drop(switch);
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }

        let supervised = supervise(&mut members, self.timeout);
        members.iter().filter(|m| m.files.is_none()).for_each(Member::kill_leftovers);
        drop(registration);
        drop(switch);
        if let Err(e) = supervised {
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        let mut report = Report {
            outcomes: members
                .into_iter()
                .map(|m| {
                    let (end, at) = m.end.expect("supervise ends every member");
                    Outcome {
                        who: m.who,
                        service: m.service,
                        ending: end.into(),
                        after: at.duration_since(start),
                    }
                })
                .collect(),
            timed_out: None,
            kept: None,
        };
        if report.outcomes.iter().any(|o| o.ending == Ending::StillRunning) {
            report.timed_out = self.timeout;
        }
        let lab_failed =
            report.outcomes.iter().any(|o| matches!(o.ending, Ending::StillRunning | Ending::Died(_)));
        if lab_failed {
            report.kept = Some(dir);
        } else if std::env::var_os("HVSOCK_LAB_KEEP").is_none() {
            let _ = fs::remove_dir_all(&dir);
        }
        Ok(report)
    }

    fn start_vm(
        &self,
        uml: &std::path::Path,
        dir: &std::path::Path,
        p: &Participant,
        cid: u32,
        modules: &[PathBuf],
        env: &[(OsString, OsString)],
    ) -> Result<Member, LabError> {
        let gdir = dir.join(format!("guest{cid}"));
        fs::create_dir(&gdir).map_err(io_err("cannot create a guest directory"))?;
        let files = Files::new(&gdir);
        let argv: Vec<OsString> = vec!["/bin/sh".into(), "-c".into(), p.command.clone().into()];
        let mut genv = env.to_vec();
        genv.push(("HVSOCK_LAB_CID".into(), cid.to_string().into()));
        prepare(&files, &argv, modules.to_vec(), &genv, true)?;
        File::create(files.stdin_dir.join(STDIN_END)).map_err(io_err("cannot close a guest's stdin"))?;
        let device = format!("virtio_uml.device={}:19", vhost_path(dir, cid).display());
        let child = self.boot(uml, &gdir, &files, &[device])?;
        let who = if p.role == Role::VmHost { "vm-host".to_string() } else { format!("guest {cid}") };
        let prefix = format!("[{who}] ");
        let out = Tail::open(&files.stdout, Box::new(io::stdout()))?.prefixed(prefix.clone());
        let err = Tail::open(&files.stderr, Box::new(io::stderr()))?.prefixed(prefix);
        Ok(Member::new(who, p.service, child, vec![out, err], Some(files)))
    }
}

fn start_host(p: &Participant, n: usize, env: &[(OsString, OsString)]) -> Result<Member, LabError> {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", &p.command])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: prctl in the child before exec; a host command must not outlive a killed lab.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(io_err(format!("cannot run host command `{}`", p.command)))?;
    crate::reaper::watch(child.id());
    let prefix = format!("[host {n}] ");
    let printers = vec![
        prefix_lines(child.stdout.take().expect("piped"), io::stdout(), prefix.clone()),
        prefix_lines(child.stderr.take().expect("piped"), io::stderr(), prefix),
    ];
    let mut m = Member::new(format!("host {n}"), p.service, child, Vec::new(), None);
    m.printers = printers;
    Ok(m)
}

/// How a member ended, before it is told to the caller.
pub(crate) enum End {
    Code(i32),
    Stopped,
    StillRunning,
    Failed(LabError),
}

impl From<End> for Ending {
    fn from(end: End) -> Ending {
        match end {
            End::Code(code) => Ending::Exited(code),
            End::Stopped => Ending::Stopped,
            End::StillRunning => Ending::StillRunning,
            End::Failed(e) => Ending::Died(e.to_string()),
        }
    }
}

/// A running participant: a UML guest (with its files) or a host command.
pub(crate) struct Member {
    who: String,
    service: bool,
    child: Child,
    tails: Vec<Tail>,
    /// Threads copying a host command's output; joined once it has ended.
    printers: Vec<thread::JoinHandle<()>>,
    files: Option<Files>,
    pub(crate) end: Option<(End, Instant)>,
}

impl Member {
    pub(crate) fn new(
        who: String,
        service: bool,
        child: Child,
        tails: Vec<Tail>,
        files: Option<Files>,
    ) -> Member {
        Member { who, service, child, tails, printers: Vec::new(), files, end: None }
    }

    /// Records its end if it has exited.
    fn poll(&mut self) {
        self.tails.iter_mut().for_each(Tail::pump);
        if let Ok(Some(status)) = self.child.try_wait() {
            if self.files.is_some() {
                // A guest's helpers have nothing to do once UML is gone (a host command's
                // background children may: they go at the end of the run).
                self.kill_leftovers();
            }
            self.finish_output();
            let end = match &self.files {
                Some(files) => read_status(files).map_or_else(End::Failed, End::Code),
                None => End::Code(status.code().unwrap_or_else(|| 128 + signal_of(&status))),
            };
            self.end = Some((end, Instant::now()));
        }
    }

    /// Kills its whole process group (UML's helpers, a shell's children).
    fn kill(&mut self, end: End) {
        self.kill_leftovers();
        let _ = self.child.wait();
        self.finish_output();
        self.end = Some((end, Instant::now()));
    }

    /// The last of its output. A host command's background children may hold its pipes
    /// open for longer: their output still comes, only no longer waited for.
    fn finish_output(&mut self) {
        self.tails.iter_mut().for_each(Tail::finish);
        let until = Instant::now() + Duration::from_millis(200);
        while self.printers.iter().any(|p| !p.is_finished()) && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Whatever its command left behind in its process group goes too.
    fn kill_leftovers(&self) {
        // SAFETY: signalling the process group we created for it.
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        crate::reaper::forget(self.child.id());
    }
}

fn stop_all(members: &mut [Member], end: fn() -> End) {
    for m in members.iter_mut().filter(|m| m.end.is_none()) {
        m.kill(end());
    }
}

/// Waits until every member that is not a service has ended, then stops the services; at
/// the timeout kills what still runs; on a stop signal kills everything and says so.
pub(crate) fn supervise(members: &mut [Member], timeout: Option<Duration>) -> Result<(), LabError> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        for m in members.iter_mut().filter(|m| m.end.is_none()) {
            m.poll();
        }
        let clients_done = members.iter().filter(|m| !m.service).all(|m| m.end.is_some());
        if clients_done {
            // Services only: with no clients at all, they run until they end by themselves.
            if members.iter().any(|m| !m.service) {
                stop_all(members, || End::Stopped);
            }
            if members.iter().all(|m| m.end.is_some()) {
                return Ok(());
            }
        }
        if let Some(sig) = crate::signals::stop_requested() {
            stop_all(members, || End::Stopped);
            return Err(LabError::Interrupted(sig));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            stop_all(members, || End::StillRunning);
            return Ok(());
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn signal_of(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.signal().unwrap_or(0)
}

/// Copies a host command's output line by line with a prefix.
fn prefix_lines(
    from: impl io::Read + Send + 'static,
    mut to: impl Write + Send + 'static,
    prefix: String,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(from).split(b'\n').map_while(Result::ok) {
            let _ = to.write_all(prefix.as_bytes());
            let _ = to.write_all(&line);
            let _ = to.write_all(b"\n");
            let _ = to.flush();
        }
    })
}
