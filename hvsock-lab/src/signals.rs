//! Stopping a lab run on SIGINT, SIGTERM or SIGHUP: every guest, the switch and every host
//! command go with it, instead of being left running under init.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

/// The signal that asked us to stop (signal-hook stores its number), 0 before one came.
static STOP: LazyLock<Arc<AtomicUsize>> = LazyLock::new(Arc::default);

/// From now on SIGINT, SIGTERM and SIGHUP make a running lab stop everything it started and
/// return [`LabError::Interrupted`](crate::LabError::Interrupted). For programs whose main job
/// is a lab run (the `hvsock lab` command); a library user may keep its own handlers instead.
///
/// ```no_run
/// hvsock_lab::stop_on_signals();
/// ```
pub fn stop_on_signals() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        // Fails only for a signal that cannot be caught, which these are not.
        let _ = signal_hook::flag::register_usize(sig, Arc::clone(&STOP), sig as usize);
    }
}

/// The signal that asked us to stop, if one came.
pub(crate) fn stop_requested() -> Option<i32> {
    match STOP.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig as i32),
    }
}
