//! `-D`: a SOCKS5 listener (RFC 1928, CONNECT with no authentication), whose connections the
//! serving end makes, so a guest with no network reaches what the host allows. What a client
//! asks for is only a request: the serving end's allowlist decides.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use hvsock::Endpoint;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long a client has for its greeting and request.
const HANDSHAKE_WITHIN: Duration = Duration::from_secs(10);

/// The reply codes we send (RFC 1928, section 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Succeeded.
    Ok = 0,
    /// General failure.
    Failure = 1,
    /// Not allowed by the ruleset (the serving end's allowlist).
    NotAllowed = 2,
    /// Host unreachable (the name did not resolve, the connect timed out).
    HostUnreachable = 4,
    /// Connection refused.
    Refused = 5,
    /// Command not supported (BIND, UDP ASSOCIATE).
    CommandNotSupported = 7,
    /// Address type not supported.
    AddressNotSupported = 8,
}

/// What a refusal from the serving end (its `ERR` reason) means to a SOCKS client.
pub fn reply_for(why: &str) -> Reply {
    if why.contains("allowlist") {
        Reply::NotAllowed
    } else if why.contains("refused") || why.contains("nothing is listening") {
        Reply::Refused
    } else if why.contains("timed out") || why.contains("resolve") || why.contains("unreachable") {
        Reply::HostUnreachable
    } else {
        Reply::Failure
    }
}

/// The reply to a request, with an empty bound address (clients do not use it for CONNECT).
pub fn reply(code: Reply) -> [u8; 10] {
    [5, code as u8, 0, 1, 0, 0, 0, 0, 0, 0]
}

/// What the greeting's methods allow: `Some` is the answer to send; no "no authentication"
/// among them is a refusal (0xFF).
pub fn choose_method(methods: &[u8]) -> [u8; 2] {
    [5, if methods.contains(&0) { 0 } else { 0xff }]
}

/// A request's head: version, command, reserved, address type. The address follows.
pub fn check_head(head: [u8; 4]) -> Result<u8, (Reply, String)> {
    match head {
        [5, 1, _, atyp @ (1 | 3 | 4)] => Ok(atyp),
        [5, 1, _, atyp] => Err((Reply::AddressNotSupported, format!("address type {atyp}"))),
        [5, cmd, ..] => Err((Reply::CommandNotSupported, format!("command {cmd} (only CONNECT, 1)"))),
        [v, ..] => Err((Reply::Failure, format!("SOCKS version {v}, not 5"))),
    }
}

/// The target of a request's address (`addr`: IPv4's 4 bytes, a name, IPv6's 16) and port.
pub fn target(atyp: u8, addr: &[u8], port: u16) -> Result<Endpoint, (Reply, String)> {
    let host = match atyp {
        1 => {
            Ipv4Addr::from(<[u8; 4]>::try_from(addr).map_err(|_| bad("an IPv4 address of the wrong length"))?)
                .to_string()
        }
        4 => Ipv6Addr::from(
            <[u8; 16]>::try_from(addr).map_err(|_| bad("an IPv6 address of the wrong length"))?,
        )
        .to_string(),
        _ => {
            let name = std::str::from_utf8(addr).map_err(|_| bad("a host name that is not UTF-8"))?;
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
                return Err(bad(&format!("host name `{}`", hvsock::Printable::new(name).limit(80))));
            }
            name.to_string()
        }
    };
    Ok(Endpoint::Tcp(host, port))
}

fn bad(what: &str) -> (Reply, String) {
    (Reply::AddressNotSupported, what.to_string())
}

/// Reads a client's greeting and request, answering the greeting; returns what it asks to
/// reach. On a bad request the client is sent its reply code and the error says why.
pub async fn handshake<R, W>(r: &mut R, w: &mut W) -> Result<Endpoint, String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match tokio::time::timeout(HANDSHAKE_WITHIN, ask(r, w)).await {
        Err(_) => Err(format!("no SOCKS request in {} s", HANDSHAKE_WITHIN.as_secs())),
        Ok(Err((code, why))) => {
            if let Some(code) = code {
                let _ = w.write_all(&reply(code)).await;
            }
            Err(format!("SOCKS: {why}"))
        }
        Ok(Ok(ep)) => Ok(ep),
    }
}

