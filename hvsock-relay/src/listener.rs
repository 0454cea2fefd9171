//! A listening endpoint of any kind, bound or handed over by a service manager.

#[cfg(target_os = "linux")]
use std::sync::Arc;

use hvsock::tokio::AsyncListener;
use hvsock::{Endpoint, Role, ToSocketAddr};

use crate::conn::Conn;
use crate::error::socket_error;

/// A listening endpoint.
pub enum Listener {
    /// vsock or Hyper-V sockets.
    Vm(AsyncListener),
    /// TCP.
    Tcp(tokio::net::TcpListener),
    #[cfg(unix)]
    /// A Unix stream socket.
    Unix(tokio::net::UnixListener),
    /// The guest's connections to the host's PORT, on `UDS_PATH_PORT`.
    #[cfg(unix)]
    Hybrid(tokio::net::UnixListener, Endpoint),
    #[cfg(target_os = "linux")]
    /// vsock SOCK_SEQPACKET.
    VmSeqpacket(hvsock::tokio::AsyncSeqpacketListener),
    /// A Unix SOCK_SEQPACKET listener: `unix-seqpacket:PATH`, or a hybrid one at
    /// `UDS_PATH_PORT` (the endpoint is kept for names).
    #[cfg(unix)]
    UnixSeqpacket(tokio::io::unix::AsyncFd<socket2::Socket>, Endpoint),
}

