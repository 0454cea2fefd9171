//! Which targets a relay may reach, like vsock-proxy's allowlist.
//!
//! Entries are `HOST:PORT` (`vsock`/`hv` targets: `CID:PORT`). A file is YAML or TOML (by its
//! extension; otherwise YAML, then TOML) with an `allowlist` (or `allow`) list whose items are
//! `"HOST:PORT"` strings or `{address, port}` maps — so vsock-proxy's own YAML works unchanged.
//!
//! A forward's allowlist may also name Unix sockets: an entry that is an absolute path
//! (`/run/app.sock`, or `unix:/run/app.sock`) allows that socket, compared as text; and UDP
//! targets: `udp:HOST:PORT` (a plain `HOST:PORT` allows TCP only).
//!
//! Hosts match as text (without case and IPv6 brackets), never through DNS: the relay checks
//! what the client asked for, so no name server's answer at connect time can widen the list.
//! That is stricter than vsock-proxy, which also accepts a request whose name resolves to a
//! listed address. No wildcards: every reachable host is listed.

use std::path::Path;

use anyhow::Context;
use hvsock::Printable;
use serde::Deserialize;

/// One allowed target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// A host, or a Unix socket's path when `port` is `None`.
    host: String,
    port: Option<u32>,
    /// A UDP target (`udp:HOST:PORT`), not a stream's.
    udp: bool,
}

impl Entry {
    /// One `HOST:PORT` entry.
    pub fn parse(s: &str) -> anyhow::Result<Entry> {
        let shown = Printable::new(s);
        let path = s.strip_prefix("unix:").unwrap_or(s);
        if path.starts_with('/') {
            return Ok(Entry { host: path.to_string(), port: None, udp: false });
        }
        if let Some(rest) = s.strip_prefix("udp:") {
            return Ok(Entry { udp: true, ..Entry::parse(rest)? });
        }
        let (host, port) =
            s.rsplit_once(':').with_context(|| format!("allow entry `{shown}`: expected HOST:PORT"))?;
        let port = port.parse().map_err(|_| {
            anyhow::anyhow!("allow entry `{shown}`: `{}` is not a port number", Printable::new(port))
        })?;
        Entry::new(host, port).with_context(|| format!("allow entry `{shown}`"))
    }

    fn new(host: &str, port: u32) -> anyhow::Result<Entry> {
        let host = normal_host(host);
        if host.is_empty() {
            anyhow::bail!("the host is empty");
        }
        if host.contains('*') {
            anyhow::bail!("`*` is not a host: list each host the relay may reach");
        }
        Ok(Entry { host, port: Some(port), udp: false })
    }
}

/// The most an allow file may hold: far more than any real list.
const MAX_FILE: u64 = 1 << 20;

fn normal_host(host: &str) -> String {
    host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Item {
    Text(String),
    Map { address: String, port: u32 },
}

#[derive(Deserialize)]
struct File {
    #[serde(alias = "allow")]
    allowlist: Vec<Item>,
}

/// The targets a wildcard TO may reach.
#[derive(Clone, Debug, Default)]
pub struct Allowlist {
    entries: Vec<Entry>,
}

impl Allowlist {
    /// The entries given (`--allow`) and those of a YAML or TOML file (`--allow-file`).
    pub fn new(entries: &[String], file: Option<&Path>) -> anyhow::Result<Allowlist> {
        let mut list =
            Allowlist { entries: entries.iter().map(|e| Entry::parse(e)).collect::<Result<_, _>>()? };
        if let Some(path) = file {
            list.entries.extend(read_file(path)?);
        }
        Ok(list)
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry's port must fit the target (`65535` for TCP).
    pub fn check_ports(&self, max: u32, what: &str) -> anyhow::Result<()> {
        match self.entries.iter().find_map(|e| e.port.filter(|&p| p > max).map(|p| (&e.host, p))) {
            Some((host, port)) => anyhow::bail!(
                "allow entry `{}:{port}`: {port} is not a {what} port (0-{max})",
                Printable::new(host),
            ),
            None => Ok(()),
        }
    }

    /// Whether `host:port` is listed (hosts compare without case and IPv6 brackets).
    pub fn allows(&self, host: &str, port: u32) -> bool {
        let host = normal_host(host);
        self.entries.iter().any(|e| !e.udp && e.port == Some(port) && e.host == host)
    }

    /// Whether UDP `host:port` is listed (as `udp:HOST:PORT`).
    pub fn allows_udp(&self, host: &str, port: u32) -> bool {
        let host = normal_host(host);
        self.entries.iter().any(|e| e.udp && e.port == Some(port) && e.host == host)
    }

    /// Whether the Unix socket `path` is listed (as an absolute path, compared as text).
    pub fn allows_path(&self, path: &Path) -> bool {
        let path = path.to_string_lossy();
        self.entries.iter().any(|e| !e.udp && e.port.is_none() && e.host == path)
    }
}

fn read_file(path: &Path) -> anyhow::Result<Vec<Entry>> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE + 1).read_to_string(&mut text))
        .with_context(|| format!("cannot read allow file {}", path.display()))?;
    if text.len() as u64 > MAX_FILE {
        anyhow::bail!(
            "allow file {} is larger than {} KiB: not an allowlist",
            path.display(),
            MAX_FILE >> 10
        );
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    parse_file(&text, ext).with_context(|| format!("allow file {}", path.display()))
}

