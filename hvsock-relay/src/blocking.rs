//! Blocking connections and listeners for any endpoint kind: a measuring tool wants one
//! thread per stream and plain read/write calls, with no runtime between it and the socket.
//! They are opened by the same table as the engine's connections (see `open`).
//!
//! ```no_run
//! use std::io::{Read, Write};
//! let mut s = hvsock_relay::blocking::Socket::connect(
//!     &"vsock:3:5000".parse()?, std::time::Duration::from_secs(5), 0)?;
//! s.write_all(b"ping")?;
//! let mut answer = [0u8; 4];
//! s.read_exact(&mut answer)?;
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::future::Future;
use std::io::{self, Read, Write};
#[cfg(unix)]
use std::path::Path;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use hvsock::{Connector, Endpoint};

use crate::open::{self, Face};
use crate::peers::Peer;

/// One connection, of any kind. The message ones (SOCK_SEQPACKET) read and write one whole
/// message per call.
pub enum Socket {
    /// vsock or Hyper-V sockets.
    Vm(hvsock::Stream),
    /// TCP.
    Tcp(std::net::TcpStream),
    #[cfg(unix)]
    /// A Unix stream socket, hybrid vsock's included.
    Unix(std::os::unix::net::UnixStream),
    #[cfg(target_os = "linux")]
    /// vsock SOCK_SEQPACKET.
    VmSeqpacket(hvsock::Seqpacket),
    #[cfg(unix)]
    /// A Unix SOCK_SEQPACKET socket, hybrid's included.
    UnixSeqpacket(socket2::Socket),
}

impl Socket {
    /// Connects to `ep`, retrying VM sockets and hybrid vsock as [`connect`](crate::connect()) does.
    pub fn connect(ep: &Endpoint, timeout: Duration, retries: u32) -> anyhow::Result<Socket> {
        ready(open::connect::<Blocking>(ep, timeout, retries, Duration::ZERO, &mut |_, _| {}))
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

    /// Another handle on the same socket (for a reader thread beside a writer).
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

/// A listening socket of any kind, blocking.
pub enum Listener {
    /// vsock or Hyper-V sockets.
    Vm(hvsock::Listener),
    /// TCP.
    Tcp(std::net::TcpListener),
    /// A Unix stream socket.
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixListener),
    /// The guest's connections to the host's PORT, on `UDS_PATH_PORT` (the endpoint is kept
    /// for names).
    #[cfg(unix)]
    Hybrid(std::os::unix::net::UnixListener, Endpoint),
    /// vsock SOCK_SEQPACKET.
    #[cfg(target_os = "linux")]
    VmSeqpacket(hvsock::SeqpacketListener),
    /// A Unix SOCK_SEQPACKET listener: `unix-seqpacket:PATH`, or a hybrid one at
    /// `UDS_PATH_PORT`.
    #[cfg(unix)]
    UnixSeqpacket(socket2::Socket, Endpoint),
}

impl Listener {
    /// Listens on `ep` (`systemd:[NAME]`: takes the socket a service manager handed over).
    pub fn bind(ep: &Endpoint) -> anyhow::Result<Listener> {
        open::bind(ep)
    }

    /// Asks for a listen queue of `n` connections instead of the system's maximum (see
    /// [`hvsock::BACKLOG`]): the socket listens again (Linux takes the new length; Windows
    /// keeps the first).
    pub fn set_backlog(&self, n: u32) -> io::Result<()> {
        let n = i32::try_from(n).unwrap_or(i32::MAX);
        match self {
            Listener::Vm(l) => socket2::SockRef::from(l).listen(n),
            Listener::Tcp(l) => socket2::SockRef::from(l).listen(n),
            #[cfg(unix)]
            Listener::Unix(l) | Listener::Hybrid(l, _) => socket2::SockRef::from(l).listen(n),
            #[cfg(target_os = "linux")]
            Listener::VmSeqpacket(l) => socket2::SockRef::from(l).listen(n),
            #[cfg(unix)]
            Listener::UnixSeqpacket(l, _) => l.listen(n),
        }
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

    /// The next connection.
    pub fn accept(&self) -> io::Result<Socket> {
        self.accept_from().map(|(s, _)| s)
    }

    /// The next connection, and who it came from (for `--allow-from`).
    pub fn accept_from(&self) -> io::Result<(Socket, Peer)> {
        Ok(match self {
            Listener::Vm(l) => {
                let (s, peer) = l.accept()?;
                (Socket::Vm(s), Peer::of_vm(&peer))
            }
            Listener::Tcp(l) => {
                let (s, peer) = l.accept()?;
                s.set_nodelay(true)?;
                (Socket::Tcp(s), Peer::Ip(peer.ip()))
            }
            #[cfg(unix)]
            Listener::Unix(l) | Listener::Hybrid(l, _) => (Socket::Unix(l.accept()?.0), Peer::Unknown),
            #[cfg(target_os = "linux")]
            Listener::VmSeqpacket(l) => {
                let (s, peer) = l.accept()?;
                (Socket::VmSeqpacket(s), Peer::of_vm(&peer))
            }
            #[cfg(unix)]
            Listener::UnixSeqpacket(l, _) => (Socket::UnixSeqpacket(l.accept()?.0), Peer::Unknown),
        })
    }
}

/// The blocking face of the endpoint table.
struct Blocking;

impl Face for Blocking {
    type Conn = Socket;

    async fn vm(c: &Connector, addr: hvsock::SocketAddr, _: &str) -> io::Result<Socket> {
        c.connect(addr).map(Socket::Vm)
    }

    async fn tcp(host: &str, port: u16, _: Duration, _: &str) -> io::Result<Socket> {
        let s = std::net::TcpStream::connect((host, port))?;
        s.set_nodelay(true)?;
        Ok(Socket::Tcp(s))
    }

    #[cfg(unix)]
    async fn unix(path: &Path, _: &str) -> io::Result<Socket> {
        std::os::unix::net::UnixStream::connect(path).map(Socket::Unix)
    }

    #[cfg(unix)]
    async fn hybrid(c: &Connector, path: &Path, port: u32, _: &str) -> io::Result<Socket> {
        Ok(Socket::Unix(c.connect_hybrid(path, port)?.0))
    }

    #[cfg(target_os = "linux")]
    async fn vm_seqpacket(c: &Connector, addr: hvsock::SocketAddr, _: &str) -> io::Result<Socket> {
        c.connect_seqpacket(addr).map(Socket::VmSeqpacket)
    }

    #[cfg(unix)]
    async fn unix_seqpacket(path: &Path, _: &str) -> io::Result<Socket> {
        hvsock::unix::connect_seqpacket(path).map(Socket::UnixSeqpacket)
    }

    #[cfg(unix)]
    async fn hybrid_seqpacket(c: &Connector, path: &Path, port: u32, _: &str) -> io::Result<Socket> {
        Ok(Socket::UnixSeqpacket(c.connect_hybrid_seqpacket(path, port)?.0))
    }

    async fn pause(wait: Duration) {
        std::thread::sleep(wait);
    }

    fn stdio() -> anyhow::Result<Socket> {
        anyhow::bail!(
            "`-` is not a socket: give a vsock:, hv:, hybrid:, tcp:, unix: or *-seqpacket: endpoint"
        )
    }
}

/// The result of a future that never waits (the blocking face's): it is ready when first
/// polled, so no runtime is needed to run it.
fn ready<T>(f: impl Future<Output = T>) -> T {
    match std::pin::pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("the blocking face does not await"),
    }
}
