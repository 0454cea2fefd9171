//! Firecracker: its vsock device from `--config-file` (`vsock.guest_cid`, `vsock.uds_path`) or,
//! for a VM configured through its API, from `GET /vm/config` on `--api-sock`. The host side is
//! the Unix socket `uds_path` (hybrid vsock), relative paths being the VMM's own (a jailer's
//! chroot, its working directory).

use std::path::{Path, PathBuf};

use super::{flag_values, FoundVm, Reach};

pub fn is_firecracker(argv0: &str) -> bool {
    argv0.rsplit('/').next() == Some("firecracker")
}

/// The VM one Firecracker process runs, if it has a vsock device. `root` is where its paths
/// start (`/proc/PID/root`, its chroot), `cwd` its working directory.
pub fn parse(args: &[String], source: &str, root: &Path, cwd: &Path) -> Option<FoundVm> {
    let name =
        flag_values(args, "--id").first().map_or_else(|| "anonymous-instance".to_string(), |s| s.to_string());
    let config = if let Some(file) = flag_values(args, "--config-file").first() {
        std::fs::read_to_string(within(root, cwd, file)).ok()?
    } else {
        let api = flag_values(args, "--api-sock").first().map_or("/run/firecracker.socket", |s| s);
        api_config(&within(root, cwd, api))?
    };
    let uds = vsock_uds(&config)?;
    Some(FoundVm {
        name,
        reach: Reach::Hybrid(within(root, cwd, &uds)),
        hypervisor: "Firecracker".into(),
        state: Some("running".into()),
        source: source.to_string(),
    })
}

/// `vsock.uds_path` of a Firecracker configuration (the config file and `GET /vm/config`
/// have the same shape).
pub fn vsock_uds(config: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(config).ok()?;
    v.get("vsock")?.get("uds_path")?.as_str().map(str::to_string)
}

/// A path as the process sees it, from here.
fn within(root: &Path, cwd: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    let absolute = if p.is_absolute() { p.to_path_buf() } else { cwd.join(p) };
    root.join(absolute.strip_prefix("/").unwrap_or(&absolute))
}

/// `GET /vm/config` over the API socket, with a short deadline.
#[cfg(unix)]
fn api_config(api: &Path) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(api).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(1))).ok()?;
    s.set_write_timeout(Some(std::time::Duration::from_secs(1))).ok()?;
    s.write_all(b"GET /vm/config HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nConnection: close\r\n\r\n").ok()?;
    let mut reply = Vec::new();
    let _ = s.take(1 << 20).read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply);
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

#[cfg(not(unix))]
fn api_config(_: &Path) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_ids_and_paths() {
        let dir = std::env::temp_dir().join(format!("hvsock-fc-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("srv")).unwrap();
        std::fs::write(
            dir.join("srv/vm.json"),
            r#"{"boot-source":{"kernel_image_path":"vmlinux"},"vsock":{"vsock_id":"vsock0","guest_cid":3,"uds_path":"./v.sock"}}"#,
        )
        .unwrap();
        let args: Vec<String> =
            ["firecracker", "--id", "db", "--config-file", "vm.json"].iter().map(|s| s.to_string()).collect();
        let vm = parse(&args, "process 7 (firecracker)", &dir, Path::new("/srv")).unwrap();
        assert_eq!((vm.name.as_str(), vm.reach), ("db", Reach::Hybrid(dir.join("srv/./v.sock"))));
        // No vsock device: not a VM we can talk to.
        std::fs::write(dir.join("srv/novsock.json"), r#"{"boot-source":{}}"#).unwrap();
        let args: Vec<String> =
            ["firecracker", "--config-file=novsock.json"].iter().map(|s| s.to_string()).collect();
        assert!(parse(&args, "p", &dir, Path::new("/srv")).is_none());
        // What the API's GET /vm/config answers has the same shape.
        assert_eq!(
            vsock_uds(r#"{"vsock":{"guest_cid":4,"uds_path":"/tmp/fc.sock"}}"#).as_deref(),
            Some("/tmp/fc.sock")
        );
        assert!(is_firecracker("/usr/local/bin/firecracker") && !is_firecracker("firecracker-jailer"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A VM configured through the API has no config file: its vsock comes from
    /// `GET /vm/config` on the API socket (here a stand-in answering as Firecracker does).
    #[test]
    #[cfg(unix)]
    fn config_from_the_api_socket() {
        use std::io::{Read, Write};
        let dir = std::env::temp_dir().join(format!("hvsock-fc-api-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let api = dir.join("fc.api");
        let listener = std::os::unix::net::UnixListener::bind(&api).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; 512];
            let n = s.read(&mut req).unwrap();
            let body = r#"{"vsock":{"guest_cid":3,"uds_path":"/run/fc/v.sock"}}"#;
            write!(
                s,
                "HTTP/1.1 200 \r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            String::from_utf8_lossy(&req[..n]).into_owned()
        });
        let args: Vec<String> = ["firecracker", "--api-sock", api.to_str().unwrap(), "--id", "api-vm"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let vm = parse(&args, "process 8 (firecracker)", Path::new("/"), Path::new("/")).unwrap();
        assert_eq!((vm.name.as_str(), vm.reach), ("api-vm", Reach::Hybrid("/run/fc/v.sock".into())));
        assert!(server.join().unwrap().starts_with("GET /vm/config HTTP/1.1\r\n"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
