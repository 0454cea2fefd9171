//! Stopping a lab run on SIGINT, SIGTERM or SIGHUP: every guest, the switch and every host
//! command go with it, instead of being left running under init.

use std::sync::atomic::{AtomicI32, Ordering};

static STOP: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    STOP.store(sig, Ordering::SeqCst);
}

/// From now on SIGINT, SIGTERM and SIGHUP make a running lab stop everything it started and
/// return [`LabError::Interrupted`](crate::LabError::Interrupted). For programs whose main job
/// is a lab run (the `hvsock lab` command); a library user may keep its own handlers instead.
///
/// ```no_run
/// hvsock_lab::stop_on_signals();
/// ```
pub fn stop_on_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// The signal that asked us to stop, if one came.
pub(crate) fn stop_requested() -> Option<i32> {
    match STOP.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}
