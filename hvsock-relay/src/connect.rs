//! Opening a connection to an endpoint of any kind.

#[cfg(target_os = "linux")]
use std::sync::Arc;
use std::time::Duration;

use hvsock::{Endpoint, Role, ToSocketAddr};

use crate::conn::Conn;
use crate::error::socket_error;

/// Connects to an endpoint; VM sockets and hybrid vsock retry by the library's one policy
/// (`Connector`), like `client --retries`.
pub async fn connect(ep: &Endpoint, timeout: Duration, retries: u32) -> anyhow::Result<Conn> {
    let action = || format!("cannot connect to {ep}");
    let connector = hvsock::Connector::new().timeout(timeout).retries(retries);
    let conn = match ep {
        Endpoint::Vsock(..) | Endpoint::Hv(..) => {
            let addr = ep.to_socket_addr(Role::Connect)?;
            let stream = connector
                .connect_async(addr)
                .await
                .map_err(|e| socket_error(format!("cannot connect to {addr}"), e))?;
            Conn::shared(stream, addr.to_string())
        }
        Endpoint::Tcp(host, port) => {
            let stream =
                tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host.as_str(), *port)))
                    .await
                    .map_err(|_| anyhow::anyhow!("{}: timed out", action()))?
                    .map_err(|e| socket_error(action(), e))?;
            Conn::tcp(stream, ep.to_string())
        }
        #[cfg(unix)]
        Endpoint::Unix(path) => {
            let stream =
                tokio::net::UnixStream::connect(path).await.map_err(|e| socket_error(action(), e))?;
            Conn::unix(stream, ep.to_string())
        }
        #[cfg(unix)]
        Endpoint::Hybrid(path, port) => {
            let (stream, _) = connector
                .connect_hybrid_async(path, *port)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", action()))?;
            Conn::hybrid(stream, ep.to_string())
        }
        #[cfg(target_os = "linux")]
        Endpoint::VsockSeqpacket(..) => {
            let addr = ep.to_socket_addr(Role::Connect)?;
            let conn = connector
                .connect_seqpacket_async(addr)
                .await
                .map_err(|e| socket_error(format!("cannot connect to {ep}"), e))?;
            Conn::message(crate::messages::MsgSocket::Vsock(Arc::new(conn)), ep.to_string())
        }
        #[cfg(unix)]
        Endpoint::UnixSeqpacket(path) => {
            let s = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::SEQPACKET, None)
                .and_then(|s| s.connect(&socket2::SockAddr::unix(path)?).map(|()| s))
                .map_err(|e| socket_error(action(), e))?;
            Conn::message(crate::messages::MsgSocket::unix(s)?, ep.to_string())
        }
        #[cfg(unix)]
        Endpoint::HybridSeqpacket(path, port) => {
            // The handshake is two short messages: on the blocking pool, with the connector's
            // timeout and retries.
            let (path, port) = (path.clone(), *port);
            let (s, _) = tokio::task::spawn_blocking(move || connector.connect_hybrid_seqpacket(&path, port))
                .await?
                .map_err(|e| anyhow::anyhow!("{}: {e}", action()))?;
            Conn::hybrid_message(crate::messages::MsgSocket::unix(s)?, ep.to_string())
        }
        Endpoint::Stdio => Conn::stdio(),
        Endpoint::Activated(_) => anyhow::bail!(
            "{ep} is a listening socket a service manager hands over: it is for listen, relay's FROM and server, not for connecting"
        ),
        #[allow(unreachable_patterns)]
        _ if ep.is_seqpacket() => {
            anyhow::bail!(
                "{ep}: SOCK_SEQPACKET is Linux's (vsock and Unix sockets); Hyper-V sockets are stream only"
            )
        }
        #[allow(unreachable_patterns)]
        _ => anyhow::bail!("{ep}: not supported on this platform"),
    };
    Ok(conn)
}
