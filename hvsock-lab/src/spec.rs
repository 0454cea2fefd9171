//! What the host tells the guest's init, and the files they share in the lab directory.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The kernel passes unknown `name=value` boot parameters to init as environment variables;
/// this one names the lab directory.
pub(crate) const DIR_PARAM: &str = "hvsock_lab";

/// The command to run and where.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct Spec {
    pub argv: Vec<OsString>,
    pub cwd: PathBuf,
    pub env: Vec<(OsString, OsString)>,
    /// Kernel modules to load, in order.
    pub modules: Vec<PathBuf>,
    /// UML's module tree (`/usr/lib/uml/modules`), mounted on `/lib/modules` so that the
    /// guest's `modprobe` finds the modules of the kernel it runs.
    pub module_tree: PathBuf,
    /// Where the guest mirrors its listening vsock ports, one empty file per port, for
    /// `hvsock lab wait` in other participants.
    pub listening: Option<PathBuf>,
}

/// The files of one lab directory. The guest reaches them through hostfs at the same paths.
pub(crate) struct Files {
    pub spec: PathBuf,
    /// The command's output, appended by the guest, followed by the host.
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// The host's standard input arrives as numbered chunk files, each renamed into place
    /// complete; `stdin.end` says no more will come. Fresh names defeat the guest's caching.
    pub stdin_dir: PathBuf,
    /// `exit N` or `init-error: MESSAGE`, written by the guest last.
    pub status: PathBuf,
    /// The UML process's own output: boot messages, kernel console.
    pub console: PathBuf,
    /// The guest's listening ports, as empty files named by port number.
    pub listening: PathBuf,
}

impl Files {
    pub fn new(dir: &Path) -> Files {
        Files {
            spec: dir.join("spec.json"),
            stdout: dir.join("stdout"),
            stderr: dir.join("stderr"),
            stdin_dir: dir.join("stdin"),
            status: dir.join("status"),
            console: dir.join("console.log"),
            listening: dir.join("listening"),
        }
    }
}

pub(crate) const STDIN_END: &str = "end";
