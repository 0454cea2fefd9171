//! The VMM processes running here, by their command lines in `/proc` (Linux).

use std::path::PathBuf;

use super::{cloud_hypervisor, crosvm, firecracker, qemu, vhost_device, Discovery};

pub fn find(d: &mut Discovery) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        d.unavailable.push(("processes (/proc)".into(), "cannot read /proc".into()));
        return;
    };
    let mine = std::process::id();
    for pid in entries.flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()) {
        if pid == mine {
            continue;
        }
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let args: Vec<String> = raw
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let Some(argv0) = args.first() else { continue };
        let base = argv0.rsplit('/').next().unwrap_or(argv0);
        let source = format!("process {pid} ({base})");
        if qemu::is_qemu(argv0) {
            d.vms.extend(qemu::parse(&args, &source));
        } else if firecracker::is_firecracker(argv0) {
            // Its paths are its own: under its root (a jailer's chroot) and from its cwd.
            let root = PathBuf::from(format!("/proc/{pid}/root"));
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_else(|_| "/".into());
            d.vms.extend(firecracker::parse(&args, &source, &root, &cwd));
        } else if cloud_hypervisor::is_cloud_hypervisor(argv0) {
            d.vms.extend(cloud_hypervisor::parse(&args, &source, pid));
        } else if crosvm::is_crosvm(argv0) {
            d.vms.extend(crosvm::parse(&args, &source, pid));
        } else if vhost_device::is_vhost_device_vsock(argv0) {
            d.vms.extend(vhost_device::parse(&args, &source));
        }
    }
}
