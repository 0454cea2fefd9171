//! Endpoints opened as async connections, whatever their kind: VM sockets, TCP, Unix sockets,
//! standard input/output.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use hvsock::tokio::{AsyncListener, AsyncStream};
use hvsock::{Endpoint, Role, ToSocketAddr};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

use crate::diagnose::socket_error;
use crate::zero_copy::{Spliceable, ToSpliceable};

pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// One open connection, split so both directions can be copied at once.
pub struct Conn {
    pub reader: Reader,
    pub writer: Writer,
    /// The same socket again (no new descriptor): to make its close a reset, to probe its
    /// peer, and to close it without losing what its peer has yet to take (see `delivery`).
    /// None for stdio and commands.
    pub socket: Option<Arc<dyn SocketHandle>>,
    /// Whether `socket`'s peer is probed for a close of both directions (not a Unix socket's:
    /// its closed peer is seen by end-of-file or EPIPE).
    pub probed: bool,
    /// Who is at the other end, for logs.
    pub peer: String,
    /// How our end-of-data is passed on (see [`HalfCloseMode`]).
    pub half_close: HalfCloseMode,
    /// A message (SOCK_SEQPACKET) connection, whose messages are at most this long: each read
    /// is one message and each write sends one. `None`: a byte stream.
    pub messages: Option<usize>,
    /// The socket again, for splice(2) (Linux stream sockets; see `zero_copy`).
    pub splice: Option<Spliceable>,
    /// What is at our end: a socket, our stdio or a command.
    pub kind: Kind,
    /// Resolves once nothing can read what is written here any more (a command's stdin, every
    /// process holding it gone): the direction into it ends then, instead of keeping the
    /// connection open for input no one will take.
    pub unread: Option<Unread>,
}

/// What a connection's end is, for how it learns that its peer has gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A socket of any kind (TCP, vsock, Unix, hybrid): our half-close tells it that its peer's
    /// data has ended, and a write of its that the gone peer refuses fails it.
    Socket,
    /// This process's own stdin/stdout: a peer that closes both ways ends the session as a
    /// close does with ncat or socat, once what stdin had is sent (see `splice`).
    Stdio,
    /// A command's stdin/stdout: the end of its input says nothing of its output, so a gone
    /// peer ends it; one that stops reading its stdin is done with input, not broken.
    Command,
}

/// See [`Conn::unread`].
pub type Unread = Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// When our end-of-data becomes a half-close of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HalfCloseMode {
    /// At once (TCP, vsock, Unix: the peer reads end-of-file and can still answer).
    Now,
    /// Once the peer has sent nothing for this long (or has closed). Hybrid vsock: real VMMs
    /// (Firecracker, vhost-device-vsock) turn a host's half-close into SHUTDOWN of both
    /// directions towards the guest, so whatever the guest had still to send would be lost.
    /// Waiting for its answer to pause keeps every answer that starts and flows without a
    /// pause that long; an upload the guest never answers still ends (the guest reads its
    /// end-of-file a moment later).
    #[cfg_attr(not(unix), allow(dead_code))] // hybrid vsock is Unix only
    AfterQuiet(Duration),
    /// Never: the connection ends when the peer closes (ncat's --no-shutdown).
    Never,
    /// Close the whole connection, ending it (ncat's --send-only). A close reaches the peer
    /// through any VMM; a guest's half-close does not (Firecracker and vhost-device-vsock drop
    /// SHUTDOWN with SEND alone), so a host waiting for the end of a guest's upload waits for ever.
    Close,
}

/// How long a hybrid peer must be quiet before our half-close reaches it.
#[cfg(unix)]
pub const HYBRID_QUIET: Duration = Duration::from_secs(1);

/// A socket seen through socket2, whatever type holds it.
pub trait SocketHandle: Send + Sync {
    fn sock(&self) -> socket2::SockRef<'_>;
}

impl<T: Send + Sync> SocketHandle for T
where
    for<'a> socket2::SockRef<'a>: From<&'a T>,
{
    fn sock(&self) -> socket2::SockRef<'_> {
        socket2::SockRef::from(self)
    }
}

impl Conn {
    /// A socket read and written through one `Arc` (see [`Shared`]), and spliced through it
    /// where it can be.
    fn shared<T>(stream: T, peer: String) -> Conn
    where
        T: ToSpliceable + Send + Sync + 'static,
        Shared<T>: AsyncRead + AsyncWrite + Unpin,
        for<'a> socket2::SockRef<'a>: From<&'a T>,
    {
        let shared = Arc::new(stream);
        Conn {
            reader: Box::new(Shared(shared.clone())),
            writer: Box::new(Shared(shared.clone())),
            splice: T::spliceable(&shared),
            socket: Some(shared),
            probed: true,
            peer,
            half_close: HalfCloseMode::Now,
            messages: None,
            kind: Kind::Socket,
            unread: None,
        }
    }

