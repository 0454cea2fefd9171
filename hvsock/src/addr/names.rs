//! The platform-neutral names of the command line, and what each means on each platform.
//!
//! | name | Hyper-V VM ID | Linux vsock CID |
//! |---|---|---|
//! | any, wildcard, zero | `HV_GUID_ZERO` | bind: `VMADDR_CID_ANY`; connect: error |
//! | lo, loopback | `HV_GUID_LOOPBACK` | `VMADDR_CID_LOCAL` (1) |
//! | parent, host | `HV_GUID_PARENT` | `VMADDR_CID_HOST` (2) |
//! | child, children | `HV_GUID_CHILDREN` | bind: the host's own CID (2); connect: error |
//! | broadcast | `HV_GUID_BROADCAST` | error |
//! | a GUID | that GUID | error |
//! | a number | error | that CID |

use std::fmt;
use std::str::FromStr;

use crate::{AddrError, Guid, ServiceId, VmId, VsockAddr};

/// Which end of a connection an address is for; some names mean different things at each end.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    /// A listener's local address.
    Bind,
    /// The address a client connects to.
    Connect,
}

/// A VM as named on the command line: a well-known name, a VM ID GUID or a vsock CID.
///
/// ```
/// use hvsock::{Role, Vm, VmId};
/// let vm: Vm = "parent".parse().unwrap();
/// assert_eq!(vm.to_cid(Role::Connect).unwrap(), 2);
/// assert_eq!(vm.to_vm_id(Role::Connect).unwrap(), VmId::PARENT);
/// assert!("any".parse::<Vm>().unwrap().to_cid(Role::Connect).is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Vm {
    /// `any`, `wildcard`, `zero`.
    Any,
    /// `lo`, `loopback`.
    Loopback,
    /// `parent`, `host`.
    Parent,
    /// `child`, `children`.
    Children,
    /// `broadcast`.
    Broadcast,
    /// Any other VM ID (well-known GUIDs parse to their names).
    Id(VmId),
    /// A vsock CID.
    Cid(u32),
}

impl Vm {
    /// The vsock CID this name stands for, at this end of a connection.
    pub fn to_cid(self, role: Role) -> Result<u32, AddrError> {
        let no = |why| Err(AddrError::NoMapping { name: self.to_string(), why });
        match (self, role) {
            (Vm::Any, Role::Bind) => Ok(VsockAddr::CID_ANY),
            (Vm::Any, Role::Connect) => {
                no("only a listener can bind to any; to connect, name a VM (lo, parent or a CID)")
            }
            (Vm::Loopback, _) => Ok(VsockAddr::CID_LOCAL),
            (Vm::Parent, _) => Ok(VsockAddr::CID_HOST),
            (Vm::Children, Role::Bind) => Ok(VsockAddr::CID_HOST),
            (Vm::Children, Role::Connect) => {
                no("only a listener can bind to children; to connect to a child VM, give its CID")
            }
            (Vm::Broadcast, _) => no("vsock has no broadcast address"),
            (Vm::Id(_), _) => no("vsock addresses VMs by CID, not by VM ID GUID"),
            (Vm::Cid(cid), _) => Ok(cid),
        }
    }

    /// The Hyper-V VM ID this name stands for, at this end of a connection.
    pub fn to_vm_id(self, _role: Role) -> Result<VmId, AddrError> {
        match self {
            Vm::Any => Ok(VmId::WILDCARD),
            Vm::Loopback => Ok(VmId::LOOPBACK),
            Vm::Parent => Ok(VmId::PARENT),
            Vm::Children => Ok(VmId::CHILDREN),
            Vm::Broadcast => Ok(VmId::BROADCAST),
            Vm::Id(id) => Ok(id),
            Vm::Cid(_) => Err(AddrError::NoMapping {
                name: self.to_string(),
                why: "Hyper-V sockets address VMs by VM ID GUID, not by CID",
            }),
        }
    }
}

impl From<VmId> for Vm {
    /// The well-known IDs become their names, so they map to vsock too.
    fn from(id: VmId) -> Vm {
        match id {
            VmId::WILDCARD => Vm::Any,
            VmId::LOOPBACK => Vm::Loopback,
            VmId::PARENT => Vm::Parent,
            VmId::CHILDREN => Vm::Children,
            VmId::BROADCAST => Vm::Broadcast,
            id => Vm::Id(id),
        }
    }
}

