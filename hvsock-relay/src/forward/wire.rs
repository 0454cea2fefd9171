//! The lines that open each stream of a forward connection, before its bytes.
//!
//! The client's first stream says `HELLO 1 <keepalive ms>` and stays open as the heartbeat:
//! the client writes a byte every keepalive period and the serving end sends each back. Every
//! other stream starts with one request line and its answer, `OK` or `ERR <reason>`:
//! - `OPEN <tcp:HOST:PORT | unix:PATH>`, from the client: connect there, and this stream is
//!   that connection (`-L`);
//! - `LISTEN <n> <tcp:HOST:PORT | unix:PATH>`, from the client: listen there for as long as this
//!   stream is open (`-R`); each connection accepted comes back to the client as a stream the
//!   serving end opens with `ACCEPTED <n>`, which the client joins to its own target `n`.
//!
//! A line is at most [`MAX_LINE`] bytes; nothing of the peer's is trusted further than that.

use std::time::Duration;

use hvsock::{Endpoint, Printable};

/// The protocol's version, in `HELLO`.
pub const VERSION: u32 = 1;

/// The longest line either end sends (without its newline).
pub const MAX_LINE: usize = 1024;

/// A stream's first line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// The heartbeat stream: the client's protocol version and its keepalive period.
    Hello {
        /// [`VERSION`] of the client.
        version: u32,
        /// How often the client sends its heartbeat byte.
        keepalive: Duration,
    },
    /// Connect to this target (tcp or unix) and join it to this stream.
    Open(Endpoint),
    /// Send this stream's datagrams (length-prefixed frames) to this UDP target, and its
    /// answers back (`-L udp:`).
    OpenUdp {
        /// The target's host.
        host: String,
        /// Its port.
        port: u16,
    },
    /// Listen at this place (tcp or unix) while this stream is open; connections come back as
    /// `ACCEPTED id`.
    Listen {
        /// The client's name for this listener.
        id: u32,
        /// Where to listen.
        at: Endpoint,
    },
    /// A connection accepted on the client's listener `id`.
    Accepted {
        /// As in `LISTEN`.
        id: u32,
    },
}

/// The answer to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Done: the stream is the connection (or the listener is up).
    Ok,
    /// Refused, with the reason (one line, safe to log).
    Err(String),
}

impl Request {
    /// The line to send, without its newline.
    pub fn line(&self) -> String {
        match self {
            Request::Hello { version, keepalive } => format!("HELLO {version} {}", keepalive.as_millis()),
            Request::Open(to) => format!("OPEN {to}"),
            Request::OpenUdp { host, port } if host.contains(':') => format!("OPEN udp:[{host}]:{port}"),
            Request::OpenUdp { host, port } => format!("OPEN udp:{host}:{port}"),
            Request::Listen { id, at } => format!("LISTEN {id} {at}"),
            Request::Accepted { id } => format!("ACCEPTED {id}"),
        }
    }

    /// A request line (without its newline); the error is safe to log and to answer with.
    pub fn parse(line: &[u8]) -> Result<Request, String> {
        let text = std::str::from_utf8(line).map_err(|_| format!("not UTF-8: `{}`", shown(line)))?;
        let text = text.strip_suffix('\r').unwrap_or(text);
        let (verb, rest) = text.split_once(' ').unwrap_or((text, ""));
        let number = |s: &str, what: &str| {
            s.parse::<u32>().map_err(|_| format!("{verb}: `{}` is not {what}", Printable::new(s).limit(40)))
        };
        match verb {
            "HELLO" => {
                let (version, ms) =
                    rest.split_once(' ').ok_or("HELLO: expected `HELLO VERSION KEEPALIVE_MS`")?;
                let version = number(version, "a version")?;
                if version != VERSION {
                    return Err(format!("HELLO: version {version}, but this end speaks {VERSION}"));
                }
                let ms = number(ms, "a keepalive in milliseconds")?;
                if ms == 0 {
                    return Err("HELLO: a keepalive of 0 ms".into());
                }
                Ok(Request::Hello { version, keepalive: Duration::from_millis(ms.into()) })
            }
            "OPEN" => match rest.strip_prefix("udp:") {
                Some(hp) => {
                    let (host, port) = hp.rsplit_once(':').ok_or("OPEN: expected `udp:HOST:PORT`")?;
                    let host = host.trim_start_matches('[').trim_end_matches(']');
                    let port = port.parse().map_err(|_| {
                        format!("OPEN: `{}` is not a UDP port", Printable::new(port).limit(40))
                    })?;
                    if host.is_empty() {
                        return Err("OPEN: the host is empty".into());
                    }
                    Ok(Request::OpenUdp { host: host.to_string(), port })
                }
                None => Ok(Request::Open(place(rest, verb)?)),
            },
            "LISTEN" => {
                let (id, at) = rest.split_once(' ').ok_or("LISTEN: expected `LISTEN N ENDPOINT`")?;
                Ok(Request::Listen { id: number(id, "a listener number")?, at: place(at, verb)? })
            }
            "ACCEPTED" => Ok(Request::Accepted { id: number(rest, "a listener number")? }),
            _ => Err(format!("unknown request `{}`", shown(line))),
        }
    }
}

