//! A forward as ssh writes it (`-L`/`-R`): `[BIND:]PORT:HOST:HOSTPORT`, with a Unix socket path
//! in place of either side (`/run/app.sock:HOST:PORT`, `PORT:/run/db.sock`).

use std::fmt;
use std::path::PathBuf;

use hvsock::{Endpoint, Printable};

/// One forward: where one end listens and where the other end connects for each connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Where connections are accepted (`tcp:` or `unix:`).
    pub listen: Endpoint,
    /// Where each of them is joined to (`tcp:` or `unix:`), on the other end.
    pub target: Endpoint,
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.listen, self.target)
    }
}

impl Spec {
    /// Parses ssh's forms. A listening TCP port with no BIND is on 127.0.0.1 (ssh's default:
    /// nothing outside this machine reaches it); `*` or an empty BIND is every address.
    pub fn parse(s: &str) -> Result<Spec, String> {
        let shown = || Printable::new(s).limit(120).to_string();
        let bad = |why: &str| format!("forward `{}`: {why}", shown());
        let parts = split(s).ok_or_else(|| bad("an unclosed `[`"))?;
        let (listen, target) = match parts.last() {
            Some(last) if is_path(last) => (&parts[..parts.len() - 1], Endpoint::Unix(PathBuf::from(last))),
            _ if parts.len() >= 3 => {
                let n = parts.len();
                (&parts[..n - 2], tcp(&parts[n - 2], &parts[n - 1]).map_err(|e| bad(&e))?)
            }
            _ => return Err(bad("expected [BIND:]PORT:HOST:PORT, or a Unix socket path on either side")),
        };
        let listen = listening(listen)
            .ok_or_else(|| bad("expected [BIND:]PORT:HOST:PORT, or a Unix socket path on either side"))?
            .map_err(|e| bad(&e))?;
        Ok(Spec { listen, target })
    }
}

/// A `-L`: a stream forward, or a UDP one (`udp:[BIND:]PORT:HOST:PORT`, TCP-style addresses
/// only: no Unix socket carries datagrams here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Local {
    /// TCP or Unix.
    Stream(Spec),
    /// UDP: `listen` and `target` are written as `tcp:` endpoints and mean UDP.
    Datagram(Spec),
}

impl Local {
    /// Parses `-L`'s value.
    pub fn parse(s: &str) -> Result<Local, String> {
        let Some(rest) = s.strip_prefix("udp:") else { return Spec::parse(s).map(Local::Stream) };
        let spec = Spec::parse(rest).map_err(|e| e.replacen(&format!("`{rest}`"), &format!("`{s}`"), 1))?;
        match (&spec.listen, &spec.target) {
            (Endpoint::Tcp(..), Endpoint::Tcp(..)) => Ok(Local::Datagram(spec)),
            _ => Err(format!(
                "forward `{}`: a UDP forward is between ports, not Unix sockets",
                Printable::new(s).limit(120)
            )),
        }
    }
}

/// `-D`'s `[BIND:]PORT` (or a Unix socket path): where a SOCKS5 listener listens.
pub fn parse_listen(s: &str) -> Result<Endpoint, String> {
    let bad = |why: &str| format!("forward `{}`: {why}", Printable::new(s).limit(120));
    let parts = split(s).ok_or_else(|| bad("an unclosed `[`"))?;
    listening(&parts).ok_or_else(|| bad("expected [BIND:]PORT, or a Unix socket path"))?.map_err(|e| bad(&e))
}

/// The listening side of a forward, as its parts: `None` when there are too many.
fn listening(parts: &[String]) -> Option<Result<Endpoint, String>> {
    Some(match parts {
        [path] if is_path(path) => Ok(Endpoint::Unix(PathBuf::from(path))),
        [port] => tcp("127.0.0.1", port),
        [bind, port] => tcp(if bind.is_empty() || bind == "*" { "0.0.0.0" } else { bind.as_str() }, port),
        _ => return None,
    })
}

fn is_path(s: &str) -> bool {
    s.starts_with('/') || s.starts_with("./") || s.starts_with("../")
}

fn tcp(host: &str, port: &str) -> Result<Endpoint, String> {
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    let port: u16 =
        port.parse().map_err(|_| format!("`{}` is not a TCP port (0-65535)", Printable::new(port)))?;
    Ok(Endpoint::Tcp(host.to_string(), port))
}