impl FromStr for Vm {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Vm, AddrError> {
        let vm = match s.to_ascii_lowercase().as_str() {
            "any" | "wildcard" | "zero" => Vm::Any,
            "lo" | "loopback" => Vm::Loopback,
            "parent" | "host" => Vm::Parent,
            "child" | "children" => Vm::Children,
            "broadcast" => Vm::Broadcast,
            _ => {
                if let Some(cid) = parse_number(s) {
                    Vm::Cid(cid)
                } else if let Ok(id) = s.parse::<VmId>() {
                    Vm::from(id)
                } else {
                    return Err(AddrError::BadVm(s.to_string()));
                }
            }
        };
        Ok(vm)
    }
}

impl fmt::Display for Vm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Vm::Any => f.write_str("any"),
            Vm::Loopback => f.write_str("loopback"),
            Vm::Parent => f.write_str("parent"),
            Vm::Children => f.write_str("children"),
            Vm::Broadcast => f.write_str("broadcast"),
            Vm::Id(id) => write!(f, "{id}"),
            Vm::Cid(cid) => write!(f, "{cid}"),
        }
    }
}

/// A service as named on the command line: a port number or a service GUID.
///
/// ```
/// use hvsock::Service;
/// let s: Service = "19000".parse().unwrap();
/// assert_eq!(s.to_service_id().to_string(), "00004a38-facb-11e6-bd58-64006a7986d3");
/// let g: Service = "00004a38-facb-11e6-bd58-64006a7986d3".parse().unwrap();
/// assert_eq!(g.to_port().unwrap(), 19000);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Service {
    /// A vsock port.
    Port(u32),
    /// A Hyper-V service ID.
    Id(ServiceId),
}

impl Service {
    /// The Hyper-V socket wildcards article's service: port 19000, `00004a38-facb-11e6-bd58-64006a7986d3`.
    pub const DEFAULT: Service = Service::Port(19000);

    /// The vsock port: the number itself, or the port a template GUID carries.
    pub fn to_port(self) -> Result<u32, AddrError> {
        match self {
            Service::Port(p) => Ok(p),
            Service::Id(id) => id.vsock_port().ok_or(AddrError::NotTemplate(id)),
        }
    }

    /// The Hyper-V service ID: the GUID itself, or the template GUID for a port.
    pub fn to_service_id(self) -> ServiceId {
        match self {
            Service::Port(p) => ServiceId::from_vsock_port(p),
            Service::Id(id) => id,
        }
    }
}

impl Default for Service {
    fn default() -> Service {
        Service::DEFAULT
    }
}

impl FromStr for Service {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Service, AddrError> {
        if let Some(port) = parse_number(s) {
            return Ok(Service::Port(port));
        }
        if let Ok(g) = s.parse::<Guid>() {
            return Ok(Service::Id(ServiceId::from_guid(g)));
        }
        // On Windows a registered service's ElementName names it too.
        crate::sys::service_by_name(s).map(Service::Id).ok_or_else(|| AddrError::BadService(s.to_string()))
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Service::Port(p) => write!(f, "{p}"),
            Service::Id(id) => write!(f, "{id}"),
        }
    }
}

