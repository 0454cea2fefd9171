//! VM-socket options: the vsock ones at level AF_VSOCK on Linux, the HVSOCKET_* ones at level
//! HV_PROTOCOL_RAW on Windows. Generic ones (timeouts, nonblocking) are on the types themselves.

use std::io;
use std::time::Duration;

use crate::{Listener, Stream};
#[cfg(target_os = "linux")]
use crate::{Seqpacket, SeqpacketListener};

/// Which vsock buffer size (Linux, `SO_VM_SOCKETS_BUFFER_*`, bytes): the kernel keeps
/// `Min <= Size <= Max`.
#[cfg(target_os = "linux")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferSize {
    /// `SO_VM_SOCKETS_BUFFER_SIZE` (default 256 KiB).
    Size = 0,
    /// `SO_VM_SOCKETS_BUFFER_MIN_SIZE`.
    Min = 1,
    /// `SO_VM_SOCKETS_BUFFER_MAX_SIZE`.
    Max = 2,
}

/// An on/off Hyper-V socket option (Windows).
#[cfg(windows)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HvFlag {
    /// `HVSOCKET_CONNECTED_SUSPEND`: the connection survives the VM being suspended.
    ConnectedSuspend,
    /// `HVSOCKET_HIGH_VTL`: address the partition's higher virtual trust level.
    HighVtl,
}

macro_rules! impl_options {
    ($ty:ident) => {
        impl $ty {
            /// The socket's own connect timeout (`SO_VM_SOCKETS_CONNECT_TIMEOUT` /
            /// `HVSOCKET_CONNECT_TIMEOUT`); [`Connector::timeout`](crate::Connector::timeout)
            /// sets it before connecting.
            pub fn set_connect_timeout_option(&self, timeout: Duration) -> io::Result<()> {
                crate::sys::set_connect_timeout(&self.inner, timeout)
            }

            /// The socket's own connect timeout.
            pub fn connect_timeout_option(&self) -> io::Result<Duration> {
                crate::sys::connect_timeout(&self.inner)
            }

            /// Sets a vsock buffer size (Linux); accepted sockets inherit a listener's.
            ///
            /// ```no_run
            /// use hvsock::{BufferSize, Listener};
            /// let l = Listener::bind("vsock:any:19000")?;
            /// l.set_buffer_size(BufferSize::Max, 4 << 20)?;
            /// l.set_buffer_size(BufferSize::Size, 4 << 20)?;
            /// # Ok::<(), std::io::Error>(())
            /// ```
            #[cfg(target_os = "linux")]
            pub fn set_buffer_size(&self, which: BufferSize, bytes: u64) -> io::Result<()> {
                crate::sys::set_buffer_size(&self.inner, which, bytes)
            }

            /// A vsock buffer size (Linux).
            #[cfg(target_os = "linux")]
            pub fn buffer_size(&self, which: BufferSize) -> io::Result<u64> {
                crate::sys::buffer_size(&self.inner, which)
            }

            /// Turns a Hyper-V socket option on or off (Windows).
            #[cfg(windows)]
            pub fn set_hv_flag(&self, flag: HvFlag, on: bool) -> io::Result<()> {
                crate::sys::set_flag(&self.inner, flag, on)
            }

            /// A Hyper-V socket option (Windows).
            #[cfg(windows)]
            pub fn hv_flag(&self, flag: HvFlag) -> io::Result<bool> {
                crate::sys::flag(&self.inner, flag)
            }
        }
    };
}

impl_options!(Stream);
impl_options!(Listener);
#[cfg(target_os = "linux")]
impl_options!(Seqpacket);
#[cfg(target_os = "linux")]
impl_options!(SeqpacketListener);