async fn ask<R, W>(s: &mut R, w: &mut W) -> Result<Endpoint, (Option<Reply>, String)>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let io = |e: std::io::Error| (None, e.to_string());
    let mut two = [0u8; 2];
    s.read_exact(&mut two).await.map_err(io)?;
    if two[0] != 5 {
        return Err((None, format!("version {}, not 5 (a SOCKS4 or HTTP client?)", two[0])));
    }
    let mut methods = vec![0u8; two[1].into()];
    s.read_exact(&mut methods).await.map_err(io)?;
    let answer = choose_method(&methods);
    w.write_all(&answer).await.map_err(io)?;
    if answer[1] != 0 {
        return Err((None, "the client offers no method without authentication".into()));
    }
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await.map_err(io)?;
    let atyp = check_head(head).map_err(|(c, w)| (Some(c), w))?;
    let len = match atyp {
        1 => 4,
        4 => 16,
        _ => {
            let mut n = [0u8; 1];
            s.read_exact(&mut n).await.map_err(io)?;
            n[0].into()
        }
    };
    let mut addr = vec![0u8; len + 2];
    s.read_exact(&mut addr).await.map_err(io)?;
    let port = u16::from_be_bytes([addr[len], addr[len + 1]]);
    target(atyp, &addr[..len], port).map_err(|(c, w)| (Some(c), w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies() {
        assert_eq!(choose_method(&[2, 0]), [5, 0]);
        assert_eq!(choose_method(&[2]), [5, 0xff]);
        assert_eq!(check_head([5, 1, 0, 3]), Ok(3));
        assert_eq!(check_head([5, 2, 0, 1]).unwrap_err().0, Reply::CommandNotSupported);
        assert_eq!(check_head([5, 3, 0, 1]).unwrap_err().0, Reply::CommandNotSupported);
        assert_eq!(check_head([5, 1, 0, 9]).unwrap_err().0, Reply::AddressNotSupported);
        assert_eq!(check_head([4, 1, 0, 1]).unwrap_err().0, Reply::Failure);
        let tcp = |h: &str, p| Ok(Endpoint::Tcp(h.into(), p));
        assert_eq!(target(1, &[127, 0, 0, 1], 80), tcp("127.0.0.1", 80));
        assert_eq!(target(4, &[0; 16], 443), tcp("::", 443));
        assert_eq!(target(3, b"db.internal", 5432), tcp("db.internal", 5432));
        for bad in [&b""[..], b"a b", b"x\n", b"a:1", b"\xff"] {
            assert_eq!(target(3, bad, 1).unwrap_err().0, Reply::AddressNotSupported, "{bad:?}");
        }
        assert_eq!(target(1, &[1, 2, 3], 1).unwrap_err().0, Reply::AddressNotSupported);
        assert_eq!(reply(Reply::NotAllowed), [5, 2, 0, 1, 0, 0, 0, 0, 0, 0]);
        let table = [
            ("tcp:10.0.0.1:22 is not on the serving end's allowlist", Reply::NotAllowed),
            ("cannot connect to tcp:127.0.0.1:1: Connection refused (os error 111)", Reply::Refused),
            ("cannot connect to tcp:10.9.9.9:80: timed out", Reply::HostUnreachable),
            ("the connection to vsock:2:5000 is down", Reply::Failure),
        ];
        for (why, code) in table {
            assert_eq!(reply_for(why), code, "{why}");
        }
    }

    #[tokio::test]
    async fn a_whole_handshake_and_a_refused_command() {
        let (mut client, server) = tokio::io::duplex(256);
        let ask = tokio::spawn(async move {
            let (mut r, mut w) = tokio::io::split(server);
            handshake(&mut r, &mut w).await
        });
        client.write_all(&[5, 1, 0, 5, 1, 0, 3, 9]).await.unwrap();
        client.write_all(b"localhost\x1f\x90").await.unwrap();
        let mut answer = [0u8; 2];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer, [5, 0]);
        assert_eq!(ask.await.unwrap(), Ok(Endpoint::Tcp("localhost".into(), 8080)));

        let (mut client, server) = tokio::io::duplex(256);
        let ask = tokio::spawn(async move {
            let (mut r, mut w) = tokio::io::split(server);
            handshake(&mut r, &mut w).await
        });
        client.write_all(&[5, 1, 0, 5, 3, 0, 1, 1, 2, 3, 4, 0, 53]).await.unwrap();
        let mut answer = [0u8; 12];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer[..2], [5, 0]);
        assert_eq!(answer[2..4], [5, Reply::CommandNotSupported as u8]);
        assert_eq!(ask.await.unwrap().unwrap_err(), "SOCKS: command 3 (only CONNECT, 1)");
    }
}
