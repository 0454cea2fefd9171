//! What this machine offers for VM sockets: the facts `hvsock info` prints.
//!
//! Linux: `transports` (and which carry SOCK_SEQPACKET: `seqpacket`), `hypervisor` and
//! `local_cid`. Windows: `vm_id` (a
//! Hyper-V guest's own ID) and `providers` (the Winsock catalog's AF_HYPERV entries). Where a
//! piece is missing the answer is empty, not an error.

use crate::Guid;

/// A Winsock catalog entry, as `netsh winsock show catalog` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provider {
    /// `szProtocol`, e.g. `Hyper-V RAW`.
    pub name: String,
    /// `ProviderId`.
    pub provider_id: Guid,
    /// `iAddressFamily` (34 for AF_HYPERV).
    pub address_family: i32,
    /// `iMinSockAddr`.
    pub min_address_length: i32,
    /// `iMaxSockAddr`.
    pub max_address_length: i32,
    /// `iSocketType` (1 = stream).
    pub socket_type: i32,
    /// `iProtocol` (1 = HV_PROTOCOL_RAW).
    pub protocol: i32,
    /// `dwServiceFlags1`; see [`service_flag_names`].
    pub service_flags: u32,
}

const XP1_FLAGS: [(u32, &str); 20] = [
    (0x0000_0001, "XP1_CONNECTIONLESS"),
    (0x0000_0002, "XP1_GUARANTEED_DELIVERY"),
    (0x0000_0004, "XP1_GUARANTEED_ORDER"),
    (0x0000_0008, "XP1_MESSAGE_ORIENTED"),
    (0x0000_0010, "XP1_PSEUDO_STREAM"),
    (0x0000_0020, "XP1_GRACEFUL_CLOSE"),
    (0x0000_0040, "XP1_EXPEDITED_DATA"),
    (0x0000_0080, "XP1_CONNECT_DATA"),
    (0x0000_0100, "XP1_DISCONNECT_DATA"),
    (0x0000_0200, "XP1_SUPPORT_BROADCAST"),
    (0x0000_0400, "XP1_SUPPORT_MULTIPOINT"),
    (0x0000_0800, "XP1_MULTIPOINT_CONTROL_PLANE"),
    (0x0000_1000, "XP1_MULTIPOINT_DATA_PLANE"),
    (0x0000_2000, "XP1_QOS_SUPPORTED"),
    (0x0000_4000, "XP1_INTERRUPT"),
    (0x0000_8000, "XP1_UNI_SEND"),
    (0x0001_0000, "XP1_UNI_RECV"),
    (0x0002_0000, "XP1_IFS_HANDLES"),
    (0x0004_0000, "XP1_PARTIAL_MESSAGE"),
    (0x0008_0000, "XP1_SAN_SUPPORT_SDP"),
];

/// The `XP1_*` names of a provider's service flags, lowest bit first; unknown bits as hex.
///
/// ```
/// assert_eq!(
///     hvsock::info::service_flag_names(0x20026),
///     ["XP1_GUARANTEED_DELIVERY", "XP1_GUARANTEED_ORDER", "XP1_GRACEFUL_CLOSE", "XP1_IFS_HANDLES"]
/// );
/// ```
pub fn service_flag_names(flags: u32) -> Vec<String> {
    let mut names: Vec<String> =
        XP1_FLAGS.iter().filter(|(bit, _)| flags & bit != 0).map(|(_, n)| n.to_string()).collect();
    let known = XP1_FLAGS.iter().fold(0, |acc, (bit, _)| acc | bit);
    if flags & !known != 0 {
        names.push(format!("{:#x}", flags & !known));
    }
    names
}

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::{hypervisor, seqpacket, transports};
#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::{providers, vm_id};

/// The hypervisor this CPU says it runs under (CPUID leaf 0x40000000, when the hypervisor bit
/// of leaf 1 is set), named, with its vendor string: `KVM (CPUID "KVMKVMKVM")`.
///
/// ```
/// if let Some(h) = hvsock::info::cpuid_hypervisor() {
///     println!("under {h}");
/// }
/// ```
#[cfg(target_arch = "x86_64")]
pub fn cpuid_hypervisor() -> Option<String> {
    use std::arch::x86_64::__cpuid;
    // SAFETY: every x86_64 CPU has CPUID; leaves 1 and 0x40000000 only read registers.
    #[allow(unused_unsafe)]
    let (leaf1, vendor) = unsafe { (__cpuid(1), __cpuid(0x4000_0000)) };
    if leaf1.ecx & (1 << 31) == 0 {
        return None;
    }
    let bytes: Vec<u8> = [vendor.ebx, vendor.ecx, vendor.edx].iter().flat_map(|r| r.to_le_bytes()).collect();
    Some(name_cpuid_vendor(String::from_utf8_lossy(&bytes).trim_end_matches('\0')))
}

/// Elsewhere CPUID has no hypervisor leaf to ask.
#[cfg(not(target_arch = "x86_64"))]
pub fn cpuid_hypervisor() -> Option<String> {
    None
}

/// A CPUID hypervisor vendor string, named.
fn name_cpuid_vendor(id: &str) -> String {
    let name = match id {
        "KVMKVMKVM" => "KVM",
        "Linux KVM Hv" => "KVM (with Hyper-V enlightenments)",
        "Microsoft Hv" => "Hyper-V",
        "VMwareVMware" => "VMware",
        "XenVMMXenVMM" => "Xen",
        "TCGTCGTCGTCG" => "QEMU (TCG, no KVM)",
        "VBoxVBoxVBox" => "VirtualBox",
        "bhyve bhyve " => "bhyve",
        "ACRNACRNACRN" => "ACRN",
        " lrpepyh  vr" => "Parallels",
        "QNXQVMBSQG" => "QNX",
        "" => return "a hypervisor that gives no CPUID vendor".into(),
        _ => return format!("a hypervisor with CPUID vendor \"{}\"", crate::Printable::new(id)),
    };
    format!("{name} (CPUID \"{id}\")")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuid_vendors_are_named() {
        assert_eq!(name_cpuid_vendor("KVMKVMKVM"), "KVM (CPUID \"KVMKVMKVM\")");
        assert_eq!(name_cpuid_vendor("Microsoft Hv"), "Hyper-V (CPUID \"Microsoft Hv\")");
        assert_eq!(name_cpuid_vendor("TCGTCGTCGTCG"), "QEMU (TCG, no KVM) (CPUID \"TCGTCGTCGTCG\")");
        assert!(name_cpuid_vendor("NewVisor").contains("CPUID vendor \"NewVisor\""));
    }

    #[test]
    fn decodes_the_hyper_v_raw_flags() {
        assert_eq!(
            service_flag_names(0x20026),
            ["XP1_GUARANTEED_DELIVERY", "XP1_GUARANTEED_ORDER", "XP1_GRACEFUL_CLOSE", "XP1_IFS_HANDLES"]
        );
        assert_eq!(service_flag_names(0), Vec::<String>::new());
        assert_eq!(service_flag_names(0x8000_0001), ["XP1_CONNECTIONLESS", "0x80000000"]);
    }
}
