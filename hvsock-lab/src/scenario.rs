//! Several guests on one vsock switch, and commands on the host beside them: this machine
//! plays the host (CID 2), each guest a child VM (CID 3, 4, ...).

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::runner::{find_modules, find_uml, io_err, make_dir, prepare, read_status, Tail, DEVICE_MODULES};
use crate::spec::{Files, STDIN_END};
use crate::switch::{uds_path, vhost_path, Switch};
use crate::{Lab, LabError};

/// What to run: one shell command per guest, and host commands beside them.
///
/// Guests get CIDs 3, 4, ... in order and see `HVSOCK_LAB_CID`; everyone sees
/// `HVSOCK_LAB_DIR`, and `HVSOCK_LAB_VM<cid>`, the guest's hybrid socket (connect there and
/// send `CONNECT <port>\n` to reach the guest; the guest's connections to host port P arrive
/// at `$HVSOCK_LAB_VM<cid>_P`).
#[derive(Clone, Debug, Default)]
pub struct Scenario {
    /// `sh -c` commands, one guest each.
    pub guests: Vec<String>,
    /// `sh -c` commands run on this machine while the guests run.
    pub hosts: Vec<String>,
}

/// How one participant ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// `guest 3` or `host 1`.
    pub who: String,
    /// Its exit status (128 + N for signal N), or why there is none.
    pub result: Result<i32, String>,
}

impl Lab {
    /// Runs a scenario: boots the guests (in parallel) on a fresh switch, runs the host
    /// commands, streams everyone's output with a `[guest 3]`/`[host 1]` prefix, and waits for
    /// all of them (or the timeout, which kills everything).
    pub fn run_scenario(&self, scenario: &Scenario) -> Result<Vec<Outcome>, LabError> {
        let uml = find_uml()?;
        let modules = find_modules(&uml, &DEVICE_MODULES)?;
        let dir = make_dir()?;
        let cids: Vec<u32> = (3..).take(scenario.guests.len()).collect();
        let switch = Switch::start(&dir, &cids).map_err(io_err("cannot start the vsock switch"))?;
        let mut env: Vec<(OsString, OsString)> = vec![("HVSOCK_LAB_DIR".into(), dir.clone().into())];
        for &cid in &cids {
            env.push((format!("HVSOCK_LAB_VM{cid}").into(), uds_path(&dir, cid).into()));
        }

        let mut guests = Vec::new();
        for (cmd, &cid) in scenario.guests.iter().zip(&cids) {
            let gdir = dir.join(format!("guest{cid}"));
            fs::create_dir(&gdir).map_err(io_err("cannot create a guest directory"))?;
            let files = Files::new(&gdir);
            let argv: Vec<OsString> = vec!["/bin/sh".into(), "-c".into(), cmd.into()];
            let mut genv = env.clone();
            genv.push(("HVSOCK_LAB_CID".into(), cid.to_string().into()));
            prepare(&files, &argv, modules.clone(), &genv)?;
            File::create(files.stdin_dir.join(STDIN_END)).map_err(io_err("cannot close a guest's stdin"))?;
            let device = format!("virtio_uml.device={}:19", vhost_path(&dir, cid).display());
            let child = self.boot(&uml, &gdir, &files, &[device])?;
            let prefix = format!("[guest {cid}] ");
            let out = Tail::open(&files.stdout, Box::new(io::stdout()))?.prefixed(prefix.clone());
            let err = Tail::open(&files.stderr, Box::new(io::stderr()))?.prefixed(prefix);
            guests.push(Running {
                who: format!("guest {cid}"),
                child,
                tails: vec![out, err],
                files: Some(files),
                code: None,
            });
        }
        for (i, cmd) in scenario.hosts.iter().enumerate() {
            let mut child = Command::new("/bin/sh")
                .args(["-c", cmd])
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .spawn()
                .map_err(io_err(format!("cannot run host command `{cmd}`")))?;
            let prefix = format!("[host {}] ", i + 1);
            prefix_lines(child.stdout.take().expect("piped"), io::stdout(), prefix.clone());
            prefix_lines(child.stderr.take().expect("piped"), io::stderr(), prefix);
            guests.push(Running {
                who: format!("host {}", i + 1),
                child,
                tails: Vec::new(),
                files: None,
                code: None,
            });
        }

        let deadline = self.timeout.map(|t| Instant::now() + t);
        let mut timed_out = false;
        while guests.iter().any(|g| g.code.is_none()) {
            for g in guests.iter_mut().filter(|g| g.code.is_none()) {
                g.tails.iter_mut().for_each(Tail::pump);
                if let Ok(Some(status)) = g.child.try_wait() {
                    g.tails.iter_mut().for_each(Tail::finish);
                    g.code = Some(match &g.files {
                        Some(files) => read_status(files).map_err(|e| e.to_string()),
                        None => Ok(status.code().unwrap_or_else(|| 128 + signal_of(&status))),
                    });
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                timed_out = true;
                for g in guests.iter_mut().filter(|g| g.code.is_none()) {
                    // SAFETY: signalling the process group we created.
                    unsafe { libc::kill(-(g.child.id() as libc::pid_t), libc::SIGKILL) };
                    let _ = g.child.wait();
                    g.tails.iter_mut().for_each(Tail::finish);
                    g.code = Some(Err("killed at the timeout".into()));
                }
            }
            thread::sleep(Duration::from_millis(10));
        }
        drop(switch);
        if std::env::var_os("HVSOCK_LAB_KEEP").is_none() {
            let _ = fs::remove_dir_all(&dir);
        }
        if timed_out {
            return Err(LabError::TimedOut(self.timeout.unwrap_or_default()));
        }
        Ok(guests.into_iter().map(|g| Outcome { who: g.who, result: g.code.expect("all ended") }).collect())
    }
}

struct Running {
    who: String,
    child: Child,
    tails: Vec<Tail>,
    files: Option<Files>,
    code: Option<Result<i32, String>>,
}

fn signal_of(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.signal().unwrap_or(0)
}

/// Copies a host command's output line by line with a prefix.
fn prefix_lines(from: impl io::Read + Send + 'static, mut to: impl Write + Send + 'static, prefix: String) {
    thread::spawn(move || {
        for line in BufReader::new(from).split(b'\n').map_while(Result::ok) {
            let _ = to.write_all(prefix.as_bytes());
            let _ = to.write_all(&line);
            let _ = to.write_all(b"\n");
            let _ = to.flush();
        }
    });
}
