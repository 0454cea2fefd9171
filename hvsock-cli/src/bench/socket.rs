//! Blocking connections and listeners for any endpoint kind: a measuring tool wants one
//! thread per stream and plain read/write calls, with no runtime between it and the socket.

use std::io::{self, Read, Write};
use std::time::Duration;

use hvsock::{Endpoint, Role, ToSocketAddr};

/// One connection, of any kind. The message ones (SOCK_SEQPACKET) read and write one whole
/// message per call.
pub enum Socket {
    Vm(hvsock::Stream),
    Tcp(std::net::TcpStream),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixStream),
    #[cfg(target_os = "linux")]
    VmSeqpacket(hvsock::Seqpacket),
    #[cfg(unix)]
    UnixSeqpacket(socket2::Socket),
}

impl Socket {
    pub fn connect(ep: &Endpoint, timeout: Duration, retries: u32) -> anyhow::Result<Socket> {
        let connector = hvsock::Connector::new().timeout(timeout).retries(retries);
        let failed = |e: io::Error| anyhow::anyhow!("cannot connect to {ep}: {e}");
        Ok(match ep {
            Endpoint::Vsock(..) | Endpoint::Hv(..) => {
                Socket::Vm(connector.connect(ep.to_socket_addr(Role::Connect)?).map_err(failed)?)
            }
            Endpoint::Tcp(host, port) => {
                let s = std::net::TcpStream::connect((host.as_str(), *port)).map_err(failed)?;
                s.set_nodelay(true)?;
                Socket::Tcp(s)
            }
            #[cfg(unix)]
            Endpoint::Unix(path) => {
                Socket::Unix(std::os::unix::net::UnixStream::connect(path).map_err(failed)?)
            }
            #[cfg(unix)]
            Endpoint::Hybrid(path, port) => {
                Socket::Unix(connector.connect_hybrid(path, *port).map_err(failed)?.0)
            }
            #[cfg(target_os = "linux")]
            Endpoint::VsockSeqpacket(..) => Socket::VmSeqpacket(
                connector.connect_seqpacket(ep.to_socket_addr(Role::Connect)?).map_err(failed)?,
            ),
            #[cfg(unix)]
            Endpoint::UnixSeqpacket(path) => {
                let s = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::SEQPACKET, None)?;
                s.connect(&socket2::SockAddr::unix(path)?).map_err(failed)?;
                Socket::UnixSeqpacket(s)
            }
            #[cfg(unix)]
            Endpoint::HybridSeqpacket(path, port) => {
                Socket::UnixSeqpacket(connector.connect_hybrid_seqpacket(path, *port).map_err(failed)?.0)
            }
            _ => anyhow::bail!(
                "{ep}: bench needs a vsock:, hv:, hybrid:, tcp:, unix: or *-seqpacket: endpoint"
            ),
        })
    }

    /// Whether each read and write is one whole message.
    pub fn carries_messages(&self) -> bool {
        match self {
            #[cfg(target_os = "linux")]
            Socket::VmSeqpacket(_) => true,
            #[cfg(unix)]
            Socket::UnixSeqpacket(_) => true,
            _ => false,
        }
    }

    pub fn try_clone(&self) -> io::Result<Socket> {
        Ok(match self {
            Socket::Vm(s) => Socket::Vm(s.try_clone()?),
            Socket::Tcp(s) => Socket::Tcp(s.try_clone()?),
            #[cfg(unix)]
            Socket::Unix(s) => Socket::Unix(s.try_clone()?),
            #[cfg(target_os = "linux")]
            Socket::VmSeqpacket(s) => Socket::VmSeqpacket(s.try_clone()?),
            #[cfg(unix)]
            Socket::UnixSeqpacket(s) => Socket::UnixSeqpacket(s.try_clone()?),
        })
    }

    /// Reads what has arrived without taking it (`MSG_PEEK`).
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Vm(s) => s.peek(buf),
            Socket::Tcp(s) => s.peek(buf),
            #[cfg(unix)]
            Socket::Unix(s) => hvsock::recv::peek(&socket2::SockRef::from(s), buf),
            // Lines come as messages of their own: see `wire::read_line`.
            #[cfg(unix)]
            Socket::UnixSeqpacket(_) => Err(io::ErrorKind::Unsupported.into()),
            #[cfg(target_os = "linux")]
            Socket::VmSeqpacket(_) => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    /// For the 1-byte round trips of `rr`: Nagle off where there is one.
    pub fn set_nodelay(&self) {
        if let Socket::Tcp(s) = self {
            let _ = s.set_nodelay(true);
        }
    }
}

