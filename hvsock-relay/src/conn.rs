//! One open connection of any kind, split so both directions can be copied at once, and
//! what it is for the copy: a socket, our stdio or a command; how our end of data is passed on.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

#[cfg(unix)]
use tokio::io::Interest;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::shared::Shared;
use crate::zero_copy::{Spliceable, ToSpliceable};

/// A connection's reading half.
pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
/// A connection's writing half.
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// One open connection, split so both directions can be copied at once.
pub struct Conn {
    /// What the peer sends.
    pub reader: Reader,
    /// What goes to the peer.
    pub writer: Writer,
    /// The same socket again (no new descriptor): to make its close a reset, to probe its
    /// peer, and to close it without losing what its peer has yet to take (see `delivery`).
    /// None for stdio and commands.
    pub socket: Option<Arc<dyn SocketHandle>>,
    /// Whether `socket`'s peer is probed for a close of both directions: a vsock peer's close
    /// reads as a half-close. Not a Unix socket's (its closed peer is seen by EPIPE) nor a TCP
    /// socket's (a probe cannot tell a TCP close from a half-close, and a peer killed with
    /// bytes unread resets the connection, which a held-up write sees).
    pub probed: bool,
    /// Who is at the other end, for logs.
    pub peer: String,
    /// Who is at the other end, for `--allow-from` (known for accepted VM and TCP sockets).
    pub origin: crate::peers::Peer,
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

/// How long a hybrid peer must be quiet before our half-close reaches it (hybrid vsock is Unix
/// only; the setting is parsed everywhere).
pub const HYBRID_QUIET: Duration = Duration::from_secs(1);

/// How our end of data is passed on, as asked (`--shutdown`, `--no-shutdown`,
/// `--shutdown-quiet`): applied to each network connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HalfClosing {
    /// Half-close at once even to hybrid vsock (for VMMs that keep half-closes).
    pub now: bool,
    /// Never half-close: keep the connection open until the peer closes.
    pub never: bool,
    /// Hybrid vsock: half-close once the guest has been quiet this long (default
    /// [`HYBRID_QUIET`]).
    pub quiet: Option<Duration>,
}

impl HalfClosing {
    /// Sets a network connection's half-close as asked.
    pub fn apply(self, mut conn: Conn) -> Conn {
        conn.half_close = match (self.now, self.never, conn.half_close) {
            (true, _, _) => HalfCloseMode::Now,
            (_, true, _) => HalfCloseMode::Never,
            (_, _, HalfCloseMode::AfterQuiet(default)) => {
                HalfCloseMode::AfterQuiet(self.quiet.unwrap_or(default))
            }
            (_, _, mode) => mode,
        };
        conn
    }
}

/// A socket seen through socket2, whatever type holds it.
pub trait SocketHandle: Send + Sync {
    /// The socket.
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
    pub(crate) fn shared<T>(stream: T, peer: String) -> Conn
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
            origin: crate::peers::Peer::Unknown,
            half_close: HalfCloseMode::Now,
            messages: None,
            kind: Kind::Socket,
            unread: None,
        }
    }

    pub(crate) fn tcp(stream: tokio::net::TcpStream, peer: String) -> Conn {
        let _ = stream.set_nodelay(true);
        Conn { probed: false, ..Conn::shared(stream, peer) }
    }

    /// A Unix stream: shared as TCP's is, so that only our own half-close (never a dropped
    /// half) ends its sending side — `--no-shutdown` keeps it open. Its peer is not probed.
    #[cfg(unix)]
    pub(crate) fn unix(stream: tokio::net::UnixStream, peer: String) -> Conn {
        Conn { probed: false, ..Conn::shared(stream, peer) }
    }

    /// A message (SOCK_SEQPACKET) connection.
    #[cfg(unix)]
    pub(crate) fn message(socket: crate::messages::MsgSocket, peer: String) -> Conn {
        let (reader, writer) = socket.halves();
        let max = socket.max_message();
        Conn {
            reader,
            writer,
            socket: Some(Arc::new(socket)),
            probed: true,
            peer,
            origin: crate::peers::Peer::Unknown,
            half_close: HalfCloseMode::Now,
            messages: Some(max),
            splice: None,
            kind: Kind::Socket,
            unread: None,
        }
    }

    /// A hybrid vsock message connection: its half-close waits as a hybrid stream's does.
    #[cfg(unix)]
    pub(crate) fn hybrid_message(socket: crate::messages::MsgSocket, peer: String) -> Conn {
        Conn { half_close: HalfCloseMode::AfterQuiet(HYBRID_QUIET), ..Conn::message(socket, peer) }
    }

    /// A hybrid vsock connection: a Unix socket whose half-close a VMM turns into a close.
    #[cfg(unix)]
    pub(crate) fn hybrid(stream: tokio::net::UnixStream, peer: String) -> Conn {
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
            origin: crate::peers::Peer::Unknown,
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
            messages: Some(crate::join::STREAM_MESSAGE),
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
            origin: crate::peers::Peer::Unknown,
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
