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

/// Modules that carry vsock, and what each means for this machine.
const TRANSPORTS: [&str; 7] = [
    "vsock",
    "vsock_loopback",
    "vmw_vsock_virtio_transport",
    "vhost_vsock",
    "hv_sock",
    "vmw_vsock_vmci_transport",
    "vsock_diag",
];

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

/// The vsock modules loaded now (built-in ones with no parameters may not show).
pub fn transports() -> Vec<String> {
    TRANSPORTS
        .iter()
        .filter(|m| std::path::Path::new("/sys/module").join(m).exists())
        .map(|m| m.to_string())
        .collect()
}

/// A best guess at what this Linux runs under, from what the kernel shows; `None` when nothing
/// says "virtual machine".
pub fn hypervisor() -> Option<String> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    if cpuinfo.contains("User Mode Linux") || cpuinfo.contains("model name\t: UML") {
        return Some("User-Mode Linux (an hvsock lab guest)".into());
    }
    if std::path::Path::new("/sys/bus/vmbus").exists() {
        return Some("Hyper-V (vmbus present; vsock goes over hv_sock)".into());
    }
    let dmi = format!(
        "{} {}",
        read("/sys/class/dmi/id/sys_vendor").trim(),
        read("/sys/class/dmi/id/product_name").trim()
    );
    let known = [
        ("Microsoft Corporation", "Hyper-V"),
        ("QEMU", "QEMU/KVM"),
        ("Amazon EC2", "AWS Nitro"),
        ("VMware", "VMware"),
        ("Cloud Hypervisor", "Cloud Hypervisor"),
        ("Google Compute Engine", "Google Compute Engine (KVM)"),
    ];
    if let Some((_, name)) = known.iter().find(|(needle, _)| dmi.contains(needle)) {
        return Some(name.to_string());
    }
    let xen = read("/sys/hypervisor/type");
    if !xen.trim().is_empty() {
        return Some(xen.trim().to_string());
    }
    if let Some(named) = crate::info::cpuid_hypervisor() {
        return Some(named);
    }
    cpuinfo
        .lines()
        .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"))
        .then(|| "a hypervisor (CPU flag) of unknown make".to_string())
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

#[cfg(feature = "tokio")]
macro_rules! impl_async_fd {
    ($ty:ty) => {
        impl AsFd for $ty {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.io.socket().as_fd()
            }
        }
        impl AsRawFd for $ty {
            fn as_raw_fd(&self) -> RawFd {
                self.io.socket().as_raw_fd()
            }
        }
    };
}

#[cfg(feature = "tokio")]
impl_async_fd!(crate::tokio::AsyncStream);
#[cfg(feature = "tokio")]
impl_async_fd!(crate::tokio::AsyncListener);
#[cfg(feature = "tokio")]
impl_async_fd!(crate::tokio::AsyncSeqpacket);
#[cfg(feature = "tokio")]
impl_async_fd!(crate::tokio::AsyncSeqpacketListener);

/// A nonblocking connect that has started and not finished.
#[cfg(feature = "tokio")]
pub(crate) fn connect_in_progress(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINPROGRESS)
}

/// A socket registered with tokio's reactor (epoll, through `AsyncFd`).
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub(crate) struct AsyncSocket(tokio::io::unix::AsyncFd<Socket>);

#[cfg(feature = "tokio")]
impl AsyncSocket {
    pub(crate) fn new(socket: Socket) -> io::Result<AsyncSocket> {
        socket.set_nonblocking(true)?;
        AsyncSocket::register(socket)
    }

    /// Registers a socket that is already non-blocking ([`async_socket`], [`accept_nonblocking`]).
    pub(crate) fn register(socket: Socket) -> io::Result<AsyncSocket> {
        // SAFETY: the Socket owns its fd and keeps it open until the AsyncFd gives it back or
        // drops it, deregistering first.
        Ok(AsyncSocket(unsafe { tokio::io::unix::AsyncFd::register(socket) }?))
    }

    pub(crate) fn socket(&self) -> &Socket {
        self.0.get_ref()
    }

    pub(crate) fn into_socket(self) -> io::Result<Socket> {
        Ok(self.0.into_inner())
    }

    /// Runs `op` once the socket is ready for `interest`, until it stops saying WouldBlock.
    pub(crate) fn poll_io<R>(
        &self,
        cx: &mut std::task::Context<'_>,
        interest: tokio::io::Interest,
        mut op: impl FnMut(&Socket) -> io::Result<R>,
    ) -> std::task::Poll<io::Result<R>> {
        loop {
            let mut guard = std::task::ready!(if interest.is_readable() {
                self.0.poll_read_ready(cx)
            } else {
                self.0.poll_write_ready(cx)
            })?;
            if let Ok(result) = guard.try_io(|fd| op(fd.get_ref())) {
                return std::task::Poll::Ready(result);
            }
        }
    }

    /// [`poll_io`](Self::poll_io) for a read or write of `offered` bytes. One that moves less
    /// has drained the socket (or filled its peer's credit), so the next call waits for
    /// readiness instead of first trying and getting `WouldBlock` — a system call saved per
    /// message, as tokio's own sockets do. Readiness that arrived meanwhile is kept (the guard
    /// clears only the event it saw).
    pub(crate) fn poll_rw(
        &self,
        cx: &mut std::task::Context<'_>,
        interest: tokio::io::Interest,
        offered: usize,
        mut op: impl FnMut(&Socket) -> io::Result<usize>,
    ) -> std::task::Poll<io::Result<usize>> {
        loop {
            let mut guard = std::task::ready!(if interest.is_readable() {
                self.0.poll_read_ready(cx)
            } else {
                self.0.poll_write_ready(cx)
            })?;
            match guard.try_io(|fd| op(fd.get_ref())) {
                Ok(Ok(n)) if n > 0 && n < offered => {
                    guard.clear_ready();
                    return std::task::Poll::Ready(Ok(n));
                }
                Ok(result) => return std::task::Poll::Ready(result),
                Err(_would_block) => {}
            }
        }
    }
}

/// A read or write timeout as this platform holds it: as given.
pub(crate) fn os_timeout(timeout: Option<Duration>) -> Option<Duration> {
    timeout
}
