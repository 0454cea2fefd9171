use std::io;
use std::os::windows::io::{
    AsRawSocket, AsSocket, BorrowedSocket, FromRawSocket, IntoRawSocket, OwnedSocket, RawSocket,
};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use windows_sys::Win32::Networking::WinSock::{getsockopt, setsockopt, SOCKET, SOCKET_ERROR};
use windows_sys::Win32::System::Hypervisor::{
    HVSOCKET_CONNECTED_SUSPEND, HVSOCKET_CONNECT_TIMEOUT, HVSOCKET_CONNECT_TIMEOUT_MAX, HVSOCKET_HIGH_VTL,
    HV_PROTOCOL_RAW,
};

use crate::{AddrError, HvAddr, Listener, Role, Service, ServiceId, SocketAddr, Stream, Vm};

pub(crate) use crate::net::HvFlag;

/// `AF_HYPERV`.
const AF_HYPERV: i32 = HvAddr::FAMILY as i32;

/// A registered service's `ElementName` names it too.
pub(crate) fn service_by_name(name: &str) -> Option<ServiceId> {
    crate::registry::lookup(name).ok().flatten()
}

pub(crate) fn resolve(vm: Vm, service: Service, role: Role) -> Result<SocketAddr, AddrError> {
    Ok(SocketAddr::Hv(HvAddr::new(vm.to_vm_id(role)?, service.to_service_id())))
}

pub(crate) fn native(addr: SocketAddr, role: Role) -> Result<SocketAddr, AddrError> {
    match addr {
        SocketAddr::Hv(_) => Ok(addr),
        SocketAddr::Vsock(v) => resolve(Vm::Cid(v.cid), Service::Port(v.port), role),
    }
}

pub(crate) fn socket(ty: Type) -> io::Result<Socket> {
    Socket::new(Domain::from(AF_HYPERV), ty, Some(Protocol::from(HV_PROTOCOL_RAW as i32)))
}