    fn tcp(stream: tokio::net::TcpStream, peer: String) -> Conn {
        let _ = stream.set_nodelay(true);
        Conn::shared(stream, peer)
    }

    /// A Unix stream: shared as TCP's is, so that only our own half-close (never a dropped
    /// half) ends its sending side — `--no-shutdown` keeps it open. Its peer is not probed.
    #[cfg(unix)]
    fn unix(stream: tokio::net::UnixStream, peer: String) -> Conn {
        Conn { probed: false, ..Conn::shared(stream, peer) }
    }

    /// A message (SOCK_SEQPACKET) connection.
    #[cfg(unix)]
    fn message(socket: crate::messages::MsgSocket, peer: String) -> Conn {
        let (reader, writer) = socket.halves();
        let max = socket.max_message();
        Conn {
            reader,
            writer,
            socket: Some(Arc::new(socket)),
            probed: true,
            peer,
            half_close: HalfCloseMode::Now,
            messages: Some(max),
            splice: None,
            kind: Kind::Socket,
            unread: None,
        }
    }

    /// A hybrid vsock message connection: its half-close waits as a hybrid stream's does.
    #[cfg(unix)]
    fn hybrid_message(socket: crate::messages::MsgSocket, peer: String) -> Conn {
        Conn { half_close: HalfCloseMode::AfterQuiet(HYBRID_QUIET), ..Conn::message(socket, peer) }
    }

    /// A hybrid vsock connection: a Unix socket whose half-close a VMM turns into a close.
    #[cfg(unix)]
    fn hybrid(stream: tokio::net::UnixStream, peer: String) -> Conn {
        Conn { half_close: HalfCloseMode::AfterQuiet(HYBRID_QUIET), ..Conn::unix(stream, peer) }
    }

    /// This process's standard input and output.
    pub fn stdio() -> Conn {
        #[cfg(unix)]
        let (reader, writer) = (crate::stdio::stdin(), crate::stdio::stdout());
        #[cfg(not(unix))]
        let (reader, writer): (Reader, Writer) =
            (Box::new(tokio::io::stdin()), Box::new(tokio::io::stdout()));
        Conn {
            reader,
            writer,
            socket: None,
            probed: false,
            peer: "-".into(),
            half_close: HalfCloseMode::Now,
            messages: None,
            splice: None,
            kind: Kind::Stdio,
            unread: None,
        }
    }

    /// ncat's `--send-only`, for a session of this (our side) with `peer`: what the peer sends
    /// is read and dropped, and the end of our data closes the connection ([`HalfCloseMode::Close`]).
    pub fn send_only(self, peer: Conn) -> (Conn, Conn) {
        let ours = Conn { writer: Box::new(tokio::io::sink()), ..self };
        (ours, Conn { half_close: HalfCloseMode::Close, ..peer })
    }

    /// Lines as messages (`--lines`): each line read, its newline taken off, is one message,
    /// and each message written gets a newline.
    #[cfg(unix)]
    pub fn lines(self) -> Conn {
        use crate::messages::{LineReader, LineWriter};
        Conn {
            reader: Box::new(LineReader::new(self.reader)),
            writer: Box::new(LineWriter::new(self.writer)),
            messages: Some(crate::splice::STREAM_MESSAGE),
            splice: None,
            ..self
        }
    }

    /// A child process's standard input and output.
    pub fn child(child: &mut tokio::process::Child, what: String) -> Conn {
        let reader = child.stdout.take().expect("piped stdout");
        let writer = child.stdin.take().expect("piped stdin");
        #[cfg(unix)]
        let unread = readers_gone(&writer);
        #[cfg(not(unix))]
        let unread = None;
        Conn {
            reader: Box::new(reader),
            writer: Box::new(writer),
            socket: None,
            probed: false,
            peer: what,
            half_close: HalfCloseMode::Now,
            messages: None,
            splice: None,
            kind: Kind::Command,
            unread,
        }
    }
}

/// Resolves when the pipe's reading end is closed by every process that had it (epoll says
/// EPOLLERR on the writing end): the command, and all it started, are done with input. It
/// holds a copy of the writing end, so it must go when the direction into the pipe ends, or
/// the command would never see end-of-file.
#[cfg(unix)]
fn readers_gone(stdin: &tokio::process::ChildStdin) -> Option<Unread> {
    use std::os::fd::AsFd;
    let fd = stdin.as_fd().try_clone_to_owned().ok()?;
    // SAFETY: the AsyncFd owns this descriptor, open until the AsyncFd is dropped.
    let fd = unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, Interest::ERROR) }.ok()?;
    Some(Box::pin(async move {
        let _ = fd.ready(Interest::ERROR).await;
    }))
}