impl Listener {
    /// Listens on `ep` (`systemd:[NAME]`: takes the socket a service manager handed over).
    pub async fn bind(ep: &Endpoint) -> anyhow::Result<Listener> {
        let action = || format!("cannot listen on {ep}");
        Ok(match ep {
            Endpoint::Vsock(..) | Endpoint::Hv(..) => {
                let addr = ep.to_socket_addr(Role::Bind)?;
                Listener::Vm(
                    AsyncListener::bind(addr)
                        .await
                        .map_err(|e| socket_error(format!("cannot listen on {addr}"), e))?,
                )
            }
            Endpoint::Tcp(host, port) => Listener::Tcp(
                tokio::net::TcpListener::bind((host.as_str(), *port))
                    .await
                    .map_err(|e| socket_error(action(), e))?,
            ),
            #[cfg(unix)]
            Endpoint::Unix(path) => Listener::Unix(
                hvsock::hybrid::remove_stale(path)
                    .and_then(|()| tokio::net::UnixListener::bind(path))
                    .map_err(|e| socket_error(action(), e))?,
            ),
            // The guest's connections to host port PORT arrive at UDS_PATH_PORT.
            #[cfg(unix)]
            Endpoint::Hybrid(path, port) => Listener::Hybrid(
                hvsock::hybrid::tokio::listen(path, *port).map_err(|e| socket_error(action(), e))?,
                ep.clone(),
            ),
            #[cfg(target_os = "linux")]
            Endpoint::VsockSeqpacket(..) => {
                let addr = ep.to_socket_addr(Role::Bind)?;
                Listener::VmSeqpacket(
                    hvsock::tokio::AsyncSeqpacketListener::bind(addr)
                        .await
                        .map_err(|e| socket_error(format!("cannot listen on {ep}"), e))?,
                )
            }
            #[cfg(unix)]
            Endpoint::UnixSeqpacket(path) => {
                let s = hvsock::hybrid::remove_stale(path)
                    .and_then(|()| {
                        socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::SEQPACKET, None)
                    })
                    .and_then(|s| s.bind(&socket2::SockAddr::unix(path)?).map(|()| s))
                    .and_then(|s| s.listen(1024).map(|()| s))
                    .map_err(|e| socket_error(action(), e))?;
                s.set_nonblocking(true)?;
                Listener::UnixSeqpacket(crate::messages::register(s)?, ep.clone())
            }
            #[cfg(unix)]
            Endpoint::HybridSeqpacket(path, port) => {
                let s =
                    hvsock::hybrid::listen_seqpacket(path, *port).map_err(|e| socket_error(action(), e))?;
                s.set_nonblocking(true)?;
                Listener::UnixSeqpacket(crate::messages::register(s)?, ep.clone())
            }
            Endpoint::Stdio => {
                anyhow::bail!("`-` cannot listen: give a vsock:, hv:, hybrid:, tcp: or unix: endpoint")
            }
            #[cfg(target_os = "linux")]
            Endpoint::Activated(name) => Listener::adopt(name.as_deref(), ep)?,
            #[allow(unreachable_patterns)]
            _ if ep.is_seqpacket() => {
                anyhow::bail!("{ep}: SOCK_SEQPACKET is Linux's (vsock and Unix sockets); Hyper-V sockets are stream only")
            }
            #[allow(unreachable_patterns)]
            _ => anyhow::bail!("{ep}: not supported on this platform"),
        })
    }

    /// The listening socket a service manager handed over (systemd socket activation): the one
    /// called `name`, or the only one; of whatever kind it is.
    #[cfg(target_os = "linux")]
    fn adopt(name: Option<&str>, ep: &Endpoint) -> anyhow::Result<Listener> {
        let fd = crate::activation::pick(name, ep)?;
        let socket = socket2::Socket::from(fd);
        let (domain, ty) = (socket.domain()?, socket.r#type()?);
        let fd = std::os::fd::OwnedFd::from(socket);
        let what = |e: std::io::Error| anyhow::anyhow!("{ep}: {e}");
        Ok(match (domain, ty) {
            (socket2::Domain::VSOCK, socket2::Type::STREAM) => {
                Listener::Vm(AsyncListener::from_std(hvsock::Listener::adopt(fd).map_err(what)?)?)
            }
            (socket2::Domain::VSOCK, socket2::Type::SEQPACKET) => {
                Listener::VmSeqpacket(hvsock::tokio::AsyncSeqpacketListener::from_std(
                    hvsock::SeqpacketListener::adopt(fd).map_err(what)?,
                )?)
            }
            (socket2::Domain::IPV4 | socket2::Domain::IPV6, socket2::Type::STREAM) => {
                let l = std::net::TcpListener::from(fd);
                l.set_nonblocking(true)?;
                Listener::Tcp(tokio::net::TcpListener::from_std(l)?)
            }
            (socket2::Domain::UNIX, socket2::Type::STREAM) => {
                let l = std::os::unix::net::UnixListener::from(fd);
                l.set_nonblocking(true)?;
                Listener::Unix(tokio::net::UnixListener::from_std(l)?)
            }
            (socket2::Domain::UNIX, socket2::Type::SEQPACKET) => {
                let s = socket2::Socket::from(fd);
                s.set_nonblocking(true)?;
                Listener::UnixSeqpacket(crate::messages::register(s)?, ep.clone())
            }
            (d, t) => anyhow::bail!(
                "{ep}: the socket handed over is of a kind hvsock does not serve ({d:?}, {t:?})"
            ),
        })
    }

    /// Whether its connections carry messages (SOCK_SEQPACKET).
    pub fn carries_messages(&self) -> bool {
        match self {
            #[cfg(target_os = "linux")]
            Listener::VmSeqpacket(_) => true,
            #[cfg(unix)]
            Listener::UnixSeqpacket(..) => true,
            _ => false,
        }
    }

    /// Where it listens, for the `listening on` line.
    pub fn local(&self) -> anyhow::Result<String> {
        Ok(match self {
            Listener::Vm(l) => l.local_addr()?.to_string(),
            Listener::Tcp(l) => format!("tcp:{}", l.local_addr()?),
            #[cfg(unix)]
            Listener::Unix(l) => {
                let addr = l.local_addr()?;
                format!("unix:{}", addr.as_pathname().map(|p| p.display().to_string()).unwrap_or_default())
            }
            #[cfg(unix)]
            Listener::Hybrid(l, ep) => {
                let addr = l.local_addr()?;
                let path = addr.as_pathname().map(|p| p.display().to_string()).unwrap_or_default();
                format!("{ep} (the guest's connections to host port arrive at {path})")
            }
            #[cfg(target_os = "linux")]
            Listener::VmSeqpacket(l) => {
                format!("vsock-seqpacket:{}", l.local_addr()?.to_string().trim_start_matches("vsock:"))
            }
            #[cfg(unix)]
            Listener::UnixSeqpacket(l, ep) => match ep {
                Endpoint::HybridSeqpacket(..) => {
                    let addr = l.get_ref().local_addr()?;
                    let path = addr.as_pathname().map(|p| p.display().to_string()).unwrap_or_default();
                    format!("{ep} (the guest's connections to host port arrive at {path})")
                }
                _ => ep.to_string(),
            },
        })
    }

    /// The next connection.
    pub async fn accept(&self) -> std::io::Result<Conn> {
        Ok(match self {
            Listener::Vm(l) => {
                let (s, peer) = l.accept().await?;
                Conn::shared(s, peer.to_string())
            }
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                Conn::tcp(s, format!("tcp:{peer}"))
            }
            #[cfg(unix)]
            Listener::Unix(l) => {
                let (s, _) = l.accept().await?;
                Conn::unix(s, "unix peer".to_string())
            }
            #[cfg(unix)]
            Listener::Hybrid(l, ep) => {
                let (s, _) = l.accept().await?;
                Conn::hybrid(s, format!("the guest via {ep}"))
            }
            #[cfg(target_os = "linux")]
            Listener::VmSeqpacket(l) => {
                let (s, peer) = l.accept().await?;
                let peer = format!("vsock-seqpacket:{}", peer.to_string().trim_start_matches("vsock:"));
                Conn::message(crate::messages::MsgSocket::Vsock(Arc::new(s)), peer)
            }
            #[cfg(unix)]
            Listener::UnixSeqpacket(l, ep) => {
                let s = loop {
                    let mut guard = l.readable().await?;
                    match guard.try_io(|fd| fd.get_ref().accept()) {
                        Ok(r) => break r?.0,
                        Err(_would_block) => continue,
                    }
                };
                let socket = crate::messages::MsgSocket::unix(s)?;
                match ep {
                    Endpoint::HybridSeqpacket(..) => {
                        Conn::hybrid_message(socket, format!("the guest via {ep}"))
                    }
                    _ => Conn::message(socket, "unix-seqpacket peer".to_string()),
                }
            }
        })
    }
}
