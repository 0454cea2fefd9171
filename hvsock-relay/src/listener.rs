//! A listening endpoint of any kind, bound or handed over by a service manager.

#[cfg(target_os = "linux")]
use std::sync::Arc;

use hvsock::tokio::AsyncListener;
use hvsock::Endpoint;

use crate::blocking;
use crate::conn::Conn;
use crate::peers::Peer;

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
    /// Bound by the one endpoint table (`open`), then registered with tokio.
    pub async fn bind(ep: &Endpoint) -> anyhow::Result<Listener> {
        Listener::bind_with_backlog(ep, None).await
    }

    /// [`bind`](Listener::bind), with a listen queue of `backlog` connections instead of the
    /// system's maximum (see [`blocking::Listener::set_backlog`]).
    pub async fn bind_with_backlog(ep: &Endpoint, backlog: Option<u32>) -> anyhow::Result<Listener> {
        let l = crate::open::bind(ep)?;
        if let Some(n) = backlog {
            l.set_backlog(n).map_err(|e| anyhow::anyhow!("--backlog {n}: {e}"))?;
        }
        Ok(Listener::from_blocking(l)?)
    }

    /// The same listener, accepting with tokio (it must be called inside a runtime).
    pub fn from_blocking(l: blocking::Listener) -> std::io::Result<Listener> {
        use blocking::Listener as B;
        Ok(match l {
            B::Vm(l) => Listener::Vm(AsyncListener::from_std(l)?),
            B::Tcp(l) => {
                l.set_nonblocking(true)?;
                Listener::Tcp(tokio::net::TcpListener::from_std(l)?)
            }
            #[cfg(unix)]
            B::Unix(l) => {
                l.set_nonblocking(true)?;
                Listener::Unix(tokio::net::UnixListener::from_std(l)?)
            }
            #[cfg(unix)]
            B::Hybrid(l, ep) => {
                l.set_nonblocking(true)?;
                Listener::Hybrid(tokio::net::UnixListener::from_std(l)?, ep)
            }
            #[cfg(target_os = "linux")]
            B::VmSeqpacket(l) => Listener::VmSeqpacket(hvsock::tokio::AsyncSeqpacketListener::from_std(l)?),
            #[cfg(unix)]
            B::UnixSeqpacket(s, ep) => {
                s.set_nonblocking(true)?;
                Listener::UnixSeqpacket(crate::messages::register(s)?, ep)
            }
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
                Conn { origin: Peer::of_vm(&peer), ..Conn::shared(s, peer.to_string()) }
            }
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                Conn { origin: Peer::Ip(peer.ip()), ..Conn::tcp(s, format!("tcp:{peer}")) }
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
                let origin = Peer::of_vm(&peer);
                let peer = format!("vsock-seqpacket:{}", peer.to_string().trim_start_matches("vsock:"));
                Conn { origin, ..Conn::message(crate::messages::MsgSocket::Vsock(Arc::new(s)), peer) }
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