/// The entries of an allow file's text; `ext` (`toml`, `yaml`, `yml`, or anything else: YAML
/// then TOML) says how to read it.
pub fn parse_file(text: &str, ext: &str) -> anyhow::Result<Vec<Entry>> {
    let parsed: Result<File, String> = match ext {
        "toml" => toml::from_str(text).map_err(|e| e.to_string()),
        "yaml" | "yml" => serde_yaml_ng::from_str(text).map_err(|e| e.to_string()),
        _ => serde_yaml_ng::from_str(text).or_else(|_| toml::from_str(text)).map_err(|e| e.to_string()),
    };
    let file = parsed.map_err(|e| {
        anyhow::anyhow!(
            "{} (expected an `allowlist` of \"HOST:PORT\" or {{address, port}})",
            Printable::new(e.lines().next().unwrap_or("")).limit(200)
        )
    })?;
    file.allowlist
        .into_iter()
        .map(|item| match item {
            Item::Text(s) => Entry::parse(&s),
            Item::Map { address, port } => {
                Entry::new(&address, port).with_context(|| format!("entry `{}`", Printable::new(&address)))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("hvsock-allow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn entries_from_flags_and_both_file_formats() {
        let yaml = file(
            "vsock-proxy.yaml",
            "allowlist:\n- {address: kms.us-east-1.amazonaws.com, port: 443}\n- \"127.0.0.1:8080\"\n",
        );
        let toml = file("list.toml", "allow = [\"[::1]:22\", \"3:5000\"]\n");
        let list = Allowlist::new(&["Example.COM:80".into()], Some(&yaml)).unwrap();
        assert!(list.allows("example.com", 80));
        assert!(list.allows("KMS.us-east-1.amazonaws.com", 443));
        assert!(list.allows("127.0.0.1", 8080));
        assert!(!list.allows("127.0.0.1", 8081));
        assert!(!list.allows("127.0.0.2", 8080));
        let list = Allowlist::new(&[], Some(&toml)).unwrap();
        assert!(list.allows("::1", 22) && list.allows("[::1]", 22) && list.allows("3", 5000));
        assert!(!list.is_empty());
        assert!(Allowlist::new(&[], None).unwrap().is_empty());
    }

    #[test]
    fn unix_socket_paths_are_entries_of_their_own() {
        let list =
            Allowlist::new(&["/run/a.sock".into(), "unix:/run/b.sock".into(), "h:1".into()], None).unwrap();
        assert!(list.allows_path(Path::new("/run/a.sock")) && list.allows_path(Path::new("/run/b.sock")));
        assert!(!list.allows_path(Path::new("/run/c.sock")) && !list.allows_path(Path::new("h")));
        assert!(!list.allows("/run/a.sock", 0) && list.allows("h", 1));
        let list = Allowlist::new(&["udp:10.0.2.3:53".into(), "h:53".into()], None).unwrap();
        assert!(list.allows_udp("10.0.2.3", 53) && !list.allows("10.0.2.3", 53));
        assert!(!list.allows_udp("h", 53) && list.allows("h", 53));
        // A path entry has no port to check against a kind's range.
        list.check_ports(65535, "TCP").unwrap();
    }

    #[test]
    fn bad_entries_and_files_say_what_is_wrong() {
        let e = Allowlist::new(&["localhost".into()], None).unwrap_err().to_string();
        assert_eq!(e, "allow entry `localhost`: expected HOST:PORT");
        let e = Allowlist::new(&["localhost:http".into()], None).unwrap_err().to_string();
        assert_eq!(e, "allow entry `localhost:http`: `http` is not a port number");
        let bad = file("bad.yaml", "allowed: [1, 2]\n");
        let e = format!("{:#}", Allowlist::new(&[], Some(&bad)).unwrap_err());
        assert!(e.starts_with(&format!("allow file {}: ", bad.display())), "{e}");
        assert!(e.contains("expected an `allowlist`"), "{e}");
        let e = Allowlist::new(&[], Some(Path::new("/nonexistent/allow.yaml"))).unwrap_err().to_string();
        assert!(e.starts_with("cannot read allow file /nonexistent/allow.yaml"), "{e}");
    }

    #[test]
    fn wildcards_empty_hosts_huge_files_and_wide_ports_are_refused() {
        let err = |entries: &[&str], f: Option<&Path>| {
            let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
            format!("{:#}", Allowlist::new(&entries, f).unwrap_err())
        };
        assert_eq!(
            err(&["*:443"], None),
            "allow entry `*:443`: `*` is not a host: list each host the relay may reach"
        );
        assert_eq!(err(&[":443"], None), "allow entry `:443`: the host is empty");
        let star = file("star.yaml", "allowlist:\n- {address: \"*\", port: 443}\n");
        assert!(err(&[], Some(&star))
            .ends_with("entry `*`: `*` is not a host: list each host the relay may reach"));
        let empty = file("empty.yaml", "allowlist:\n- {address: \"\", port: 443}\n");
        assert!(err(&[], Some(&empty)).ends_with("the host is empty"));
        let e = err(&[], Some(Path::new("/dev/zero")));
        assert!(e.ends_with("is larger than 1024 KiB: not an allowlist"), "{e}");
        let wide = Allowlist::new(&["a:70000".into()], None).unwrap();
        assert_eq!(
            wide.check_ports(65535, "TCP").unwrap_err().to_string(),
            "allow entry `a:70000`: 70000 is not a TCP port (0-65535)"
        );
        assert!(wide.check_ports(u32::MAX, "vsock").is_ok());
        let e = err(&["a\r\nforged:1x"], None);
        assert!(e.contains("a\\r\\nforged") && !e.contains('\r'), "{e}");
    }
}
