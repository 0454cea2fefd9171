use std::fmt;

use crate::{AddrError, Guid, ServiceId, VmId};

/// A Hyper-V socket address, `SOCKADDR_HV`: which partition ([`VmId`]) and which service
/// ([`ServiceId`]).
///
/// ```
/// use hvsock::{HvAddr, ServiceId, VmId};
/// let addr = HvAddr::new(VmId::PARENT, ServiceId::from_vsock_port(19000));
/// let bytes = addr.to_bytes();
/// assert_eq!(bytes.len(), HvAddr::LEN);
/// assert_eq!(HvAddr::from_bytes(&bytes).unwrap(), addr);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct HvAddr {
    /// Which partition.
    pub vm_id: VmId,
    /// Which service in it.
    pub service_id: ServiceId,
}

impl HvAddr {
    /// `AF_HYPERV`.
    pub const FAMILY: u16 = 34;
    /// `sizeof(SOCKADDR_HV)`: family, reserved, two GUIDs.
    pub const LEN: usize = 36;

    /// An address from its two IDs.
    pub const fn new(vm_id: VmId, service_id: ServiceId) -> HvAddr {
        HvAddr { vm_id, service_id }
    }

    /// The native `SOCKADDR_HV` bytes: u16 family 34, u16 reserved 0, then the VM ID and the
    /// service ID in Windows GUID layout (Windows runs little-endian only).
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0..2].copy_from_slice(&Self::FAMILY.to_le_bytes());
        b[4..20].copy_from_slice(&self.vm_id.guid().to_windows_bytes());
        b[20..36].copy_from_slice(&self.service_id.guid().to_windows_bytes());
        b
    }

    /// Decodes `SOCKADDR_HV` bytes; the length and family must be right.
    pub fn from_bytes(b: &[u8]) -> Result<HvAddr, AddrError> {
        if b.len() != Self::LEN {
            return Err(AddrError::BadBytes(format!(
                "SOCKADDR_HV must be {} bytes, got {}",
                Self::LEN,
                b.len()
            )));
        }
        let family = u16::from_le_bytes([b[0], b[1]]);
        if family != Self::FAMILY {
            return Err(AddrError::BadBytes(format!(
                "SOCKADDR_HV family must be {} (AF_HYPERV), got {family}",
                Self::FAMILY
            )));
        }
        let guid = |at: usize| Guid::from_windows_bytes(b[at..at + 16].try_into().expect("16 bytes"));
        Ok(HvAddr::new(VmId::from_guid(guid(4)), ServiceId::from_guid(guid(20))))
    }
}

impl fmt::Display for HvAddr {
    /// `hv:VMID:SERVICE`, with the well-known VM IDs by name, as an endpoint string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.vm_id.well_known_name() {
            Some(name) => write!(f, "hv:{}:{}", name, self.service_id),
            None => write!(f, "hv:{}:{}", self.vm_id, self.service_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_bytes() {
        let addr = HvAddr::new(VmId::LOOPBACK, ServiceId::from_vsock_port(19000));
        let want: [u8; 36] = [
            0x22, 0x00, 0x00, 0x00, // family 34, reserved
            0x97, 0x61, 0xe1, 0xe0, 0x56, 0xdd, 0x10, 0x4a, 0x91, 0x95, 0x5e, 0xe7, 0xa1, 0x55, 0xa8, 0x38,
            0x38, 0x4a, 0x00, 0x00, 0xcb, 0xfa, 0xe6, 0x11, 0xbd, 0x58, 0x64, 0x00, 0x6a, 0x79, 0x86, 0xd3,
        ];
        assert_eq!(addr.to_bytes(), want);
        assert_eq!(HvAddr::from_bytes(&want).unwrap(), addr);
    }

    #[test]
    fn rejects_wrong_length_and_family() {
        let mut b = HvAddr::new(VmId::PARENT, ServiceId::default()).to_bytes();
        assert!(HvAddr::from_bytes(&b[..35]).unwrap_err().to_string().contains("36 bytes, got 35"));
        b[0] = 40;
        assert!(HvAddr::from_bytes(&b).unwrap_err().to_string().contains("got 40"));
    }

    #[test]
    fn displays_as_an_endpoint() {
        let addr = HvAddr::new(VmId::PARENT, ServiceId::from_vsock_port(19000));
        assert_eq!(addr.to_string(), "hv:parent:00004a38-facb-11e6-bd58-64006a7986d3");
    }
}
