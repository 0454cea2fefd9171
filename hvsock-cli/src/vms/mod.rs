//! The VMs this machine can talk to, found where each hypervisor keeps them, and their names
//! in endpoints (`vsock:myvm:5000`).
//!
//! Sources: the lab's running guests; on Linux the VMM processes' command lines (QEMU,
//! Firecracker, Cloud Hypervisor, crosvm, vhost-device-vsock) and libvirt's running-domain
//! XML; on Windows the Host Compute Service (Hyper-V VMs, the WSL 2 utility VM). Each source
//! that cannot be read says why, and the others still answer.

// The VMM parsers are Linux's sources; on Windows they are only tested.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod cloud_hypervisor;
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod crosvm;
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod firecracker;
#[cfg(any(windows, test))]
mod hcs;
#[cfg(target_os = "linux")]
mod lab;
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod libvirt;
mod names;
#[cfg(target_os = "linux")]
mod processes;
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod qemu;
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod vhost_device;

use std::fmt;
use std::path::PathBuf;

use hvsock::Guid;

pub use names::{vm, EndpointArg, Names};

/// How a VM is reached from here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// By vsock CID (a KVM/vhost-vsock guest, a lab guest from its own run).
    Cid(u32),
    /// By Hyper-V VM ID (found on Windows only).
    #[cfg_attr(not(windows), allow(dead_code))]
    VmId(Guid),
    /// Through its VMM's hybrid-vsock Unix socket (Firecracker, Cloud Hypervisor,
    /// vhost-device-vsock, a lab guest from this machine).
    Hybrid(PathBuf),
    /// Not yet: its CID is assigned when it starts (libvirt's `auto`).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    NoCidYet,
    /// Not from this machine (a lab's VM host: only its guests reach it).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    NotFromHere,
}

impl fmt::Display for Reach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reach::Cid(cid) => write!(f, "CID {cid}"),
            Reach::VmId(id) => write!(f, "VM ID {id}"),
            Reach::Hybrid(path) => write!(f, "hybrid {}", path.display()),
            Reach::NoCidYet => f.write_str("no CID yet (assigned at start)"),
            Reach::NotFromHere => f.write_str("not from this machine"),
        }
    }
}

/// One VM found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundVm {
    pub name: String,
    pub reach: Reach,
    /// `QEMU/KVM`, `Firecracker`, `Hyper-V`, `WSL 2`, `hvsock lab`, …
    pub hypervisor: String,
    /// `running`, … where the source says.
    pub state: Option<String>,
    /// Where the fact came from: a process, a file, the HCS.
    pub source: String,
}

/// Everything found, and the sources that could not be read.
#[derive(Default, Debug)]
pub struct Discovery {
    pub vms: Vec<FoundVm>,
    /// (source, why it is not available here)
    pub unavailable: Vec<(String, String)>,
}

/// Looks everywhere this platform keeps VMs.
pub fn discover() -> Discovery {
    let mut d = Discovery::default();
    #[cfg(target_os = "linux")]
    {
        lab::find(&mut d);
        processes::find(&mut d);
        libvirt::find(&mut d);
    }
    #[cfg(windows)]
    hcs::find(&mut d);
    d
}

/// The one VM called `name` (case-insensitive). Several of that name is an error that lists
/// them; so is none.
pub fn resolve(name: &str, d: &Discovery) -> Result<FoundVm, String> {
    let found: Vec<&FoundVm> = d.vms.iter().filter(|v| v.name.eq_ignore_ascii_case(name)).collect();
    match found[..] {
        [one] => Ok(one.clone()),
        [] => {
            let why = if d.unavailable.is_empty() {
                String::new()
            } else {
                format!(
                    " (not looked at: {})",
                    d.unavailable.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>().join(", ")
                )
            };
            Err(format!(
                "`{}` is not a VM name here: expected any, loopback, parent, children, broadcast, a VM ID GUID, a CID, or a VM `hvsock vms` lists{why}",
                hvsock::Printable::new(name)
            ))
        }
        _ => Err(format!(
            "`{}` names {} VMs: {}; use the CID, VM ID or hybrid: path instead",
            hvsock::Printable::new(name),
            found.len(),
            found.iter().map(|v| format!("{} ({})", v.reach, v.source)).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// The text after `key=` in a `key=value,key=value` option, the way QEMU, Cloud Hypervisor,
/// crosvm and vhost-device-vsock write them.
fn option<'a>(opts: &'a str, key: &str) -> Option<&'a str> {
    opts.split(',').find_map(|kv| kv.split_once('=').filter(|(k, _)| k.trim() == key).map(|(_, v)| v.trim()))
}

/// The value after a flag, given as `--flag value` or `--flag=value`; every occurrence.
fn flag_values<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == flag {
            if let Some(v) = it.next() {
                out.push(v.as_str());
            }
        } else if let Some(v) = a.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
            out.push(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(name: &str, reach: Reach, source: &str) -> FoundVm {
        FoundVm { name: name.into(), reach, hypervisor: "test".into(), state: None, source: source.into() }
    }

    #[test]
    fn names_resolve_once_or_say_why_not() {
        let d = Discovery {
            vms: vec![
                vm("web", Reach::Cid(5), "process 10 (qemu-system-x86_64)"),
                vm("db", Reach::Hybrid("/run/fc/db.sock".into()), "process 11 (firecracker)"),
                vm("twin", Reach::Cid(6), "process 12 (qemu-system-x86_64)"),
                vm("TWIN", Reach::Cid(7), "/run/libvirt/qemu/twin.xml"),
            ],
            unavailable: vec![("libvirt".into(), "permission denied".into())],
        };
        assert_eq!(resolve("WEB", &d).unwrap().reach, Reach::Cid(5));
        let e = resolve("twin", &d).unwrap_err();
        assert!(e.contains("names 2 VMs: CID 6 (process 12") && e.contains("CID 7 (/run/libvirt"), "{e}");
        let e = resolve("nope", &d).unwrap_err();
        assert!(e.contains("`nope` is not a VM name here") && e.contains("not looked at: libvirt"), "{e}");
    }

    #[test]
    fn options_and_flags_as_vmms_write_them() {
        assert_eq!(option("cid=3,socket=/tmp/v.sock", "socket"), Some("/tmp/v.sock"));
        assert_eq!(option("guest-cid=4", "cid"), None);
        let args: Vec<String> =
            ["x", "--vm", "a", "--vm=b", "--other", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(flag_values(&args, "--vm"), ["a", "b"]);
    }
}