impl Answer {
    /// The line to send, without its newline: a reason's own line breaks are escaped.
    pub fn line(&self) -> String {
        match self {
            Answer::Ok => "OK".into(),
            Answer::Err(why) => format!("ERR {}", Printable::new(why).limit(MAX_LINE - 8)),
        }
    }

    /// An answer line (without its newline).
    pub fn parse(line: &[u8]) -> Result<Answer, String> {
        let text = String::from_utf8_lossy(line);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        match text.split_once(' ') {
            None if text == "OK" => Ok(Answer::Ok),
            None if text == "ERR" => Ok(Answer::Err(String::new())),
            Some(("ERR", why)) => Ok(Answer::Err(Printable::new(why).limit(200).to_string())),
            _ => Err(format!("expected `OK` or `ERR reason`, got `{}`", shown(line))),
        }
    }
}

fn shown(line: &[u8]) -> String {
    Printable::new(&String::from_utf8_lossy(line)).limit(80).to_string()
}

/// A `tcp:` or `unix:` endpoint: the only kinds a forward reaches or listens on.
fn place(text: &str, verb: &str) -> Result<Endpoint, String> {
    let ep: Endpoint =
        text.parse().map_err(|e| format!("{verb}: `{}`: {e}", Printable::new(text).limit(120)))?;
    match ep {
        Endpoint::Tcp(..) | Endpoint::Unix(..) => Ok(ep),
        _ => Err(format!(
            "{verb}: `{}`: a forward reaches tcp: and unix: endpoints",
            Printable::new(text).limit(120)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let table = [
            Request::Hello { version: 1, keepalive: Duration::from_millis(10_000) },
            Request::Open(Endpoint::Tcp("127.0.0.1".into(), 80)),
            Request::Open(Endpoint::Tcp("::1".into(), 22)),
            Request::Open(Endpoint::Unix("/run/a b.sock".into())),
            Request::OpenUdp { host: "10.0.2.3".into(), port: 53 },
            Request::OpenUdp { host: "::1".into(), port: 5353 },
            Request::Listen { id: 7, at: Endpoint::Tcp("0.0.0.0".into(), 8080) },
            Request::Accepted { id: 4_000_000_000 },
        ];
        for r in table {
            assert_eq!(Request::parse(r.line().as_bytes()), Ok(r.clone()), "{}", r.line());
            let crlf = format!("{}\r", r.line());
            assert_eq!(Request::parse(crlf.as_bytes()), Ok(r));
        }
        for a in [Answer::Ok, Answer::Err("connection refused".into())] {
            assert_eq!(Answer::parse(a.line().as_bytes()), Ok(a));
        }
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let table: [(&[u8], &str); 13] = [
            (b"OPEN udp:1.2.3.4", "OPEN: expected `udp:HOST:PORT`"),
            (b"OPEN udp::53", "OPEN: the host is empty"),
            (b"GET / HTTP/1.1", "unknown request `GET / HTTP/1.1`"),
            (b"OPEN vsock:3:22", "OPEN: `vsock:3:22`: a forward reaches tcp: and unix: endpoints"),
            (b"OPEN -", "OPEN: `-`: a forward reaches tcp: and unix: endpoints"),
            (b"OPEN", "OPEN: ``: endpoint ``: no kind: expected vsock:, hv:, hybrid:, tcp:, unix:, vsock-seqpacket:, unix-seqpacket:, hybrid-seqpacket:, systemd: or -"),
            (b"LISTEN tcp:1.2.3.4:5", "LISTEN: expected `LISTEN N ENDPOINT`"),
            (b"LISTEN x tcp:1.2.3.4:5", "LISTEN: `x` is not a listener number"),
            (b"ACCEPTED -1", "ACCEPTED: `-1` is not a listener number"),
            (b"HELLO 2 1000", "HELLO: version 2, but this end speaks 1"),
            (b"HELLO 1 0", "HELLO: a keepalive of 0 ms"),
            (b"HELLO 1", "HELLO: expected `HELLO VERSION KEEPALIVE_MS`"),
            (b"\xff\nOPEN", "not UTF-8: `\u{fffd}\\nOPEN`"),
        ];
        for (line, want) in table {
            assert_eq!(Request::parse(line).unwrap_err(), want, "{line:?}");
        }
        assert_eq!(Answer::parse(b"OKAY").unwrap_err(), "expected `OK` or `ERR reason`, got `OKAY`");
        // A reason cannot forge a second line.
        assert_eq!(Answer::Err("a\nOK".into()).line(), "ERR a\\nOK");
    }
}