/// Splits on the colons outside `[...]` (IPv6 addresses), brackets removed; a path after the
/// first part (it is the last) keeps its colons; a first one ends at its first colon.
fn split(s: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut part = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '[' if part.is_empty() => loop {
                match chars.next()? {
                    ']' => break,
                    c => part.push(c),
                }
            },
            '/' if !parts.is_empty() && (part.is_empty() || part == "." || part == "..") => {
                part.push('/');
                part.extend(chars.by_ref());
            }
            ':' => parts.push(std::mem::take(&mut part)),
            c => part.push(c),
        }
    }
    parts.push(part);
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(h: &str, p: u16) -> Endpoint {
        Endpoint::Tcp(h.into(), p)
    }
    fn unix(p: &str) -> Endpoint {
        Endpoint::Unix(p.into())
    }

    #[test]
    fn ssh_forms() {
        let table = [
            ("8080:localhost:80", tcp("127.0.0.1", 8080), tcp("localhost", 80)),
            ("0.0.0.0:8080:10.0.0.1:80", tcp("0.0.0.0", 8080), tcp("10.0.0.1", 80)),
            ("*:8080:db:5432", tcp("0.0.0.0", 8080), tcp("db", 5432)),
            (":8080:db:5432", tcp("0.0.0.0", 8080), tcp("db", 5432)),
            ("[::1]:8080:[fe80::1]:80", tcp("::1", 8080), tcp("fe80::1", 80)),
            ("8080:/run/app.sock", tcp("127.0.0.1", 8080), unix("/run/app.sock")),
            ("127.0.0.2:8080:/run/a:b.sock", tcp("127.0.0.2", 8080), unix("/run/a:b.sock")),
            ("/tmp/l.sock:example.com:443", unix("/tmp/l.sock"), tcp("example.com", 443)),
            ("./l.sock:/run/r.sock", unix("./l.sock"), unix("/run/r.sock")),
            ("0:h:1", tcp("127.0.0.1", 0), tcp("h", 1)),
        ];
        for (text, listen, target) in table {
            assert_eq!(Spec::parse(text), Ok(Spec { listen, target }), "{text}");
        }
    }

    #[test]
    fn udp_forwards() {
        let spec = Spec { listen: tcp("127.0.0.1", 5353), target: tcp("10.0.2.3", 53) };
        assert_eq!(Local::parse("udp:5353:10.0.2.3:53"), Ok(Local::Datagram(spec.clone())));
        assert_eq!(Local::parse("5353:10.0.2.3:53"), Ok(Local::Stream(spec)));
        assert_eq!(
            Local::parse("udp:5353:/run/dns.sock").unwrap_err(),
            "forward `udp:5353:/run/dns.sock`: a UDP forward is between ports, not Unix sockets"
        );
        assert_eq!(
            Local::parse("udp:53").unwrap_err(),
            "forward `udp:53`: expected [BIND:]PORT:HOST:PORT, or a Unix socket path on either side"
        );
    }

    #[test]
    fn socks_listeners() {
        assert_eq!(parse_listen("1080"), Ok(tcp("127.0.0.1", 1080)));
        assert_eq!(parse_listen("*:1080"), Ok(tcp("0.0.0.0", 1080)));
        assert_eq!(parse_listen("/run/socks.sock"), Ok(unix("/run/socks.sock")));
        assert_eq!(
            parse_listen("1:2:3").unwrap_err(),
            "forward `1:2:3`: expected [BIND:]PORT, or a Unix socket path"
        );
        assert_eq!(
            parse_listen("socks").unwrap_err(),
            "forward `socks`: `socks` is not a TCP port (0-65535)"
        );
    }

    #[test]
    fn bad_forms_say_what_is_wrong() {
        let table = [
            ("8080", "forward `8080`: expected [BIND:]PORT:HOST:PORT, or a Unix socket path on either side"),
            (
                "8080:host",
                "forward `8080:host`: expected [BIND:]PORT:HOST:PORT, or a Unix socket path on either side",
            ),
            (
                "a:b:c:d:5",
                "forward `a:b:c:d:5`: expected [BIND:]PORT:HOST:PORT, or a Unix socket path on either side",
            ),
            ("8080:host:http", "forward `8080:host:http`: `http` is not a TCP port (0-65535)"),
            ("70000:host:80", "forward `70000:host:80`: `70000` is not a TCP port (0-65535)"),
            ("8080::80", "forward `8080::80`: the host is empty"),
            ("[::1:8080:h:80", "forward `[::1:8080:h:80`: an unclosed `[`"),
            ("1:h\n:x", "forward `1:h\\n:x`: `x` is not a TCP port (0-65535)"),
            ("", "forward ``: expected [BIND:]PORT:HOST:PORT, or a Unix socket path on either side"),
        ];
        for (text, want) in table {
            assert_eq!(Spec::parse(text).unwrap_err(), want, "{text:?}");
        }
    }
}
