//! The one table from an endpoint to its socket, for every kind, to connect and to listen.
//!
//! Connecting has two faces: the engine's, async (a [`Conn`](crate::Conn) for [`join`]), and a
//! blocking one ([`blocking::Socket`]: one thread per stream, plain reads and writes, for a
//! measuring tool). Both are [`Face`]s, so which kinds exist, how each endpoint becomes an
//! address, which retry, and what an endpoint that cannot be connected to is told, are written
//! once, here. Listening has one table ([`bind`], blocking: binding never waits); the async
//! listener is made from what it returns.
//!
//! [`join`]: crate::join()

use std::io;
#[cfg(unix)]
use std::path::Path;
use std::time::Duration;

use hvsock::{Connector, Endpoint, Role, ToSocketAddr};

use crate::blocking;
use crate::error::socket_error;

/// One way of doing I/O on a connection: what each kind of endpoint is connected as. The
/// blocking face's futures are ready when first polled (it never awaits).
pub(crate) trait Face {
    /// A connection of this face.
    type Conn;
    /// vsock or Hyper-V sockets, retried by the connector.
    async fn vm(c: &Connector, addr: hvsock::SocketAddr, name: &str) -> io::Result<Self::Conn>;
    /// TCP, Nagle off (relays and request/response benchmarks send small writes).
    async fn tcp(host: &str, port: u16, timeout: Duration, name: &str) -> io::Result<Self::Conn>;
    /// A Unix stream socket.
    #[cfg(unix)]
    async fn unix(path: &Path, name: &str) -> io::Result<Self::Conn>;
    /// A guest's port through its VMM's hybrid socket (`CONNECT`/`OK`), retried.
    #[cfg(unix)]
    async fn hybrid(c: &Connector, path: &Path, port: u32, name: &str) -> io::Result<Self::Conn>;
    /// vsock SOCK_SEQPACKET, retried.
    #[cfg(target_os = "linux")]
    async fn vm_seqpacket(c: &Connector, addr: hvsock::SocketAddr, name: &str) -> io::Result<Self::Conn>;
    /// A Unix SOCK_SEQPACKET socket.
    #[cfg(unix)]
    async fn unix_seqpacket(path: &Path, name: &str) -> io::Result<Self::Conn>;
    /// A guest's SOCK_SEQPACKET port through a hybrid socket, retried.
    #[cfg(unix)]
    async fn hybrid_seqpacket(c: &Connector, path: &Path, port: u32, name: &str) -> io::Result<Self::Conn>;
    /// `-`: this process's stdin and stdout, if the face has them.
    fn stdio() -> anyhow::Result<Self::Conn>;
    /// Waits before another try.
    async fn pause(wait: Duration);
}

/// Connects to `ep` by face `F`: VM sockets and hybrid vsock retry by the library's one policy
/// (`Connector`), like `client --retries`. A connect that a full listen queue refused
/// ([`full_queue`]) is tried again for up to `patience` in all, with growing, jittered waits
/// ([`FullQueue`]), as TCP's SYN retransmission would; `tell` hears of each retry.
pub(crate) async fn connect<F: Face>(
    ep: &Endpoint,
    timeout: Duration,
    retries: u32,
    patience: Duration,
    tell: &mut (dyn FnMut(&io::Error, Duration) + Send),
) -> anyhow::Result<F::Conn> {
    let c = Connector::new().timeout(timeout).retries(retries);
    let mut waits = FullQueue::new(patience);
    loop {
        match attempt::<F>(ep, &c, timeout).await {
            Err(Failed::Io(e, said)) => match waits.next().filter(|_| full_queue(ep, &e)) {
                Some(wait) => {
                    tell(&e, wait);
                    F::pause(wait).await;
                }
                None => return Err(said.say(ep, e)),
            },
            Err(Failed::Final(e)) => return Err(e),
            Ok(conn) => return Ok(conn),
        }
    }
}

/// Whether `e`, from connecting to `ep`, says its listen queue is full: the one failure that
/// is over in a moment and that nothing below us retries. A vsock connect is reset at once
/// (vsock has no SYN to retransmit: a listener with nothing accepting looks the same, and is
/// waited for as long), a Unix one is refused with EAGAIN, and a VMM whose guest refused the
/// connection closes the hybrid socket before or instead of answering `CONNECT`.
pub(crate) fn full_queue(ep: &Endpoint, e: &io::Error) -> bool {
    use io::ErrorKind as K;
    match ep {
        Endpoint::Vsock(..) | Endpoint::VsockSeqpacket(..) => e.kind() == K::ConnectionReset,
        Endpoint::Unix(_) | Endpoint::UnixSeqpacket(_) => e.kind() == K::WouldBlock,
        Endpoint::Hybrid(..) | Endpoint::HybridSeqpacket(..) => {
            matches!(e.kind(), K::ConnectionReset | K::ConnectionRefused | K::WouldBlock)
        }
        _ => false,
    }
}

