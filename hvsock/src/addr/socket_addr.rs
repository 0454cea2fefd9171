use std::fmt;

use crate::{AddrError, Endpoint, HvAddr, Role, Service, Vm, VsockAddr};

/// The address of a VM socket: vsock on Linux, Hyper-V on Windows.
///
/// Returned by `local_addr`/`peer_addr`/`accept`; also accepted wherever an address goes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum SocketAddr {
    /// Linux `sockaddr_vm`.
    Vsock(VsockAddr),
    /// Windows `SOCKADDR_HV`.
    Hv(HvAddr),
}

impl SocketAddr {
    /// The native sockaddr bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            SocketAddr::Vsock(a) => a.to_bytes().to_vec(),
            SocketAddr::Hv(a) => a.to_bytes().to_vec(),
        }
    }

    /// Decodes native sockaddr bytes of either family.
    pub fn from_bytes(b: &[u8]) -> Result<SocketAddr, AddrError> {
        match b.len() {
            VsockAddr::LEN => VsockAddr::from_bytes(b).map(SocketAddr::Vsock),
            HvAddr::LEN => HvAddr::from_bytes(b).map(SocketAddr::Hv),
            n => Err(AddrError::BadBytes(format!("a VM socket address is 16 or 36 bytes, got {n}"))),
        }
    }

    /// The vsock address, if this is one.
    pub fn as_vsock(&self) -> Option<&VsockAddr> {
        match self {
            SocketAddr::Vsock(a) => Some(a),
            SocketAddr::Hv(_) => None,
        }
    }

    /// The Hyper-V address, if this is one.
    pub fn as_hv(&self) -> Option<&HvAddr> {
        match self {
            SocketAddr::Hv(a) => Some(a),
            SocketAddr::Vsock(_) => None,
        }
    }
}

impl fmt::Display for SocketAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketAddr::Vsock(a) => a.fmt(f),
            SocketAddr::Hv(a) => a.fmt(f),
        }
    }
}

impl From<VsockAddr> for SocketAddr {
    fn from(a: VsockAddr) -> SocketAddr {
        SocketAddr::Vsock(a)
    }
}

impl From<HvAddr> for SocketAddr {
    fn from(a: HvAddr) -> SocketAddr {
        SocketAddr::Hv(a)
    }
}

/// Anything that names a VM socket address: an endpoint string, an [`Endpoint`], a
/// [`VsockAddr`], an [`HvAddr`] or a [`SocketAddr`] — like std's `ToSocketAddrs`.
///
/// The result is this platform's native address; the other platform's addresses are mapped by
/// the names table (so `HvAddr` with `VmId::PARENT` becomes CID 2 on Linux).
pub trait ToSocketAddr {
    /// The native address for this end of a connection.
    fn to_socket_addr(&self, role: Role) -> Result<SocketAddr, AddrError>;
}

impl ToSocketAddr for SocketAddr {
    fn to_socket_addr(&self, role: Role) -> Result<SocketAddr, AddrError> {
        crate::sys::native(*self, role)
    }
}

impl ToSocketAddr for VsockAddr {
    fn to_socket_addr(&self, role: Role) -> Result<SocketAddr, AddrError> {
        crate::sys::native(SocketAddr::Vsock(*self), role)
    }
}

impl ToSocketAddr for HvAddr {
    fn to_socket_addr(&self, role: Role) -> Result<SocketAddr, AddrError> {
        crate::sys::native(SocketAddr::Hv(*self), role)
    }
}

impl ToSocketAddr for Endpoint {
    fn to_socket_addr(&self, role: Role) -> Result<SocketAddr, AddrError> {
        self.socket_addr(role)
    }
}

/// A VM and a service, like std's `(IpAddr, u16)`.
impl ToSocketAddr for (Vm, Service) {
    fn to_socket_addr(&self, role: Role) -> Result<SocketAddr, AddrError> {
        crate::sys::resolve(self.0, self.1, role)
    }
}

impl ToSocketAddr for str {
    fn to_socket_addr(&self, role: Role) -> Result<SocketAddr, AddrError> {
        self.parse::<Endpoint>()?.socket_addr(role)
    }
}

impl ToSocketAddr for String {
    fn to_socket_addr(&self, role: Role) -> Result<SocketAddr, AddrError> {
        self.as_str().to_socket_addr(role)
    }
}

impl<T: ToSocketAddr + ?Sized> ToSocketAddr for &T {
    fn to_socket_addr(&self, role: Role) -> Result<SocketAddr, AddrError> {
        (**self).to_socket_addr(role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ServiceId, VmId};

    #[test]
    fn bytes_round_trip_by_length() {
        let v = SocketAddr::Vsock(VsockAddr::new(3, 22));
        let h = SocketAddr::Hv(HvAddr::new(VmId::CHILDREN, ServiceId::from_vsock_port(22)));
        assert_eq!(SocketAddr::from_bytes(&v.to_bytes()).unwrap(), v);
        assert_eq!(SocketAddr::from_bytes(&h.to_bytes()).unwrap(), h);
        assert!(SocketAddr::from_bytes(&[0; 20]).unwrap_err().to_string().contains("got 20"));
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn hyper_v_addresses_map_to_vsock_on_linux() {
        let h = HvAddr::new(VmId::PARENT, ServiceId::from_vsock_port(19000));
        assert_eq!(h.to_socket_addr(Role::Connect).unwrap(), SocketAddr::Vsock(VsockAddr::new(2, 19000)));
        assert_eq!(
            "hv:any:19000".to_socket_addr(Role::Bind).unwrap(),
            SocketAddr::Vsock(VsockAddr::new(u32::MAX, 19000))
        );
        let odd = HvAddr::new(VmId::SILOHOST, ServiceId::default());
        assert!(odd.to_socket_addr(Role::Connect).is_err());
    }

    #[test]
    #[cfg(windows)]
    fn vsock_names_map_to_hyper_v_on_windows() {
        assert_eq!(
            "vsock:lo:19000".to_socket_addr(Role::Connect).unwrap(),
            SocketAddr::Hv(HvAddr::new(VmId::LOOPBACK, ServiceId::from_vsock_port(19000)))
        );
        assert!(VsockAddr::new(3, 1)
            .to_socket_addr(Role::Connect)
            .unwrap_err()
            .to_string()
            .contains("not by CID"));
    }
}
