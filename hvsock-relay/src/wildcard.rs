//! The relay's wildcard target (`tcp:*:443`, `vsock:3:*`) and the `CONNECT HOST:PORT` line a
//! client fills it in with.

use hvsock::{Endpoint, Printable};

use crate::allowlist::Allowlist;

/// The longest `CONNECT` line a client may send (without its newline).
pub const MAX_LINE: usize = 512;

/// What TO means for one client.
pub enum Target {
    /// This endpoint, for every client.
    Fixed(Endpoint),
    /// `kind`, then host and port where `None` is a `*`.
    Wildcard {
        /// `tcp`, `vsock` or `hv`.
        kind: String,
        /// The host, CID or VM, or `None` for `*`.
        host: Option<String>,
        /// The port, or `None` for `*`.
        port: Option<String>,
    },
}

impl Target {
    /// A TO argument with `*` for the parts a client names (`tcp:*:443`, `vsock:3:*`).
    pub fn wildcard(to: &str) -> anyhow::Result<Target> {
        let bad = |why: &str| anyhow::anyhow!("TO `{to}`: {why}");
        let (kind, rest) = to.split_once(':').ok_or_else(|| bad("expected KIND:HOST:PORT"))?;
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad("expected KIND:HOST:PORT"))?;
        if !["tcp", "vsock", "hv"].contains(&kind) {
            return Err(bad("wildcards work for tcp:, vsock: and hv: targets"));
        }
        let part = |p: &str| (p != "*").then(|| p.to_string());
        let target = Target::Wildcard { kind: kind.into(), host: part(host), port: part(port) };
        // The filled-in form must parse: check it now with placeholders.
        target.fill(host.replace('*', "1").as_str(), port.replace('*', "1").as_str()).map_err(|e| bad(&e))?;
        Ok(target)
    }

    /// The endpoint a client's `CONNECT host:port` asks for, if TO allows it.
    fn fill(&self, host: &str, port: &str) -> Result<Endpoint, String> {
        let Target::Wildcard { kind, host: fixed_host, port: fixed_port } = self else { unreachable!() };
        if fixed_host.as_deref().is_some_and(|h| !h.eq_ignore_ascii_case(host)) {
            return Err(format!(
                "host {host} is not the relay's {}",
                fixed_host.as_deref().unwrap_or_default()
            ));
        }
        if fixed_port.as_deref().is_some_and(|p| p != port) {
            return Err(format!(
                "port {port} is not the relay's {}",
                fixed_port.as_deref().unwrap_or_default()
            ));
        }
        let host =
            if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_string() };
        format!("{kind}:{host}:{port}").parse::<Endpoint>().map_err(|e| e.to_string())
    }

    /// The endpoint a client's `CONNECT` line (without its newline) asks for, if this target
    /// and `allow` let it; otherwise the reason, safe to log and to answer with.
    pub fn request(&self, line: &[u8], allow: &Allowlist) -> Result<Endpoint, String> {
        let line = String::from_utf8_lossy(line);
        // Everything of the client's that reaches a log line or an ERR answer is escaped and cut:
        // a CR or newline in it must not forge a log entry or a protocol line.
        let line = line.trim_end_matches('\r');
        let shown = Printable::new(line).limit(120);
        let request = line
            .strip_prefix("CONNECT ")
            .ok_or_else(|| format!("expected `CONNECT HOST:PORT`, got `{shown}`"))?;
        let (host, port) =
            request.rsplit_once(':').ok_or_else(|| format!("expected `CONNECT HOST:PORT`, got `{shown}`"))?;
        let port_num: u32 = port.parse().map_err(|_| format!("`{}` is not a port", Printable::new(port)))?;
        if !allow.allows(host, port_num) {
            return Err(format!("{}:{port_num} is not on the allowlist", Printable::new(host)));
        }
        self.fill(host.trim_start_matches('[').trim_end_matches(']'), port)
            .map_err(|e| Printable::new(&e).limit(200).to_string())
    }
}
