//! The vsock lab: a throwaway Linux guest with real AF_VSOCK, on any Linux machine.
//!
//! The guest is User-Mode Linux (Debian's `user-mode-linux`): a Linux kernel running as an
//! ordinary process, whose root file system is the host's own (hostfs), so programs under
//! `target/` run in it as they are. Its init loads `vsock`, the loopback transport and
//! `vsock_diag`, runs one command in the caller's directory and powers off. Every vsock
//! connection made inside stays inside that one process.
//!
//! The guest's init is an executable that calls [`init_if_guest`] first thing in `main`; the
//! `hvsock` binary is one.
//!
//! ```no_run
//! # #[cfg(target_os = "linux")] {
//! use hvsock_lab::Lab;
//! let exe = std::env::current_exe().unwrap(); // calls init_if_guest() in main
//! let code = Lab::new(exe).run(&["sh".into(), "-c".into(), "echo hello".into()]).unwrap();
//! assert_eq!(code, 0);
//! # }
//! ```

#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(target_os = "linux")]
mod console;
#[cfg(target_os = "linux")]
mod guest;
#[cfg(target_os = "linux")]
mod readiness;
#[cfg(target_os = "linux")]
mod reaper;
#[cfg(target_os = "linux")]
mod registry;
mod role;
#[cfg(target_os = "linux")]
mod runner;
#[cfg(target_os = "linux")]
mod scenario;
#[cfg(target_os = "linux")]
mod signals;
#[cfg(target_os = "linux")]
mod spec;
#[cfg(target_os = "linux")]
pub mod switch;
#[cfg(target_os = "linux")]
mod vhost_proxy;
#[cfg(target_os = "linux")]
mod xstate_shim;

#[cfg(target_os = "linux")]
pub use guest::init_if_guest;
#[cfg(target_os = "linux")]
pub use readiness::{wait_listening, Target, WaitError};
#[cfg(target_os = "linux")]
pub use registry::{running_vms, LabVm};
#[cfg(target_os = "linux")]
pub use runner::{Lab, LabError};
#[cfg(target_os = "linux")]
pub use scenario::{Ending, Outcome, Participant, Report, Scenario};
#[cfg(target_os = "linux")]
pub use signals::stop_on_signals;

pub use role::Role;

/// Elsewhere there is no guest to be: nothing to do.
#[cfg(not(target_os = "linux"))]
pub fn init_if_guest() {}
