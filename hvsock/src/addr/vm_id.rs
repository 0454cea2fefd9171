use std::fmt;
use std::str::FromStr;

use crate::{AddrError, Guid};

/// A Hyper-V VM ID: the GUID half of a `SOCKADDR_HV` that says which partition.
///
/// The well-known IDs are wildcards a listener binds to, or relative names a client connects to.
///
/// ```
/// use hvsock::VmId;
/// assert_eq!(VmId::PARENT.to_string(), "a42e7cda-d03f-480c-9cc2-a4de20abb878");
/// assert_eq!(VmId::LOOPBACK.well_known_name(), Some("loopback"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct VmId(Guid);

impl VmId {
    /// `HV_GUID_ZERO`: a listener bound to it accepts from all partitions.
    pub const ZERO: VmId = VmId(Guid::ZERO);
    /// `HV_GUID_WILDCARD`: the same value as [`VmId::ZERO`].
    pub const WILDCARD: VmId = VmId::ZERO;
    /// `HV_GUID_BROADCAST`: all bits set.
    pub const BROADCAST: VmId = VmId(Guid::from_u128(u128::MAX));
    /// `HV_GUID_CHILDREN`: a listener bound to it accepts from this partition's child VMs.
    pub const CHILDREN: VmId = VmId(Guid::from_u128(0x90db8b89_0d35_4f79_8ce9_49ea0ac8b7cd));
    /// `HV_GUID_LOOPBACK`: connects to the connector's own partition.
    pub const LOOPBACK: VmId = VmId(Guid::from_u128(0xe0e16197_dd56_4a10_9195_5ee7a155a838));
    /// `HV_GUID_PARENT`: connects to the connector's parent partition.
    pub const PARENT: VmId = VmId(Guid::from_u128(0xa42e7cda_d03f_480c_9cc2_a4de20abb878));
    /// `HV_GUID_SILOHOST`: the host of a Windows Server container silo.
    pub const SILOHOST: VmId = VmId(Guid::from_u128(0x36bd0c5c_7276_4223_88ba_7d03b654c568));

    /// Wraps a GUID.
    pub const fn from_guid(g: Guid) -> VmId {
        VmId(g)
    }

    /// The GUID.
    pub const fn guid(&self) -> Guid {
        self.0
    }

    /// `wildcard`, `broadcast`, `children`, `loopback`, `parent` or `silohost` for the
    /// well-known IDs, `None` for any other.
    pub fn well_known_name(&self) -> Option<&'static str> {
        [
            (VmId::WILDCARD, "wildcard"),
            (VmId::BROADCAST, "broadcast"),
            (VmId::CHILDREN, "children"),
            (VmId::LOOPBACK, "loopback"),
            (VmId::PARENT, "parent"),
            (VmId::SILOHOST, "silohost"),
        ]
        .into_iter()
        .find(|(id, _)| id == self)
        .map(|(_, name)| name)
    }
}

impl From<Guid> for VmId {
    fn from(g: Guid) -> VmId {
        VmId(g)
    }
}

impl FromStr for VmId {
    type Err = AddrError;
    fn from_str(s: &str) -> Result<VmId, AddrError> {
        s.parse().map(VmId)
    }
}

impl fmt::Display for VmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for VmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.well_known_name() {
            Some(name) => write!(f, "VmId({}: {})", name, self.0),
            None => write!(f, "VmId({})", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_ids_match_the_published_values() {
        let cases = [
            (VmId::ZERO, "00000000-0000-0000-0000-000000000000"),
            (VmId::BROADCAST, "ffffffff-ffff-ffff-ffff-ffffffffffff"),
            (VmId::CHILDREN, "90db8b89-0d35-4f79-8ce9-49ea0ac8b7cd"),
            (VmId::LOOPBACK, "e0e16197-dd56-4a10-9195-5ee7a155a838"),
            (VmId::PARENT, "a42e7cda-d03f-480c-9cc2-a4de20abb878"),
            (VmId::SILOHOST, "36bd0c5c-7276-4223-88ba-7d03b654c568"),
        ];
        for (id, text) in cases {
            assert_eq!(id.to_string(), text);
            assert_eq!(text.parse::<VmId>().unwrap(), id);
        }
        assert_eq!(VmId::WILDCARD, VmId::ZERO);
    }

    #[test]
    fn loopback_golden_bytes() {
        assert_eq!(
            VmId::LOOPBACK.guid().to_windows_bytes(),
            [0x97, 0x61, 0xe1, 0xe0, 0x56, 0xdd, 0x10, 0x4a, 0x91, 0x95, 0x5e, 0xe7, 0xa1, 0x55, 0xa8, 0x38]
        );
    }

    #[test]
    fn names_only_the_well_known() {
        assert_eq!(VmId::CHILDREN.well_known_name(), Some("children"));
        assert_eq!(VmId::SILOHOST.well_known_name(), Some("silohost"));
        let vm: VmId = "b50f20e6-cf19-1796-ba60-d9cfe2d8fe29".parse().unwrap();
        assert_eq!(vm.well_known_name(), None);
    }
}