/// The waits between tries of a connect refused by a full queue: 5 ms doubling to 200 ms,
/// each between half and one and a half of that (clients refused together must not all come
/// back together), until their sum would pass the patience.
pub(crate) struct FullQueue {
    next: Duration,
    left: Duration,
}

impl FullQueue {
    const FIRST: Duration = Duration::from_millis(5);
    const MOST: Duration = Duration::from_millis(200);

    pub(crate) fn new(patience: Duration) -> FullQueue {
        FullQueue { next: FullQueue::FIRST, left: patience }
    }
}

impl Iterator for FullQueue {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        use std::hash::{BuildHasher, Hasher};
        // A random factor from std's own per-hasher keys: no generator kept for so little.
        let random = std::hash::RandomState::new().build_hasher().finish();
        let wait = self.next.mul_f64(0.5 + (random % 1000) as f64 / 1000.0).min(self.left);
        if wait.is_zero() {
            return None;
        }
        self.left -= wait;
        self.next = (self.next * 2).min(FullQueue::MOST);
        Some(wait)
    }
}

/// Why one attempt failed.
enum Failed {
    /// The socket call's own error, to be said as `Said` says it.
    Io(io::Error, Said),
    /// Nothing to try again: already said.
    Final(anyhow::Error),
}

/// How a socket error is told.
enum Said {
    /// With the address the endpoint became (a VM name resolved to its CID).
    At(String),
    /// With the endpoint as given.
    Plain,
    /// Hybrid errors are sentences of their own (the VMM's answer, the port refused).
    #[cfg(unix)]
    Hybrid,
}

impl Said {
    fn say(self, ep: &Endpoint, e: io::Error) -> anyhow::Error {
        match self {
            Said::At(addr) => socket_error(format!("cannot connect to {addr}"), e),
            Said::Plain => socket_error(format!("cannot connect to {ep}"), e),
            #[cfg(unix)]
            Said::Hybrid => anyhow::anyhow!("cannot connect to {ep}: {e}"),
        }
    }
}

/// One try at connecting to `ep`.
async fn attempt<F: Face>(ep: &Endpoint, c: &Connector, timeout: Duration) -> Result<F::Conn, Failed> {
    let name = ep.to_string();
    let plain = |e| Failed::Io(e, Said::Plain);
    #[cfg(unix)]
    let hybrid = |e| Failed::Io(e, Said::Hybrid);
    let addr = |role| ep.to_socket_addr(role).map_err(|e| Failed::Final(e.into()));
    match ep {
        Endpoint::Vsock(..) | Endpoint::Hv(..) => {
            let addr = addr(Role::Connect)?;
            F::vm(c, addr, &addr.to_string()).await.map_err(|e| Failed::Io(e, Said::At(addr.to_string())))
        }
        Endpoint::Tcp(host, port) => F::tcp(host, *port, timeout, &name).await.map_err(plain),
        #[cfg(unix)]
        Endpoint::Unix(path) => F::unix(path, &name).await.map_err(plain),
        #[cfg(unix)]
        Endpoint::Hybrid(path, port) => F::hybrid(c, path, *port, &name).await.map_err(hybrid),
        #[cfg(target_os = "linux")]
        Endpoint::VsockSeqpacket(..) => F::vm_seqpacket(c, addr(Role::Connect)?, &name).await.map_err(plain),
        #[cfg(unix)]
        Endpoint::UnixSeqpacket(path) => F::unix_seqpacket(path, &name).await.map_err(plain),
        #[cfg(unix)]
        Endpoint::HybridSeqpacket(path, port) => F::hybrid_seqpacket(c, path, *port, &name).await.map_err(hybrid),
        Endpoint::Stdio => F::stdio().map_err(Failed::Final),
        Endpoint::Activated(_) => Err(Failed::Final(anyhow::anyhow!(
            "{ep} is a listening socket a service manager hands over: it is for listen, relay's FROM and server, not for connecting"
        ))),
        #[allow(unreachable_patterns)]
        _ => Err(Failed::Final(unsupported(ep))),
    }
}

