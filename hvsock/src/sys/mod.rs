//! Everything that differs between Linux (AF_VSOCK) and Windows (AF_HYPERV).

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::local_cid;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;

#[cfg(not(any(target_os = "linux", windows)))]
compile_error!("hvsock supports Linux (AF_VSOCK) and Windows (AF_HYPERV)");
