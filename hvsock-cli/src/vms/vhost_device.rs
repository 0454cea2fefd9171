//! vhost-device-vsock (rust-vmm): `--vm guest-cid=4,uds-path=/tmp/vm4.vsock,socket=…`
//! (repeatable) or `--guest-cid 4 --uds-path …`; the host side is `uds-path` (hybrid vsock).

use super::{flag_values, option, FoundVm, Reach};

pub fn is_vhost_device_vsock(argv0: &str) -> bool {
    argv0.rsplit('/').next() == Some("vhost-device-vsock")
}

pub fn parse(args: &[String], source: &str) -> Vec<FoundVm> {
    let found = |uds: &str| FoundVm {
        // The socket's name is the closest thing to the VM's.
        name: std::path::Path::new(uds)
            .file_stem()
            .map_or_else(|| uds.to_string(), |s| s.to_string_lossy().into_owned()),
        reach: Reach::Hybrid(uds.into()),
        hypervisor: "vhost-device-vsock".into(),
        state: Some("running".into()),
        source: source.to_string(),
    };
    let mut vms: Vec<FoundVm> =
        flag_values(args, "--vm").into_iter().filter_map(|o| option(o, "uds-path")).map(found).collect();
    vms.extend(flag_values(args, "--uds-path").into_iter().map(found));
    vms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_vms_and_the_old_flags() {
        let a = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        let vms = parse(
            &a("vhost-device-vsock --vm guest-cid=4,uds-path=/tmp/vm4.vsock,socket=/tmp/vhost4.socket --vm guest-cid=5,socket=/tmp/v5,uds-path=/tmp/vm5.vsock"),
            "process 3 (vhost-device-vsock)",
        );
        assert_eq!(
            vms.iter().map(|v| (&v.name[..], v.reach.clone())).collect::<Vec<_>>(),
            [
                ("vm4", Reach::Hybrid("/tmp/vm4.vsock".into())),
                ("vm5", Reach::Hybrid("/tmp/vm5.vsock".into()))
            ]
        );
        let old = parse(
            &a("vhost-device-vsock --guest-cid 3 --socket /tmp/vhost.sock --uds-path /tmp/vm.sock"),
            "p",
        );
        assert_eq!(old[0].reach, Reach::Hybrid("/tmp/vm.sock".into()));
    }
}
