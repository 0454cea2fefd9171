use std::fmt;
use std::str::FromStr;

use crate::{AddrError, Guid};

/// The fixed tail of the VSOCK template, `xxxxxxxx-facb-11e6-bd58-64006a7986d3`.
const TEMPLATE_D2: u16 = 0xfacb;
const TEMPLATE_D3: u16 = 0x11e6;
const TEMPLATE_D4: [u8; 8] = [0xbd, 0x58, 0x64, 0x00, 0x6a, 0x79, 0x86, 0xd3];

/// A Hyper-V service ID: the GUID half of a `SOCKADDR_HV` that says which service.
///
/// Linux guests on Hyper-V reach a service whose ID follows the VSOCK template
/// `xxxxxxxx-facb-11e6-bd58-64006a7986d3` as AF_VSOCK port `xxxxxxxx`.
///
/// ```
/// use hvsock::ServiceId;
/// let id = ServiceId::from_vsock_port(19000);
/// assert_eq!(id.to_string(), "00004a38-facb-11e6-bd58-64006a7986d3");
/// assert_eq!(id.vsock_port(), Some(19000));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ServiceId(Guid);

impl ServiceId {
    /// The highest port a Linux guest can listen on over Hyper-V (hv_sock): ports above it are
    /// the ephemeral ports hv_sock gives connecting sockets. Their template GUIDs are real
    /// (a connection from a Linux guest shows one as its peer's service ID), so every port maps.
    pub const MAX_LISTEN_PORT: u32 = 0x7FFF_FFFF;

    /// Wraps a GUID.
    pub const fn from_guid(g: Guid) -> ServiceId {
        ServiceId(g)
    }

    /// The GUID.
    pub const fn guid(&self) -> Guid {
        self.0
    }

    /// The template GUID for a vsock port.
    pub fn from_vsock_port(port: u32) -> ServiceId {
        ServiceId(Guid::from_fields(port, TEMPLATE_D2, TEMPLATE_D3, TEMPLATE_D4))
    }

    /// The vsock port when this is a template GUID, `None` otherwise.
    pub fn vsock_port(&self) -> Option<u32> {
        let (d1, d2, d3, d4) = self.0.fields();
        let templated = d2 == TEMPLATE_D2 && d3 == TEMPLATE_D3 && d4 == TEMPLATE_D4;
        templated.then_some(d1)
    }
}

impl From<Guid> for ServiceId {
    fn from(g: Guid) -> ServiceId {
        ServiceId(g)
    }
}

impl FromStr for ServiceId {
    type Err = AddrError;
    fn from_str(s: &str) -> Result<ServiceId, AddrError> {
        s.parse().map(ServiceId)
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.vsock_port() {
            Some(port) => write!(f, "ServiceId({} = port {})", self.0, port),
            None => write!(f, "ServiceId({})", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_19000_golden() {
        let id = ServiceId::from_vsock_port(19000);
        assert_eq!(id.to_string(), "00004a38-facb-11e6-bd58-64006a7986d3");
        assert_eq!(
            id.guid().to_windows_bytes(),
            [0x38, 0x4a, 0x00, 0x00, 0xcb, 0xfa, 0xe6, 0x11, 0xbd, 0x58, 0x64, 0x00, 0x6a, 0x79, 0x86, 0xd3]
        );
    }

    #[test]
    fn template_round_trips_at_the_edges() {
        // Above 0x7FFFFFFF: hv_sock's ephemeral ports, real peers' service IDs.
        for port in [0, 1, 22, 19000, 0x7FFF_FFFF, 0x8000_0000, 0x8000_1234, u32::MAX] {
            assert_eq!(ServiceId::from_vsock_port(port).vsock_port(), Some(port));
        }
        assert_eq!(
            "80000000-facb-11e6-bd58-64006a7986d3".parse::<ServiceId>().unwrap().vsock_port(),
            Some(0x8000_0000)
        );
    }

    #[test]
    fn non_template_guids_have_no_port() {
        for s in ["9866c7bc-0c89-4cb0-9427-5b526d1ae83b", "00004a38-facb-11e6-bd58-64006a7986d4"] {
            assert_eq!(s.parse::<ServiceId>().unwrap().vsock_port(), None, "{s}");
        }
        assert_eq!(
            "00004A38-FACB-11E6-BD58-64006A7986D3".parse::<ServiceId>().unwrap().vsock_port(),
            Some(19000)
        );
    }
}