/// One socket used from both directions' copies. Unlike tokio's owned halves, dropping the
/// writing side does not half-close: after a failure the peer's first news is the reset.
struct Shared<T>(Arc<T>);

impl AsyncRead for Shared<AsyncStream> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Shared<AsyncStream> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.0).poll_shutdown(cx)
    }
}

/// tokio's TCP and Unix streams: read and written by our own calls, through their readiness.
trait Readiness: Send + Sync {
    fn poll_ready(&self, cx: &mut Context<'_>, interest: Interest) -> Poll<io::Result<()>>;
    fn try_io(&self, interest: Interest, f: impl FnOnce() -> io::Result<usize>) -> io::Result<usize>;
    fn sock(&self) -> socket2::SockRef<'_>;
}

macro_rules! readiness {
    ($ty:ty) => {
        impl Readiness for $ty {
            fn poll_ready(&self, cx: &mut Context<'_>, interest: Interest) -> Poll<io::Result<()>> {
                if interest.is_readable() {
                    self.poll_read_ready(cx)
                } else {
                    self.poll_write_ready(cx)
                }
            }
            fn try_io(&self, interest: Interest, f: impl FnOnce() -> io::Result<usize>) -> io::Result<usize> {
                <$ty>::try_io(self, interest, f)
            }
            fn sock(&self) -> socket2::SockRef<'_> {
                socket2::SockRef::from(self)
            }
        }
    };
}

readiness!(tokio::net::TcpStream);
#[cfg(unix)]
readiness!(tokio::net::UnixStream);

impl<T: Readiness> AsyncRead for Shared<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let offered = buf.remaining();
        let n = std::task::ready!(poll_rw(&*self.0, cx, Interest::READABLE, offered, || {
            // SAFETY: recv writes only into the unfilled part; only what it wrote is marked
            // filled below.
            let unfilled = unsafe { &mut *(buf.unfilled_mut() as *mut [std::mem::MaybeUninit<u8>]) };
            self.0.sock().recv(unfilled)
        }))?;
        // SAFETY: recv initialised the first n bytes of the unfilled part.
        unsafe { buf.assume_init(n) };
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<T: Readiness> AsyncWrite for Shared<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        poll_rw(&*self.0, cx, Interest::WRITABLE, buf.len(), || self.0.sock().send(buf))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(match self.0.sock().shutdown(std::net::Shutdown::Write) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            r => r,
        })
    }
}

/// One read or write of `offered` bytes on a shared TCP or Unix socket, once it is ready. When
/// it moves less than offered the socket is drained (or its send buffer full): the readiness
/// seen is cleared, so the next call waits for the reactor instead of first failing with
/// WouldBlock — what tokio's own `TcpStream::poll_read` does, and `try_io` alone does only on
/// WouldBlock. Reporting the short move to `try_io` as WouldBlock clears exactly the readiness
/// observed before the call, never an event that came during it.
fn poll_rw(
    s: &impl Readiness,
    cx: &mut Context<'_>,
    interest: Interest,
    offered: usize,
    mut op: impl FnMut() -> io::Result<usize>,
) -> Poll<io::Result<usize>> {
    loop {
        std::task::ready!(s.poll_ready(cx, interest))?;
        let mut short = None;
        match s.try_io(interest, || match op() {
            Ok(n) if n > 0 && n < offered => {
                short = Some(n);
                Err(io::ErrorKind::WouldBlock.into())
            }
            r => r,
        }) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => match short {
                Some(n) => return Poll::Ready(Ok(n)),
                None => continue,
            },
            r => return Poll::Ready(r),
        }
    }
}

/// Whether our end-of-data half-closes a connection: at once, except to hybrid vsock, where
/// it waits for the guest's answer to pause ([`HalfCloseMode::AfterQuiet`]).
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct HalfClose {
    /// Half-close at once even to hybrid vsock (for VMMs that keep half-closes, like
    /// `hvsock lab run --keep-half-close`)
    #[arg(long, conflicts_with = "no_shutdown")]
    pub shutdown: bool,
    /// Never half-close a connection: at end-of-data keep it open until the peer closes
    /// (ncat's --no-shutdown)
    #[arg(long)]
    pub no_shutdown: bool,
    /// Hybrid vsock: half-close once the guest has sent nothing for SECS (default 1). A guest
    /// whose answer can pause longer (a loaded VM, a slow command) loses the rest of it when
    /// the VMM turns our half-close into a close: give it more
    #[arg(long, value_name = "SECS", value_parser = crate::args::parse_secs, conflicts_with_all = ["shutdown", "no_shutdown"])]
    pub shutdown_quiet: Option<Duration>,
}

