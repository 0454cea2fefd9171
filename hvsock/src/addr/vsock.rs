use std::fmt;

use crate::AddrError;

/// A Linux vsock address, `struct sockaddr_vm`: a context ID (CID) and a port.
///
/// ```
/// use hvsock::VsockAddr;
/// let addr = VsockAddr::new(VsockAddr::CID_LOCAL, 19000);
/// assert_eq!(addr.to_string(), "vsock:1:19000");
/// assert_eq!(VsockAddr::from_bytes(&addr.to_bytes()).unwrap(), addr);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct VsockAddr {
    /// The context ID: which machine.
    pub cid: u32,
    /// The port.
    pub port: u32,
    /// `svm_flags`, e.g. [`VsockAddr::FLAG_TO_HOST`].
    pub flags: u8,
}

impl VsockAddr {
    /// `AF_VSOCK`.
    pub const FAMILY: u16 = 40;
    /// `sizeof(struct sockaddr_vm)`.
    pub const LEN: usize = 16;
    /// `VMADDR_CID_ANY`: bind to every local CID.
    pub const CID_ANY: u32 = u32::MAX;
    /// `VMADDR_CID_HYPERVISOR`.
    pub const CID_HYPERVISOR: u32 = 0;
    /// `VMADDR_CID_LOCAL`: this machine, through the loopback transport.
    pub const CID_LOCAL: u32 = 1;
    /// `VMADDR_CID_HOST`: the host, seen from a guest.
    pub const CID_HOST: u32 = 2;
    /// `VMADDR_PORT_ANY`: let the kernel pick a port.
    pub const PORT_ANY: u32 = u32::MAX;
    /// `VMADDR_FLAG_TO_HOST`: route to the host even when the CID is a sibling's (nested VMs).
    pub const FLAG_TO_HOST: u8 = 0x01;

    /// An address with no flags.
    pub const fn new(cid: u32, port: u32) -> VsockAddr {
        VsockAddr { cid, port, flags: 0 }
    }

    /// The native `sockaddr_vm` bytes: u16 family 40, u16 reserved, u32 port, u32 cid,
    /// u8 flags, three zero bytes; integers in the machine's byte order, as the kernel has them.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0..2].copy_from_slice(&Self::FAMILY.to_ne_bytes());
        b[4..8].copy_from_slice(&self.port.to_ne_bytes());
        b[8..12].copy_from_slice(&self.cid.to_ne_bytes());
        b[12] = self.flags;
        b
    }

    /// Decodes `sockaddr_vm` bytes; the length and family must be right.
    pub fn from_bytes(b: &[u8]) -> Result<VsockAddr, AddrError> {
        if b.len() != Self::LEN {
            return Err(AddrError::BadBytes(format!(
                "sockaddr_vm must be {} bytes, got {}",
                Self::LEN,
                b.len()
            )));
        }
        let family = u16::from_ne_bytes([b[0], b[1]]);
        if family != Self::FAMILY {
            return Err(AddrError::BadBytes(format!(
                "sockaddr_vm family must be {} (AF_VSOCK), got {family}",
                Self::FAMILY
            )));
        }
        let u32_at = |at: usize| u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        Ok(VsockAddr { cid: u32_at(8), port: u32_at(4), flags: b[12] })
    }
}

impl fmt::Display for VsockAddr {
    /// `vsock:CID:PORT` as an endpoint string; `VMADDR_CID_ANY` shows as `any`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cid {
            Self::CID_ANY => write!(f, "vsock:any:{}", self.port),
            cid => write!(f, "vsock:{}:{}", cid, self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_endian = "little")]
    fn golden_bytes() {
        let addr = VsockAddr { cid: 2, port: 19000, flags: VsockAddr::FLAG_TO_HOST };
        let want: [u8; 16] = [40, 0, 0, 0, 0x38, 0x4a, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0];
        assert_eq!(addr.to_bytes(), want);
        assert_eq!(VsockAddr::from_bytes(&want).unwrap(), addr);
    }

    #[test]
    fn rejects_wrong_length_and_family() {
        let b = VsockAddr::new(1, 1).to_bytes();
        assert!(VsockAddr::from_bytes(&b[..12]).unwrap_err().to_string().contains("16 bytes, got 12"));
        let hv = crate::HvAddr::new(crate::VmId::LOOPBACK, crate::ServiceId::default()).to_bytes();
        assert!(VsockAddr::from_bytes(&hv[..16]).unwrap_err().to_string().contains("got 34"));
    }

    #[test]
    fn any_cid_displays_by_name() {
        assert_eq!(VsockAddr::new(VsockAddr::CID_ANY, 5).to_string(), "vsock:any:5");
        assert_eq!(VsockAddr::new(3, 5).to_string(), "vsock:3:5");
    }
}
