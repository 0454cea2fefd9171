use std::io;
use std::os::windows::io::{
    AsRawSocket, AsSocket, BorrowedSocket, FromRawSocket, IntoRawSocket, OwnedSocket, RawSocket,
};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use windows_sys::Win32::Networking::WinSock::{setsockopt, SOCKET, SOCKET_ERROR};

use crate::{AddrError, HvAddr, Listener, Role, Service, SocketAddr, Stream, Vm};

/// `AF_HYPERV`.
const AF_HYPERV: i32 = 34;
/// `HV_PROTOCOL_RAW`: the only Hyper-V socket protocol, also the option level.
const HV_PROTOCOL_RAW: i32 = 1;
/// `HVSOCKET_CONNECT_TIMEOUT`, milliseconds.
const HVSOCKET_CONNECT_TIMEOUT: i32 = 0x01;
/// The largest `HVSOCKET_CONNECT_TIMEOUT` Windows takes.
const HVSOCKET_CONNECT_TIMEOUT_MAX: u32 = 300_000;

pub(crate) fn resolve(vm: Vm, service: Service, role: Role) -> Result<SocketAddr, AddrError> {
    Ok(SocketAddr::Hv(HvAddr::new(vm.to_vm_id(role)?, service.to_service_id()?)))
}

pub(crate) fn native(addr: SocketAddr, role: Role) -> Result<SocketAddr, AddrError> {
    match addr {
        SocketAddr::Hv(_) => Ok(addr),
        SocketAddr::Vsock(v) => resolve(Vm::Cid(v.cid), Service::Port(v.port), role),
    }
}

pub(crate) fn socket(ty: Type) -> io::Result<Socket> {
    Socket::new(Domain::from(AF_HYPERV), ty, Some(Protocol::from(HV_PROTOCOL_RAW)))
}

/// Lets a blocking connect wait as long as the caller asked (Windows caps it at 300 s).
pub(crate) fn set_connect_timeout(socket: &Socket, timeout: Duration) -> io::Result<()> {
    let ms: u32 = timeout.as_millis().min(HVSOCKET_CONNECT_TIMEOUT_MAX as u128) as u32;
    // SAFETY: a valid socket and a u32 of the size we pass.
    let rc = unsafe {
        setsockopt(
            socket.as_raw_socket() as SOCKET,
            HV_PROTOCOL_RAW,
            HVSOCKET_CONNECT_TIMEOUT,
            (&ms as *const u32).cast(),
            std::mem::size_of::<u32>() as i32,
        )
    };
    if rc == SOCKET_ERROR {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
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
