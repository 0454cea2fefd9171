//! Which lab guests are running now, for `hvsock vms` in another shell: each run with a switch
//! writes `vms.json` into its own directory (`$TMPDIR/hvsock-lab-PID-N/`), which goes with the
//! run; a run whose process is gone is not listed even if its directory was left behind.

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

/// Writes the run's guests into its directory (best effort: a run that cannot say so still
/// runs).
pub(crate) fn register(dir: &Path, cids: &[u32], uds: impl Fn(u32) -> PathBuf) {
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
    if let Ok(text) = serde_json::to_string_pretty(&RunFile { pid, guests }) {
        let _ = std::fs::write(dir.join(FILE), text);
    }
}

/// The guests of every lab run that is running now on this machine (or that this guest's
/// run belongs to: a guest sees the host's `/tmp`).
///
/// ```no_run
/// for vm in hvsock_lab::running_vms() {
///     println!("{} CID {} in {}", vm.name, vm.cid, vm.run_dir.display());
/// }
/// ```
pub fn running_vms() -> Vec<LabVm> {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return Vec::new() };
    let mut vms: Vec<LabVm> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("hvsock-lab-"))
        .filter_map(|e| std::fs::read_to_string(e.path().join(FILE)).ok())
        .filter_map(|text| serde_json::from_str::<RunFile>(&text).ok())
        .filter(running)
        .flat_map(|run| run.guests)
        .collect();
    vms.sort_by(|a, b| (&a.run_dir, a.cid).cmp(&(&b.run_dir, b.cid)));
    vms
}

/// Whether the run is still going. Inside a guest the host's processes are not visible, and
/// only the guest's own run can be reached: that one is listed.
fn running(run: &RunFile) -> bool {
    if std::env::var_os("HVSOCK_LAB_GUEST").is_some() {
        let own = std::env::var_os("HVSOCK_LAB_DIR").map(PathBuf::from);
        return run.guests.first().is_some_and(|g| Some(&g.run_dir) == own.as_ref());
    }
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(run.pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
