//! Listening sockets a service manager hands over instead of the program binding them: systemd's
//! socket activation (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`, the sockets from descriptor
//! 3 on), as a `.socket` unit with `ListenStream=vsock::5000` or `systemd-socket-activate -l
//! vsock:1:5000` passes them.
//!
//! ```no_run
//! use hvsock::{activation, Listener};
//!
//! for socket in activation::take()? {
//!     let listener = Listener::adopt(socket.fd)?; // refused unless a listening vsock stream socket
//!     println!("{}: {}", socket.name, listener.local_addr()?);
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// The first descriptor a service manager passes (`SD_LISTEN_FDS_START`).
const FIRST_FD: i32 = 3;

/// One socket handed over, and the name its unit gave it (`FileDescriptorName=`, systemd's
/// `unknown` when none).
#[derive(Debug)]
pub struct Inherited {
    /// The socket, ours now.
    pub fd: OwnedFd,
    /// Its name from `LISTEN_FDNAMES`.
    pub name: String,
}

/// Whether this process has taken its sockets already: each may be owned once.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// Takes the sockets handed to this process, in order, and clears the variables that said so
/// (children must not take them again). None when the variables are absent or meant for another
/// process (`LISTEN_PID`); a second call finds none.
///
/// The variables are removed from the environment, and the descriptors must be taken before
/// anything else opens one: call this first thing in `main`, before threads or runtimes start.
pub fn take() -> io::Result<Vec<Inherited>> {
    let var = |k: &str| std::env::var(k).ok();
    let (Some(pid), Some(count)) = (var("LISTEN_PID"), var("LISTEN_FDS")) else { return Ok(Vec::new()) };
    let names = var("LISTEN_FDNAMES");
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(Vec::new());
    }
    let count: i32 = count.trim().parse().ok().filter(|n| (0..=4096).contains(n)).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, format!("LISTEN_FDS={count} is not a count of sockets"))
    })?;
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(Vec::new());
    }
    for k in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(k);
    }
    // Every descriptor must really be open before anything owns one (a manager that got it
    // wrong would otherwise have us close a descriptor twice).
    for fd in FIRST_FD..FIRST_FD + count {
        // SAFETY: F_GETFD only asks whether the descriptor number is open.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("LISTEN_FDS={count}, but descriptor {fd} is not open: the service manager passed fewer sockets"),
            ));
        }
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fstat fills `st` for an open descriptor (checked just above).
        let is_socket = unsafe { libc::fstat(fd, st.as_mut_ptr()) } == 0
            // SAFETY: fstat succeeded, so `st` is filled.
            && unsafe { st.assume_init() }.st_mode & libc::S_IFMT == libc::S_IFSOCK;
        if !is_socket {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("LISTEN_FDS={count}, but descriptor {fd} is not a socket"),
            ));
        }
    }
    let mut names = names.as_deref().unwrap_or("").split(':').map(str::to_string);
    Ok((0..count)
        .map(|i| {
            let fd = FIRST_FD + i;
            // Not ours to leave open in the programs we start.
            // SAFETY: fcntl on a descriptor that is open (checked above).
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            // SAFETY: the service manager passed descriptors 3.. LISTEN_FDS open (checked), for
            // this process (LISTEN_PID), and `TAKEN` makes sure each is owned once.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            Inherited { fd, name: names.next().filter(|n| !n.is_empty()).unwrap_or_else(|| "unknown".into()) }
        })
        .collect())
}