/// Decimal, or hex with `0x` (ports are often written as in the template GUID).
fn parse_number(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
            u32::from_str_radix(hex, 16).ok()
        }
        Some(_) => None,
        None if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) => s.parse().ok(),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(s: &str) -> Vm {
        s.parse().unwrap()
    }

    #[test]
    fn every_spelling_of_every_name() {
        for (names, want) in [
            (&["any", "wildcard", "zero", "ANY", "Wildcard"][..], Vm::Any),
            (&["lo", "loopback", "LOOPBACK"][..], Vm::Loopback),
            (&["parent", "host", "Host"][..], Vm::Parent),
            (&["child", "children"][..], Vm::Children),
            (&["broadcast"][..], Vm::Broadcast),
        ] {
            for n in names {
                assert_eq!(vm(n), want, "{n}");
            }
        }
    }

    #[test]
    fn numbers_and_guids() {
        assert_eq!(vm("3"), Vm::Cid(3));
        assert_eq!(vm("0x10"), Vm::Cid(16));
        assert_eq!(vm("4294967295"), Vm::Cid(u32::MAX));
        assert_eq!(vm("a42e7cda-d03f-480c-9cc2-a4de20abb878"), Vm::Parent);
        assert_eq!(vm("{00000000-0000-0000-0000-000000000000}"), Vm::Any);
        let other = "b50f20e6-cf19-1796-ba60-d9cfe2d8fe29";
        assert_eq!(vm(other), Vm::Id(other.parse().unwrap()));
        assert_eq!(vm(other).to_string(), other);
    }

    #[test]
    fn bad_vm_names_say_what_is_accepted() {
        for s in ["", "parents", "4294967296", "-1", "0x", "1.5", "b50f20e6-cf19"] {
            let err = s.parse::<Vm>().unwrap_err();
            assert_eq!(err, AddrError::BadVm(s.to_string()));
            assert!(err.to_string().contains("expected any, loopback, parent"), "{err}");
        }
    }

    #[test]
    fn linux_table() {
        use Role::*;
        let ok = |v: &str, r| vm(v).to_cid(r).unwrap();
        let err = |v: &str, r| vm(v).to_cid(r).unwrap_err().to_string();
        assert_eq!(ok("any", Bind), u32::MAX);
        assert!(err("any", Connect).contains("only a listener can bind to any"));
        assert_eq!(ok("lo", Bind), 1);
        assert_eq!(ok("lo", Connect), 1);
        assert_eq!(ok("parent", Bind), 2);
        assert_eq!(ok("host", Connect), 2);
        assert_eq!(ok("children", Bind), 2);
        assert!(err("children", Connect).contains("give its CID"));
        assert!(err("broadcast", Bind).contains("no broadcast"));
        assert!(err("broadcast", Connect).contains("no broadcast"));
        let guid = "b50f20e6-cf19-1796-ba60-d9cfe2d8fe29";
        assert!(err(guid, Connect).starts_with(guid));
        assert!(err(guid, Connect).contains("by CID, not by VM ID GUID"));
        assert_eq!(ok("7", Connect), 7);
        assert_eq!(ok("7", Bind), 7);
    }

    #[test]
    fn windows_table() {
        use Role::*;
        for r in [Bind, Connect] {
            assert_eq!(vm("any").to_vm_id(r).unwrap(), VmId::ZERO);
            assert_eq!(vm("lo").to_vm_id(r).unwrap(), VmId::LOOPBACK);
            assert_eq!(vm("host").to_vm_id(r).unwrap(), VmId::PARENT);
            assert_eq!(vm("child").to_vm_id(r).unwrap(), VmId::CHILDREN);
            assert_eq!(vm("broadcast").to_vm_id(r).unwrap(), VmId::BROADCAST);
            let guid = "b50f20e6-cf19-1796-ba60-d9cfe2d8fe29";
            assert_eq!(vm(guid).to_vm_id(r).unwrap().to_string(), guid);
            let e = vm("3").to_vm_id(r).unwrap_err().to_string();
            assert!(e.starts_with("3: ") && e.contains("not by CID"), "{e}");
        }
    }

    #[test]
    fn services() {
        let s = |t: &str| t.parse::<Service>();
        assert_eq!(s("19000").unwrap(), Service::Port(19000));
        assert_eq!(s("0x4A38").unwrap(), Service::Port(19000));
        assert_eq!(s("00004a38-facb-11e6-bd58-64006a7986d3").unwrap().to_port().unwrap(), 19000);
        assert_eq!(Service::default().to_service_id().to_string(), "00004a38-facb-11e6-bd58-64006a7986d3");
        let other = s("9866C7BC-0C89-4CB0-9427-5B526D1AE83B").unwrap();
        assert_eq!(other.to_service_id().to_string(), "9866c7bc-0c89-4cb0-9427-5b526d1ae83b");
        assert!(matches!(other.to_port(), Err(AddrError::NotTemplate(_))));
        assert!(other.to_port().unwrap_err().to_string().contains("not a VSOCK template GUID"));
        assert_eq!(Service::Port(u32::MAX).to_service_id().vsock_port(), Some(u32::MAX));
        for bad in ["", "port", "-5", "4294967296", "19000x"] {
            assert_eq!(s(bad), Err(AddrError::BadService(bad.to_string())));
        }
    }
}