/// A message that did not fit the buffer: a measuring tool must not take a cut one for whole.
#[cfg(unix)]
fn cut(len: usize, room: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("a message of {len} bytes did not fit the {room}-byte buffer"),
    )
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Vm(s) => s.read(buf),
            Socket::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            Socket::Unix(s) => s.read(buf),
            #[cfg(target_os = "linux")]
            Socket::VmSeqpacket(s) => {
                let m = s.recv(buf)?;
                if m.is_truncated() {
                    return Err(cut(m.len, buf.len()));
                }
                Ok(m.bytes)
            }
            #[cfg(unix)]
            Socket::UnixSeqpacket(s) => {
                let room = buf.len();
                let len = hvsock::recv::recv_with_flags(s, buf, libc::MSG_TRUNC)?;
                if len > room {
                    return Err(cut(len, room));
                }
                Ok(len)
            }
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Vm(s) => s.write(buf),
            Socket::Tcp(s) => s.write(buf),
            #[cfg(unix)]
            Socket::Unix(s) => s.write(buf),
            #[cfg(target_os = "linux")]
            Socket::VmSeqpacket(s) => s.send(buf),
            #[cfg(unix)]
            Socket::UnixSeqpacket(s) => s.send_with_flags(buf, libc::MSG_NOSIGNAL),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A listening socket of any kind.
pub enum Listener {
    Vm(hvsock::Listener),
    Tcp(std::net::TcpListener),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixListener),
    #[cfg(target_os = "linux")]
    VmSeqpacket(hvsock::SeqpacketListener),
    #[cfg(unix)]
    UnixSeqpacket(socket2::Socket),
}

impl Listener {
    pub fn bind(ep: &Endpoint) -> anyhow::Result<Listener> {
        let failed = |e: io::Error| anyhow::anyhow!("cannot listen on {ep}: {e}");
        Ok(match ep {
            Endpoint::Vsock(..) | Endpoint::Hv(..) => {
                Listener::Vm(hvsock::Listener::bind(ep.to_socket_addr(Role::Bind)?).map_err(failed)?)
            }
            Endpoint::Tcp(host, port) => {
                Listener::Tcp(std::net::TcpListener::bind((host.as_str(), *port)).map_err(failed)?)
            }
            #[cfg(unix)]
            Endpoint::Unix(path) => Listener::Unix(
                hvsock::hybrid::remove_stale(path)
                    .and_then(|()| std::os::unix::net::UnixListener::bind(path))
                    .map_err(failed)?,
            ),
            // A guest's connections to the host's PORT arrive at UDS_PATH_PORT.
            #[cfg(unix)]
            Endpoint::Hybrid(path, port) => {
                Listener::Unix(hvsock::hybrid::listen(path, *port).map_err(failed)?)
            }
            #[cfg(target_os = "linux")]
            Endpoint::VsockSeqpacket(..) => Listener::VmSeqpacket(
                hvsock::SeqpacketListener::bind(ep.to_socket_addr(Role::Bind)?).map_err(failed)?,
            ),
            #[cfg(unix)]
            Endpoint::UnixSeqpacket(path) => {
                hvsock::hybrid::remove_stale(path).map_err(failed)?;
                let s = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::SEQPACKET, None)?;
                s.bind(&socket2::SockAddr::unix(path)?).map_err(failed)?;
                s.listen(1024)?;
                Listener::UnixSeqpacket(s)
            }
            #[cfg(unix)]
            Endpoint::HybridSeqpacket(path, port) => {
                Listener::UnixSeqpacket(hvsock::hybrid::listen_seqpacket(path, *port).map_err(failed)?)
            }
            _ => anyhow::bail!(
                "{ep}: bench --serve needs a vsock:, hv:, hybrid:, tcp:, unix: or *-seqpacket: endpoint"
            ),
        })
    }

    pub fn accept(&self) -> io::Result<Socket> {
        Ok(match self {
            Listener::Vm(l) => Socket::Vm(l.accept()?.0),
            Listener::Tcp(l) => {
                let s = l.accept()?.0;
                s.set_nodelay(true)?;
                Socket::Tcp(s)
            }
            #[cfg(unix)]
            Listener::Unix(l) => Socket::Unix(l.accept()?.0),
            #[cfg(target_os = "linux")]
            Listener::VmSeqpacket(l) => Socket::VmSeqpacket(l.accept()?.0),
            #[cfg(unix)]
            Listener::UnixSeqpacket(l) => Socket::UnixSeqpacket(l.accept()?.0),
        })
    }
}
