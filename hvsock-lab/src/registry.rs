//! Which lab guests are running now, for `hvsock vms` in another shell: each run with a switch
//! writes `vms.json` into its own directory (`$TMPDIR/hvsock-lab-PID-N/`) and holds a lock on
//! it while it runs. The system drops the lock with the process however it ends, so the file
//! of a run that was killed outright is not listed, even when its pid is another process's by
//! then (a pid check alone listed one from hours before).

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file a run keeps its guests in, inside its directory.
const FILE: &str = "vms.json";

/// One running lab guest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabVm {
    /// `lab-vm3` for the guest with CID 3, `lab-vm-host` for the VM host (CID 2).
    pub name: String,
    /// Its CID, which the run's other guests reach it by.
    pub cid: u32,
    /// Its hybrid socket on this machine (none for the VM host, which this machine does not
    /// reach).
    pub uds: Option<PathBuf>,
    /// The run's directory (`HVSOCK_LAB_DIR` inside its guests).
    pub run_dir: PathBuf,
    /// The process running the lab.
    pub pid: u32,
}

#[derive(Serialize, Deserialize)]
struct RunFile {
    pid: u32,
    guests: Vec<LabVm>,
}

/// A run's entry in the registry: listed while this lives.
pub(crate) struct Registration {
    // Locked; the lock goes with the file's last descriptor (Rust opens files close-on-exec,
    // so UML and the host commands do not inherit it).
    _file: File,
    path: PathBuf,
}

impl Drop for Registration {
    fn drop(&mut self) {
        // A run's kept directory is not a running run.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes the run's guests into its directory and holds the lock that says it runs (best
/// effort: a run that cannot say so still runs).
pub(crate) fn register(dir: &Path, cids: &[u32], uds: impl Fn(u32) -> PathBuf) -> Option<Registration> {
    let pid = std::process::id();
    let guests = cids
        .iter()
        .map(|&cid| LabVm {
            name: if cid == 2 { "lab-vm-host".into() } else { format!("lab-vm{cid}") },
            cid,
            uds: (cid != 2).then(|| uds(cid)),
            run_dir: dir.to_path_buf(),
            pid,
        })
        .collect();
    let text = serde_json::to_string_pretty(&RunFile { pid, guests }).ok()?;
    let path = dir.join(FILE);
    let mut file = File::create(&path).ok()?;
    // Locked before it says anything: a reader that gets in first finds a free lock, and skips
    // the run as not running yet.
    flock(&file, libc::LOCK_EX).ok()?;
    file.write_all(text.as_bytes()).ok()?;
    Some(Registration { _file: file, path })
}

fn flock(file: &File, op: libc::c_int) -> std::io::Result<()> {
    // SAFETY: flock on a descriptor this File owns.
    match unsafe { libc::flock(file.as_raw_fd(), op) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// The guests of every lab run that is running now on this machine. Inside a run (its guests,
/// which see this machine's `/tmp`, and its host commands), only that run's: its names mean
/// the same however many runs there are.
///
/// ```no_run
/// for vm in hvsock_lab::running_vms() {
///     println!("{} CID {} in {}", vm.name, vm.cid, vm.run_dir.display());
/// }
/// ```
pub fn running_vms() -> Vec<LabVm> {
    let own = std::env::var_os("HVSOCK_LAB_DIR").map(PathBuf::from);
    runs_in(&std::env::temp_dir(), own.as_deref())
}

fn runs_in(tmp: &Path, own: Option<&Path>) -> Vec<LabVm> {
    let Ok(entries) = std::fs::read_dir(tmp) else { return Vec::new() };
    let mut vms: Vec<LabVm> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("hvsock-lab-"))
        .filter(|e| own.is_none_or(|own| e.path() == own))
        // Inside a run, that run is running: no lock to ask (a guest sees the file through
        // hostfs, not as this machine's processes do).
        .filter_map(|e| read_running(&e.path().join(FILE), own.is_none()))
        .filter_map(|text| serde_json::from_str::<RunFile>(&text).ok())
        .flat_map(|run| run.guests)
        .collect();
    vms.sort_by(|a, b| (&a.run_dir, a.cid).cmp(&(&b.run_dir, b.cid)));
    vms
}

/// A run's file, if `ask_lock` is false or a running run holds its lock.
fn read_running(path: &Path, ask_lock: bool) -> Option<String> {
    let mut file = File::open(path).ok()?;
    if ask_lock {
        // A shared lock is ours only when no running run holds its exclusive one.
        let held = flock(&file, libc::LOCK_SH | libc::LOCK_NB)
            .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock);
        if !held {
            return None;
        }
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text).ok()?;
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hvsock-registry-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("hvsock-lab-7-0")).unwrap();
        dir
    }

    #[test]
    fn a_run_is_listed_while_its_registration_lives() {
        let tmp = tmp("lives");
        let run = tmp.join("hvsock-lab-7-0");
        let registration = register(&run, &[2, 3], |cid| run.join(format!("vm{cid}.sock"))).unwrap();
        let names: Vec<String> = runs_in(&tmp, None).into_iter().map(|vm| vm.name).collect();
        assert_eq!(names, ["lab-vm-host", "lab-vm3"]);
        drop(registration);
        assert_eq!(runs_in(&tmp, None), []);
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn a_file_left_behind_is_not_a_run_though_its_pid_lives() {
        let tmp = tmp("left");
        let run = tmp.join("hvsock-lab-7-0");
        // What a run killed outright leaves: the file, unlocked, naming a pid that lives (ours).
        let registration = register(&run, &[3], |cid| run.join(format!("vm{cid}.sock"))).unwrap();
        let text = std::fs::read(run.join(FILE)).unwrap();
        drop(registration);
        std::fs::write(run.join(FILE), text).unwrap();
        assert_eq!(runs_in(&tmp, None), []);
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn inside_a_run_only_its_guests_are_listed() {
        let tmp = tmp("inside");
        let ours = tmp.join("hvsock-lab-7-0");
        let theirs = tmp.join("hvsock-lab-8-0");
        std::fs::create_dir_all(&theirs).unwrap();
        let _a = register(&ours, &[3], |cid| ours.join(format!("vm{cid}.sock"))).unwrap();
        let _b = register(&theirs, &[3, 4], |cid| theirs.join(format!("vm{cid}.sock"))).unwrap();
        assert_eq!(runs_in(&tmp, None).len(), 3);
        let inside = runs_in(&tmp, Some(&ours));
        assert_eq!(inside.len(), 1);
        assert_eq!(inside[0].run_dir, ours);
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
