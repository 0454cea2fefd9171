//! What a Linux machine shows of its vsock transports and of the hypervisor it runs under.

/// Modules that carry vsock, and what each means for this machine.
const TRANSPORTS: [&str; 7] = [
    "vsock",
    "vsock_loopback",
    "vmw_vsock_virtio_transport",
    "vhost_vsock",
    "hv_sock",
    "vmw_vsock_vmci_transport",
    "vsock_diag",
];

/// The vsock modules loaded now (built-in ones with no parameters may not show).
pub fn transports() -> Vec<String> {
    TRANSPORTS
        .iter()
        .filter(|m| std::path::Path::new("/sys/module").join(m).exists())
        .map(|m| m.to_string())
        .collect()
}

/// A best guess at what this Linux runs under, from what the kernel shows; `None` when nothing
/// says "virtual machine".
pub fn hypervisor() -> Option<String> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    if cpuinfo.contains("User Mode Linux") || cpuinfo.contains("model name\t: UML") {
        return Some("User-Mode Linux (an hvsock lab guest)".into());
    }
    if std::path::Path::new("/sys/bus/vmbus").exists() {
        return Some("Hyper-V (vmbus present; vsock goes over hv_sock)".into());
    }
    let dmi = format!(
        "{} {}",
        read("/sys/class/dmi/id/sys_vendor").trim(),
        read("/sys/class/dmi/id/product_name").trim()
    );
    let known = [
        ("Microsoft Corporation", "Hyper-V"),
        ("QEMU", "QEMU/KVM"),
        ("Amazon EC2", "AWS Nitro"),
        ("VMware", "VMware"),
        ("Cloud Hypervisor", "Cloud Hypervisor"),
        ("Google Compute Engine", "Google Compute Engine (KVM)"),
    ];
    if let Some((_, name)) = known.iter().find(|(needle, _)| dmi.contains(needle)) {
        return Some(name.to_string());
    }
    let xen = read("/sys/hypervisor/type");
    if !xen.trim().is_empty() {
        return Some(xen.trim().to_string());
    }
    if let Some(named) = crate::info::cpuid_hypervisor() {
        return Some(named);
    }
    cpuinfo
        .lines()
        .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"))
        .then(|| "a hypervisor (CPU flag) of unknown make".to_string())
}

/// Which of the loaded vsock transports carry SOCK_SEQPACKET, one line each (Linux): the
/// loopback one does; a guest's virtio one when its device offers VIRTIO_VSOCK_F_SEQPACKET
/// (read from sysfs); a host's vhost one for guests whose driver takes it; Hyper-V's and
/// VMware's never.
///
/// ```
/// for line in hvsock::info::seqpacket() {
///     println!("{line}");
/// }
/// ```
pub fn seqpacket() -> Vec<String> {
    seqpacket_of(&transports(), &virtio_vsock_features())
}

/// The feature bits of each virtio vsock device (virtio device ID 19), as sysfs shows them: a
/// string of '0'/'1', bit 0 first.
fn virtio_vsock_features() -> Vec<String> {
    let Ok(devices) = std::fs::read_dir("/sys/bus/virtio/devices") else { return Vec::new() };
    devices
        .flatten()
        .filter(|d| std::fs::read_to_string(d.path().join("device")).is_ok_and(|id| id.trim() == "0x0013"))
        .filter_map(|d| std::fs::read_to_string(d.path().join("features")).ok())
        .map(|f| f.trim().to_string())
        .collect()
}

fn seqpacket_of(transports: &[String], virtio_features: &[String]) -> Vec<String> {
    const F_SEQPACKET: usize = 1;
    let has = |m: &str| transports.iter().any(|t| t == m);
    let mut lines = Vec::new();
    if has("vsock_loopback") {
        lines.push("loopback (CID 1): yes".to_string());
    }
    if has("vmw_vsock_virtio_transport") {
        lines.push(match virtio_features.first() {
            Some(f) if f.as_bytes().get(F_SEQPACKET) == Some(&b'1') => {
                "virtio (to the host): yes, the device offers VIRTIO_VSOCK_F_SEQPACKET".to_string()
            }
            Some(_) => {
                "virtio (to the host): no, the device does not offer VIRTIO_VSOCK_F_SEQPACKET".to_string()
            }
            None => "virtio (to the host): not known (no virtio vsock device in sysfs)".to_string(),
        });
    }
    if has("vhost_vsock") {
        lines.push(
            "vhost (to guests): for each guest whose driver takes VIRTIO_VSOCK_F_SEQPACKET".to_string(),
        );
    }
    if has("hv_sock") {
        lines.push("hv_sock (Hyper-V): no, stream only".to_string());
    }
    if has("vmw_vsock_vmci_transport") {
        lines.push("vmci (VMware): no".to_string());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqpacket_per_transport() {
        let t = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(seqpacket_of(&t(&["vsock", "vsock_loopback"]), &[]), ["loopback (CID 1): yes"]);
        let guest = t(&["vsock", "vmw_vsock_virtio_transport"]);
        assert!(seqpacket_of(&guest, &["01000000".into()])[0].contains("yes, the device offers"));
        assert!(seqpacket_of(&guest, &["10000000".into()])[0].contains("no, the device does not offer"));
        assert!(seqpacket_of(&guest, &[])[0].contains("not known"));
        assert_eq!(seqpacket_of(&t(&["hv_sock"]), &[]), ["hv_sock (Hyper-V): no, stream only"]);
        assert!(seqpacket_of(&t(&["vsock"]), &[]).is_empty());
    }
}