impl HalfClose {
    /// Sets a network connection's half-close as asked.
    pub fn apply(self, mut conn: Conn) -> Conn {
        conn.half_close = match (self.shutdown, self.no_shutdown, conn.half_close) {
            (true, _, _) => HalfCloseMode::Now,
            (_, true, _) => HalfCloseMode::Never,
            (_, _, HalfCloseMode::AfterQuiet(default)) => {
                HalfCloseMode::AfterQuiet(self.shutdown_quiet.unwrap_or(default))
            }
            (_, _, mode) => mode,
        };
        conn
    }
}

/// How standard input and output (or a command's) meet a message endpoint.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct Framing {
    /// With a message endpoint (vsock-seqpacket:, unix-seqpacket:, hybrid-seqpacket:): each
    /// line is one message (newline taken off; empty lines dropped) and each message is written
    /// as a line. Without it, each read of input (at most 64 KiB) is one message and each
    /// message one write.
    #[arg(long)]
    pub lines: bool,
}

impl Framing {
    /// Checks `--lines` against the endpoint it is for (a handed-over socket is checked once
    /// it is taken: see [`Framing::check_listener`]).
    pub fn check(self, ep: &Endpoint) -> anyhow::Result<Framing> {
        if self.lines && !ep.is_seqpacket() && !matches!(ep, Endpoint::Activated(_)) {
            anyhow::bail!(
                "--lines maps lines to messages: {ep} is a byte stream (use vsock-seqpacket:, unix-seqpacket: or hybrid-seqpacket:)"
            );
        }
        Ok(self)
    }

    /// Checks `--lines` against what a listener turned out to be.
    pub fn check_listener(self, listener: &Listener, ep: &Endpoint) -> anyhow::Result<Framing> {
        if self.lines && !listener.carries_messages() {
            anyhow::bail!("--lines maps lines to messages: {ep} is a byte stream socket");
        }
        Ok(self)
    }

    /// The local side (stdio, a command) framed as asked.
    pub fn apply(self, conn: Conn) -> Conn {
        #[cfg(unix)]
        if self.lines {
            return conn.lines();
        }
        conn
    }
}

/// The error for a connection that went quiet for the idle limit.
pub fn idle(peer: &str, limit: Option<Duration>) -> anyhow::Error {
    anyhow::anyhow!(
        "{peer}: no data either way for {} s; closed (is the VM behind it still running?)",
        limit.unwrap_or_default().as_secs_f64()
    )
}

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

/// A listening endpoint.
pub enum Listener {
    Vm(AsyncListener),
    Tcp(tokio::net::TcpListener),
    #[cfg(unix)]
    Unix(tokio::net::UnixListener),
    /// The guest's connections to the host's PORT, on `UDS_PATH_PORT`.
    #[cfg(unix)]
    Hybrid(tokio::net::UnixListener, Endpoint),
    #[cfg(target_os = "linux")]
    VmSeqpacket(hvsock::tokio::AsyncSeqpacketListener),
    /// A Unix SOCK_SEQPACKET listener: `unix-seqpacket:PATH`, or a hybrid one at
    /// `UDS_PATH_PORT` (the endpoint is kept for names).
    #[cfg(unix)]
    UnixSeqpacket(tokio::io::unix::AsyncFd<socket2::Socket>, Endpoint),
}

impl Listener {
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
        let mut sockets = crate::activation::handed_over()?;
        if sockets.is_empty() {
            anyhow::bail!(
                "{ep}: no socket was handed over (LISTEN_FDS is not set for this process): start it from a systemd .socket unit or systemd-socket-activate, or give an endpoint to bind"
            );
        }
        let names = || sockets.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
        let i = match name {
            Some(n) => sockets.iter().position(|s| s.name == n),
            None if sockets.len() == 1 => Some(0),
            None => anyhow::bail!(
                "{ep}: {} sockets were handed over ({}): name one, like systemd:{}",
                sockets.len(),
                names(),
                sockets[0].name
            ),
        }
        .ok_or_else(|| {
            anyhow::anyhow!("{ep}: no socket of that name was handed over (there are: {})", names())
        })?;
        let fd = sockets.swap_remove(i).fd;
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

/// An interactive stdin may never end: then the peer's end ends a session.
pub fn stdin_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}

/// A tokio runtime sized for this machine: on one CPU a single-threaded one, which spares every
/// wake-up a hop between threads.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut builder = if cpus > 1 && std::env::var_os("HVSOCK_SINGLE_THREAD").is_none() {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().context("cannot start the async runtime")
}
