//! QEMU's command line: `-name` and the vhost-vsock devices, in both spellings QEMU takes
//! (`-device vhost-vsock-pci,guest-cid=3` and libvirt's JSON `-device {"driver":…}`).

use super::{option, FoundVm, Reach};

/// The vsock device drivers a guest gets its CID from (vhost-user-vsock keeps its CID in its
/// backend, which is found on its own).
const DRIVERS: [&str; 3] = ["vhost-vsock-pci", "vhost-vsock-device", "vhost-vsock-ccw"];

/// Whether argv[0] is a QEMU.
pub fn is_qemu(argv0: &str) -> bool {
    let base = argv0.rsplit('/').next().unwrap_or(argv0);
    base.starts_with("qemu-system-") || base == "qemu-kvm"
}

/// The VMs one QEMU command line describes: one per vsock device.
pub fn parse(args: &[String], source: &str) -> Vec<FoundVm> {
    let mut name = None;
    let mut cids = Vec::new();
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let Some(value) = (match a.as_str() {
            "-name" | "--name" | "-device" | "--device" => it.next(),
            _ => None,
        }) else {
            continue;
        };
        if a.ends_with("name") {
            name = Some(vm_name(value));
        } else if let Some(cid) = vsock_cid(value) {
            cids.push(cid);
        }
    }
    let name = name.unwrap_or_else(|| format!("qemu-{}", source.split_whitespace().nth(1).unwrap_or("?")));
    cids.into_iter()
        .map(|cid| FoundVm {
            name: name.clone(),
            reach: cid.map_or(Reach::NoCidYet, Reach::Cid),
            hypervisor: "QEMU/KVM".into(),
            state: Some("running".into()),
            source: source.to_string(),
        })
        .collect()
}

/// `-name guest=NAME,debug-threads=on` or `-name NAME`.
fn vm_name(value: &str) -> String {
    option(value, "guest")
        .map_or_else(|| value.split(',').next().unwrap_or(value).to_string(), str::to_string)
}

/// A vsock device's CID: `Some(Some(cid))`, `Some(None)` for a vsock device without one yet,
/// `None` for any other device.
fn vsock_cid(device: &str) -> Option<Option<u32>> {
    if device.trim_start().starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(device).ok()?;
        let driver = v.get("driver")?.as_str()?;
        if !DRIVERS.contains(&driver) {
            return None;
        }
        let cid = v.get("guest-cid").and_then(|c| c.as_u64().or_else(|| c.as_str()?.parse().ok()));
        return Some(cid.and_then(|c| u32::try_from(c).ok()));
    }
    let driver = device.split(',').next()?;
    if !DRIVERS.contains(&driver) {
        return None;
    }
    Some(option(device, "guest-cid").and_then(|c| c.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn both_device_spellings_several_devices_and_none() {
        assert!(is_qemu("/usr/bin/qemu-system-x86_64") && is_qemu("qemu-kvm") && !is_qemu("qemu-img"));
        // As people write it.
        let vms = parse(
            &argv("qemu-system-x86_64 -m 1G -name guest=web,debug-threads=on -device vhost-vsock-pci,id=v0,guest-cid=5"),
            "process 10 (qemu-system-x86_64)",
        );
        assert_eq!((vms.len(), vms[0].name.as_str(), &vms[0].reach), (1, "web", &Reach::Cid(5)));
        // As libvirt writes it, JSON; and two devices.
        let mut args = argv("/usr/bin/qemu-system-x86_64 -name db -device");
        args.push(
            r#"{"driver":"vhost-vsock-pci","id":"vsock0","guest-cid":7,"vhostfd":"28","bus":"pci.7"}"#.into(),
        );
        args.push("-device".into());
        args.push("vhost-vsock-device,guest-cid=8".into());
        let vms = parse(&args, "process 11");
        assert_eq!(
            vms.iter().map(|v| (&v.name[..], v.reach.clone())).collect::<Vec<_>>(),
            [("db", Reach::Cid(7)), ("db", Reach::Cid(8))]
        );
        // A guest without a vsock device is none of ours; a device without a CID says so.
        assert!(parse(&argv("qemu-system-aarch64 -name x -device virtio-net-pci,netdev=n0"), "p").is_empty());
        assert_eq!(
            parse(&argv("qemu-kvm -device vhost-vsock-pci"), "process 12 (qemu-kvm)")[0].reach,
            Reach::NoCidYet
        );
        assert_eq!(
            parse(&argv("qemu-kvm -device vhost-vsock-pci,guest-cid=9"), "process 12 (qemu-kvm)")[0].name,
            "qemu-12"
        );
    }
}