/// A socket for the async API, made non-blocking before it connects.
#[cfg(feature = "tokio")]
pub(crate) fn async_socket(ty: Type) -> io::Result<Socket> {
    let socket = socket(ty)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Accepts a connection and makes it non-blocking.
#[cfg(feature = "tokio")]
pub(crate) fn accept_nonblocking(listener: &Socket) -> io::Result<(Socket, socket2::SockAddr)> {
    let (socket, addr) = listener.accept()?;
    socket.set_nonblocking(true)?;
    Ok((socket, addr))
}

/// Not verified for AF_HYPERV: connects keep a timer of their own (socket2's, tokio's).
pub(crate) const KERNEL_TIMES_CONNECT: bool = false;

/// Lets a blocking connect wait as long as the caller asked (Windows caps it at 300 s).
pub(crate) fn set_connect_timeout(socket: &Socket, timeout: Duration) -> io::Result<()> {
    let ms = whole_millis(timeout).min(HVSOCKET_CONNECT_TIMEOUT_MAX);
    set_u32(socket, HVSOCKET_CONNECT_TIMEOUT, ms)
}

/// Windows takes timeouts in whole milliseconds, and 0 means "forever": a shorter timeout
/// rounds up, never down to 0.
fn whole_millis(timeout: Duration) -> u32 {
    timeout.as_nanos().div_ceil(1_000_000).min(u32::MAX as u128) as u32
}

/// A read or write timeout as Windows can hold it (see [`whole_millis`]).
pub(crate) fn os_timeout(timeout: Option<Duration>) -> Option<Duration> {
    timeout.map(|t| Duration::from_millis(whole_millis(t).into()))
}

pub(crate) fn connect_timeout(socket: &Socket) -> io::Result<Duration> {
    get_u32(socket, HVSOCKET_CONNECT_TIMEOUT).map(|ms| Duration::from_millis(ms.into()))
}

pub(crate) fn set_flag(socket: &Socket, flag: HvFlag, on: bool) -> io::Result<()> {
    set_u32(socket, flag_option(flag), on.into())
}

pub(crate) fn flag(socket: &Socket, flag: HvFlag) -> io::Result<bool> {
    get_u32(socket, flag_option(flag)).map(|v| v != 0)
}

fn flag_option(flag: HvFlag) -> u32 {
    match flag {
        HvFlag::ConnectedSuspend => HVSOCKET_CONNECTED_SUSPEND,
        HvFlag::HighVtl => HVSOCKET_HIGH_VTL,
    }
}

fn set_u32(socket: &Socket, name: u32, value: u32) -> io::Result<()> {
    // SAFETY: a valid socket and a u32 of the size we pass.
    let rc = unsafe {
        setsockopt(
            socket.as_raw_socket() as SOCKET,
            HV_PROTOCOL_RAW as i32,
            name as i32,
            (&value as *const u32).cast(),
            std::mem::size_of::<u32>() as i32,
        )
    };
    if rc == SOCKET_ERROR {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn get_u32(socket: &Socket, name: u32) -> io::Result<u32> {
    let mut value = 0u32;
    let mut len = std::mem::size_of::<u32>() as i32;
    // SAFETY: a valid socket; Winsock writes at most `len` bytes into `value`.
    let rc = unsafe {
        getsockopt(
            socket.as_raw_socket() as SOCKET,
            HV_PROTOCOL_RAW as i32,
            name as i32,
            (&mut value as *mut u32).cast(),
            &mut len,
        )
    };
    if rc == SOCKET_ERROR {
        Err(io::Error::last_os_error())
    } else {
        Ok(value)
    }
}

macro_rules! impl_socket {
    ($ty:ident) => {
        impl AsSocket for $ty {
            fn as_socket(&self) -> BorrowedSocket<'_> {
                self.inner.as_socket()
            }
        }
        impl AsRawSocket for $ty {
            fn as_raw_socket(&self) -> RawSocket {
                self.inner.as_raw_socket()
            }
        }
        impl IntoRawSocket for $ty {
            fn into_raw_socket(self) -> RawSocket {
                self.inner.into_raw_socket()
            }
        }
        impl FromRawSocket for $ty {
            /// # Safety
            /// `s` must be an open AF_HYPERV socket that nothing else owns.
            unsafe fn from_raw_socket(s: RawSocket) -> $ty {
                $ty { inner: Socket::from_raw_socket(s) }
            }
        }
        impl From<OwnedSocket> for $ty {
            fn from(s: OwnedSocket) -> $ty {
                $ty { inner: Socket::from(s) }
            }
        }
        impl From<$ty> for OwnedSocket {
            fn from(s: $ty) -> OwnedSocket {
                s.inner.into()
            }
        }
    };
}

impl_socket!(Stream);
impl_socket!(Listener);

#[cfg(test)]
mod tests {
    use windows_sys::core::GUID;
    use windows_sys::Win32::System::Hypervisor::{
        HV_GUID_BROADCAST, HV_GUID_CHILDREN, HV_GUID_LOOPBACK, HV_GUID_PARENT, HV_GUID_SILOHOST,
        HV_GUID_VSOCK_TEMPLATE, HV_GUID_ZERO, SOCKADDR_HV,
    };

    use super::*;
    use crate::{Guid, VmId};

    fn guid(g: GUID) -> Guid {
        Guid::from_fields(g.data1, g.data2, g.data3, g.data4)
    }

    #[test]
    fn well_known_ids_match_windows_sys() {
        assert_eq!(guid(HV_GUID_ZERO), VmId::ZERO.guid());
        assert_eq!(guid(HV_GUID_BROADCAST), VmId::BROADCAST.guid());
        assert_eq!(guid(HV_GUID_CHILDREN), VmId::CHILDREN.guid());
        assert_eq!(guid(HV_GUID_LOOPBACK), VmId::LOOPBACK.guid());
        assert_eq!(guid(HV_GUID_PARENT), VmId::PARENT.guid());
        assert_eq!(guid(HV_GUID_SILOHOST), VmId::SILOHOST.guid());
        assert_eq!(guid(HV_GUID_VSOCK_TEMPLATE), ServiceId::from_vsock_port(0).guid());
    }

    #[test]
    fn sockaddr_hv_layout_matches_windows_sys() {
        assert_eq!(std::mem::size_of::<SOCKADDR_HV>(), HvAddr::LEN);
        let ours = HvAddr::new(VmId::PARENT, ServiceId::from_vsock_port(19000));
        let theirs = SOCKADDR_HV {
            Family: AF_HYPERV as u16,
            Reserved: 0,
            VmId: HV_GUID_PARENT,
            ServiceId: GUID::from_u128(0x00004a38_facb_11e6_bd58_64006a7986d3),
        };
        // SAFETY: SOCKADDR_HV is plain old data of exactly HvAddr::LEN bytes.
        let bytes: [u8; HvAddr::LEN] = unsafe { std::mem::transmute(theirs) };
        assert_eq!(bytes, ours.to_bytes());
        assert_eq!(HvAddr::from_bytes(&bytes).unwrap(), ours);
    }

    /// wine (and Windows without Hyper-V) has no AF_HYPERV; on Hyper-V the socket opens.
    #[test]
    fn socket_is_created_or_refused_with_wsaeafnosupport() {
        match socket(Type::STREAM) {
            Ok(s) => {
                set_connect_timeout(&s, Duration::from_secs(1)).unwrap();
                assert_eq!(connect_timeout(&s).unwrap(), Duration::from_secs(1));
            }
            Err(e) => assert_eq!(e.raw_os_error(), Some(10047), "{e}"),
        }
    }
}
