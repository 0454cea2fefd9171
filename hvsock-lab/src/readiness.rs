//! Waiting, without sleeps, until a vsock port is listening in a lab guest.
//!
//! Observed inside that guest, never by connecting (a probe connection is one more client for
//! the server): in the guest itself through vsock_diag, elsewhere through the files each
//! scenario guest's init keeps for its listening ports in the lab directory.

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

/// A vsock port in a lab guest: `PORT` (this guest) or `CID:PORT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// The guest; `None` for the one we are in.
    pub cid: Option<u32>,
    /// The port.
    pub port: u32,
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Target, String> {
        let number = |what: &str, v: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("`{s}`: {what} `{v}` is not a number (want PORT or CID:PORT)"))
        };
        match s.split_once(':') {
            Some((cid, port)) => Ok(Target { cid: Some(number("CID", cid)?), port: number("port", port)? }),
            None => Ok(Target { cid: None, port: number("port", s)? }),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.cid {
            Some(cid) => write!(f, "{cid}:{}", self.port),
            None => write!(f, "{}", self.port),
        }
    }
}

/// Why a wait failed.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// Not inside a lab run, or the target is not one of its guests.
    #[error("{0}")]
    NoSuchGuest(String),
    /// The guest ended without ever listening there.
    #[error("guest {cid} ended without listening on port {port}")]
    Ended {
        /// The guest.
        cid: u32,
        /// The port.
        port: u32,
    },
    /// Nothing listened in time.
    #[error("nothing listened on {target} within {} s", .after.as_secs_f64())]
    TimedOut {
        /// What we waited for.
        target: Target,
        /// How long.
        after: Duration,
    },
}

/// Whether the target listens yet (or why it never will).
type Check = Box<dyn Fn() -> Result<bool, WaitError>>;

/// Waits until something listens on `target`, for at most `timeout`.
///
/// In a lab guest, `PORT`, `1:PORT` and the guest's own CID look at this guest. Anywhere in a
/// scenario (guests, the VM host, host commands), `CID:PORT` looks at guest CID. `2:PORT` is
/// the VM host when the lab has one; else, from a guest, the hybrid host's Unix socket where
/// that guest's connections to port PORT arrive (`$HVSOCK_LAB_VM<cid>_PORT`).
///
/// ```no_run
/// use std::time::Duration;
/// hvsock_lab::wait_listening("3:5000".parse().unwrap(), Duration::from_secs(30))?;
/// # Ok::<(), hvsock_lab::WaitError>(())
/// ```
pub fn wait_listening(target: Target, timeout: Duration) -> Result<(), WaitError> {
    let in_guest = std::env::var_os("HVSOCK_LAB_GUEST").is_some();
    let own_cid = std::env::var("HVSOCK_LAB_CID").ok().and_then(|c| c.parse::<u32>().ok());
    let here = in_guest && (target.cid.is_none() || target.cid == Some(1) || target.cid == own_cid);
    let deadline = Instant::now() + timeout;
    let check: Check = if here {
        let port = target.port;
        Box::new(move || {
            let table = hvsock::diag::table()
                .map_err(|e| WaitError::NoSuchGuest(format!("cannot list vsock sockets here: {e}")))?;
            Ok(table.iter().any(|s| s.state == "LISTEN" && s.local.port == port))
        })
    } else {
        let dir = std::env::var_os("HVSOCK_LAB_DIR").map(PathBuf::from).ok_or_else(|| {
            WaitError::NoSuchGuest(if in_guest {
                format!("{target}: this single-guest lab has no other guests; wait for PORT here")
            } else {
                format!("{target}: not inside a lab scenario (no HVSOCK_LAB_DIR); run this from a participant of `hvsock lab run --guest …`")
            })
        })?;
        let Some(cid) = target.cid else {
            return Err(WaitError::NoSuchGuest(format!("{target}: outside a guest, name it as CID:PORT")));
        };
        let guest = dir.join(format!("guest{cid}"));
        let listening = guest.join("listening");
        if cid == 2 && !guest.is_dir() {
            hybrid_host_check(dir, target, own_cid)?
        } else if !listening.is_dir() {
            return Err(WaitError::NoSuchGuest(format!("{target}: this lab has no guest with CID {cid}")));
        } else {
            let name = target.port.to_string();
            let port = target.port;
            Box::new(move || {
                let found = dir_has(&listening, &name);
                if !found && dir_has(&guest, "status") {
                    return Err(WaitError::Ended { cid, port });
                }
                Ok(found)
            })
        }
    };
    loop {
        if check()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(WaitError::TimedOut { target, after: timeout });
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// From guest `own_cid` of a lab without a VM host: the host listens on PORT once its Unix
/// socket `vm<cid>.sock_PORT` exists.
fn hybrid_host_check(dir: PathBuf, target: Target, own_cid: Option<u32>) -> Result<Check, WaitError> {
    let Some(own) = own_cid else {
        return Err(WaitError::NoSuchGuest(format!(
            "{target}: this lab has no VM host; from a guest, 2:PORT waits for the hybrid host's socket"
        )));
    };
    let name = format!("vm{own}.sock_{}", target.port);
    Ok(Box::new(move || Ok(dir_has(&dir, &name))))
}

/// Whether `dir` holds `name`. A listing always asks the host; a lookup of one name may be
/// answered from a guest's cache of names that did not exist a moment ago.
fn dir_has(dir: &std::path::Path, name: &str) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| rd.flatten().any(|e| e.file_name() == name))
}