/// Listens on `ep` (`systemd:[NAME]`: takes the socket a service manager handed over).
pub(crate) fn bind(ep: &Endpoint) -> anyhow::Result<blocking::Listener> {
    use blocking::Listener as L;
    let failed = |e: io::Error| socket_error(format!("cannot listen on {ep}"), e);
    Ok(match ep {
        Endpoint::Vsock(..) | Endpoint::Hv(..) => {
            let addr = ep.to_socket_addr(Role::Bind)?;
            L::Vm(
                hvsock::Listener::bind(addr)
                    .map_err(|e| socket_error(format!("cannot listen on {addr}"), e))?,
            )
        }
        Endpoint::Tcp(host, port) => L::Tcp(tcp_listener(host, *port).map_err(failed)?),
        #[cfg(unix)]
        Endpoint::Unix(path) => L::Unix(hvsock::unix::listen(path).map_err(failed)?),
        // The guest's connections to host port PORT arrive at UDS_PATH_PORT.
        #[cfg(unix)]
        Endpoint::Hybrid(path, port) => {
            L::Hybrid(hvsock::hybrid::listen(path, *port).map_err(failed)?, ep.clone())
        }
        #[cfg(target_os = "linux")]
        Endpoint::VsockSeqpacket(..) => {
            L::VmSeqpacket(hvsock::SeqpacketListener::bind(ep.to_socket_addr(Role::Bind)?).map_err(failed)?)
        }
        #[cfg(unix)]
        Endpoint::UnixSeqpacket(path) => {
            L::UnixSeqpacket(hvsock::unix::listen_seqpacket(path).map_err(failed)?, ep.clone())
        }
        #[cfg(unix)]
        Endpoint::HybridSeqpacket(path, port) => {
            L::UnixSeqpacket(hvsock::hybrid::listen_seqpacket(path, *port).map_err(failed)?, ep.clone())
        }
        Endpoint::Stdio => {
            anyhow::bail!("`-` cannot listen: give a vsock:, hv:, hybrid:, tcp: or unix: endpoint")
        }
        #[cfg(target_os = "linux")]
        Endpoint::Activated(name) => adopt(name.as_deref(), ep)?,
        #[allow(unreachable_patterns)]
        _ => return Err(unsupported(ep)),
    })
}

/// A TCP listener with the backlog every hvsock listener has (std's `bind` gives 128).
fn tcp_listener(host: &str, port: u16) -> io::Result<std::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, format!("{host} resolves to no address"));
    for addr in (host, port).to_socket_addrs()? {
        let s = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
        // As std does: a restarted relay binds its port again at once (TIME_WAIT left behind).
        #[cfg(unix)]
        s.set_reuse_address(true)?;
        match s.bind(&addr.into()).and_then(|()| s.listen(hvsock::BACKLOG)) {
            Ok(()) => return Ok(s.into()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The listening socket a service manager handed over (systemd socket activation): the one
/// called `name`, or the only one; of whatever kind it is.
#[cfg(target_os = "linux")]
fn adopt(name: Option<&str>, ep: &Endpoint) -> anyhow::Result<blocking::Listener> {
    use blocking::Listener as L;
    let fd = crate::activation::pick(name, ep)?;
    let socket = socket2::Socket::from(fd);
    let (domain, ty) = (socket.domain()?, socket.r#type()?);
    let fd = std::os::fd::OwnedFd::from(socket);
    let what = |e: io::Error| anyhow::anyhow!("{ep}: {e}");
    Ok(match (domain, ty) {
        (socket2::Domain::VSOCK, socket2::Type::STREAM) => L::Vm(hvsock::Listener::adopt(fd).map_err(what)?),
        (socket2::Domain::VSOCK, socket2::Type::SEQPACKET) => {
            L::VmSeqpacket(hvsock::SeqpacketListener::adopt(fd).map_err(what)?)
        }
        (socket2::Domain::IPV4 | socket2::Domain::IPV6, socket2::Type::STREAM) => L::Tcp(fd.into()),
        (socket2::Domain::UNIX, socket2::Type::STREAM) => L::Unix(fd.into()),
        (socket2::Domain::UNIX, socket2::Type::SEQPACKET) => L::UnixSeqpacket(fd.into(), ep.clone()),
        (d, t) => {
            anyhow::bail!("{ep}: the socket handed over is of a kind hvsock does not serve ({d:?}, {t:?})")
        }
    })
}

fn unsupported(ep: &Endpoint) -> anyhow::Error {
    if ep.is_seqpacket() {
        anyhow::anyhow!(
            "{ep}: SOCK_SEQPACKET is Linux's (vsock and Unix sockets); Hyper-V sockets are stream only"
        )
    } else {
        anyhow::anyhow!("{ep}: not supported on this platform")
    }
}

#[cfg(test)]
mod tests;
