//! Cloud Hypervisor: `--vsock cid=3,socket=/path[,id=NAME]`; the host side is the Unix socket
//! `socket` (hybrid vsock).

use super::{flag_values, option, FoundVm, Reach};

pub fn is_cloud_hypervisor(argv0: &str) -> bool {
    argv0.rsplit('/').next() == Some("cloud-hypervisor")
}

pub fn parse(args: &[String], source: &str, pid: u32) -> Vec<FoundVm> {
    flag_values(args, "--vsock")
        .into_iter()
        .filter_map(|opts| {
            let socket = option(opts, "socket")?;
            Some(FoundVm {
                name: option(opts, "id").map_or_else(|| format!("cloud-hypervisor-{pid}"), str::to_string),
                reach: Reach::Hybrid(socket.into()),
                hypervisor: "Cloud Hypervisor".into(),
                state: Some("running".into()),
                source: source.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vsock_options() {
        let args: Vec<String> =
            ["cloud-hypervisor", "--kernel", "vmlinux", "--vsock", "cid=3,socket=/tmp/ch.vsock,id=edge"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let vms = parse(&args, "process 9 (cloud-hypervisor)", 9);
        assert_eq!((vms[0].name.as_str(), &vms[0].reach), ("edge", &Reach::Hybrid("/tmp/ch.vsock".into())));
        let args: Vec<String> =
            ["cloud-hypervisor", "--vsock=cid=4,socket=/run/v.sock"].iter().map(|s| s.to_string()).collect();
        assert_eq!(parse(&args, "p", 9)[0].name, "cloud-hypervisor-9");
        let none: Vec<String> =
            ["cloud-hypervisor", "--net", "tap=t0"].iter().map(|s| s.to_string()).collect();
        assert!(parse(&none, "p", 9).is_empty());
    }
}
