//! crosvm: `crosvm run --cid 3` (older) or `--vsock 3` / `--vsock cid=3` (newer); it uses the
//! kernel's vhost-vsock, so the guest is reached by CID.

use super::{flag_values, option, FoundVm, Reach};

pub fn is_crosvm(argv0: &str) -> bool {
    argv0.rsplit('/').next() == Some("crosvm")
}

pub fn parse(args: &[String], source: &str, pid: u32) -> Option<FoundVm> {
    let cid = flag_values(args, "--cid")
        .into_iter()
        .chain(flag_values(args, "--vsock"))
        .find_map(|v| v.parse::<u32>().ok().or_else(|| option(v, "cid")?.parse().ok()))?;
    Some(FoundVm {
        name: flag_values(args, "--name").first().map_or_else(|| format!("crosvm-{pid}"), |s| s.to_string()),
        reach: Reach::Cid(cid),
        hypervisor: "crosvm".into(),
        state: Some("running".into()),
        source: source.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_spelling_of_the_cid() {
        let a = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(parse(&a("crosvm run --cid 5 vmlinux"), "p", 1).unwrap().reach, Reach::Cid(5));
        assert_eq!(parse(&a("crosvm run --vsock 6 vmlinux"), "p", 1).unwrap().reach, Reach::Cid(6));
        assert_eq!(
            parse(&a("crosvm run --vsock cid=7,device=/dev/vhost-vsock vmlinux"), "p", 1).unwrap().reach,
            Reach::Cid(7)
        );
        assert_eq!(parse(&a("crosvm run --vsock 6 vmlinux"), "p", 44).unwrap().name, "crosvm-44");
        assert!(parse(&a("crosvm run vmlinux"), "p", 1).is_none());
    }
}
