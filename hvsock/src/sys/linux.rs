use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use crate::{
    AddrError, Listener, Role, Seqpacket, SeqpacketListener, Service, SocketAddr, Stream, Vm, VsockAddr,
};

/// `IOCTL_VM_SOCKETS_GET_LOCAL_CID` on `/dev/vsock`.
const IOCTL_VM_SOCKETS_GET_LOCAL_CID: libc::c_ulong = 0x7b9;
/// Socket-option level of the vsock options (`AF_VSOCK`).
const SOL_VSOCK: libc::c_int = 40;
/// `SO_VM_SOCKETS_CONNECT_TIMEOUT` (a `struct timeval`; the kernel's own default is 2 s).
const SO_VM_SOCKETS_CONNECT_TIMEOUT: libc::c_int = 6;

pub(crate) use crate::net::BufferSize;

/// Services are named by port or GUID only: Linux has no service registry.
pub(crate) fn service_by_name(_name: &str) -> Option<crate::ServiceId> {
    None
}

pub(crate) fn resolve(vm: Vm, service: Service, role: Role) -> Result<SocketAddr, AddrError> {
    Ok(SocketAddr::Vsock(VsockAddr::new(vm.to_cid(role)?, service.to_port()?)))
}

pub(crate) fn native(addr: SocketAddr, role: Role) -> Result<SocketAddr, AddrError> {
    match addr {
        SocketAddr::Vsock(_) => Ok(addr),
        SocketAddr::Hv(hv) => resolve(Vm::from(hv.vm_id), Service::Id(hv.service_id), role),
    }
}

pub(crate) fn socket(ty: Type) -> io::Result<Socket> {
    Socket::new(Domain::VSOCK, ty, None)
}

/// A socket for the async API, non-blocking from its creation (no fcntl round trips).
#[cfg(feature = "tokio")]
pub(crate) fn async_socket(ty: Type) -> io::Result<Socket> {
    Socket::new(Domain::VSOCK, ty.nonblocking(), None)
}

/// Accepts a connection that is non-blocking from the start.
#[cfg(feature = "tokio")]
pub(crate) fn accept_nonblocking(listener: &Socket) -> io::Result<(Socket, socket2::SockAddr)> {
    listener.accept4(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
}

/// A vsock connect, blocking or not, ends with ETIMEDOUT after SO_VM_SOCKETS_CONNECT_TIMEOUT.
pub(crate) const KERNEL_TIMES_CONNECT: bool = true;

/// Refuses a socket handed over that is not a listening vsock socket of type `ty`, saying what
/// it is instead.
pub(crate) fn check_listener(socket: &Socket, ty: Type) -> io::Result<()> {
    let (domain, got, listening) = (socket.domain()?, socket.r#type()?, socket.is_listener()?);
    if domain == Domain::VSOCK && got == ty && listening {
        return Ok(());
    }
    let kind = |t: Type| match t {
        Type::STREAM => "stream",
        Type::SEQPACKET => "seqpacket",
        Type::DGRAM => "datagram",
        _ => "other",
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "the socket handed over is a {}{} {:?} socket, not a listening vsock {} socket",
            if listening { "listening " } else { "" },
            kind(got),
            domain,
            kind(ty)
        ),
    ))
}

/// Lets a blocking connect wait as long as the caller asked, not just the kernel's 2 s.
pub(crate) fn set_connect_timeout(socket: &Socket, timeout: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs().try_into().unwrap_or(libc::time_t::MAX),
        tv_usec: timeout.subsec_micros().into(),
    };
    setsockopt(socket, SO_VM_SOCKETS_CONNECT_TIMEOUT, tv)
}

pub(crate) fn connect_timeout(socket: &Socket) -> io::Result<Duration> {
    let tv: libc::timeval = getsockopt(socket, SO_VM_SOCKETS_CONNECT_TIMEOUT)?;
    Ok(Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64))
}

pub(crate) fn set_buffer_size(socket: &Socket, which: BufferSize, bytes: u64) -> io::Result<()> {
    setsockopt(socket, which as libc::c_int, bytes)
}

pub(crate) fn buffer_size(socket: &Socket, which: BufferSize) -> io::Result<u64> {
    getsockopt(socket, which as libc::c_int)
}

fn setsockopt<T>(socket: &Socket, name: libc::c_int, value: T) -> io::Result<()> {
    // SAFETY: a valid fd; the kernel reads size_of::<T>() bytes of `value`.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            SOL_VSOCK,
            name,
            (&value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn getsockopt<T: Copy>(socket: &Socket, name: libc::c_int) -> io::Result<T> {
    let mut value = std::mem::MaybeUninit::<T>::zeroed();
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: a valid fd; the kernel writes at most `len` bytes into `value`.
    let rc =
        unsafe { libc::getsockopt(socket.as_raw_fd(), SOL_VSOCK, name, value.as_mut_ptr().cast(), &mut len) };
    if rc == 0 {
        // SAFETY: zeroed, then filled by the kernel; all our T are plain integers/structs.
        Ok(unsafe { value.assume_init() })
    } else {
        Err(io::Error::last_os_error())
    }
}

/// This machine's own vsock CID, from `/dev/vsock` (no connection is made).
///
/// A guest gets its own CID from its hypervisor, a host reads 2, and a machine with only
/// `vsock_loopback` reads 1.
///
/// ```no_run
/// let cid = hvsock::local_cid()?;
/// println!("this machine is CID {cid}");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn local_cid() -> io::Result<u32> {
    let dev = File::open("/dev/vsock")?;
    let mut cid: u32 = 0;
    // SAFETY: the ioctl writes one u32 into `cid`.
    let rc = unsafe { libc::ioctl(dev.as_raw_fd(), IOCTL_VM_SOCKETS_GET_LOCAL_CID as _, &mut cid) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(cid)
    }
}

macro_rules! impl_fd {
    ($ty:ident) => {
        impl AsFd for $ty {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.inner.as_fd()
            }
        }
        impl AsRawFd for $ty {
            fn as_raw_fd(&self) -> RawFd {
                self.inner.as_raw_fd()
            }
        }
        impl IntoRawFd for $ty {
            fn into_raw_fd(self) -> RawFd {
                self.inner.into_raw_fd()
            }
        }
        impl FromRawFd for $ty {
            /// # Safety
            /// `fd` must be an open AF_VSOCK socket that nothing else owns.
            unsafe fn from_raw_fd(fd: RawFd) -> $ty {
                $ty { inner: Socket::from_raw_fd(fd) }
            }
        }
        impl From<OwnedFd> for $ty {
            fn from(fd: OwnedFd) -> $ty {
                $ty { inner: Socket::from(fd) }
            }
        }
        impl From<$ty> for OwnedFd {
            fn from(s: $ty) -> OwnedFd {
                s.inner.into()
            }
        }
    };
}

impl_fd!(Stream);
impl_fd!(Listener);
impl_fd!(Seqpacket);
impl_fd!(SeqpacketListener);

/// A read or write timeout as this platform holds it: as given.
pub(crate) fn os_timeout(timeout: Option<Duration>) -> Option<Duration> {
    timeout
}
