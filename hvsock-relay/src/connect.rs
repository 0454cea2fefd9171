//! Opening a connection to an endpoint of any kind, for the engine: the async face of the
//! endpoint table (`open`).

use std::io;
#[cfg(unix)]
use std::path::Path;
#[cfg(target_os = "linux")]
use std::sync::Arc;
use std::time::Duration;

use hvsock::{Connector, Endpoint};

use crate::conn::Conn;
use crate::open::{self, Face};

/// Connects to an endpoint; VM sockets and hybrid vsock retry by the library's one policy
/// (`Connector`), like `client --retries`. `-` is this process's stdin and stdout.
///
/// ```no_run
/// # async fn demo() -> anyhow::Result<()> {
/// let a = hvsock_relay::connect(&"vsock:3:5000".parse()?, std::time::Duration::from_secs(5), 10).await?;
/// let b = hvsock_relay::connect(&"tcp:127.0.0.1:80".parse()?, std::time::Duration::from_secs(5), 0).await?;
/// let end = hvsock_relay::join(a, b, Default::default(), &Default::default()).await;
/// # let _ = end; Ok(()) }
/// ```
pub async fn connect(ep: &Endpoint, timeout: Duration, retries: u32) -> anyhow::Result<Conn> {
    open::connect::<Async>(ep, timeout, retries, Duration::ZERO, &mut |_, _| {}).await
}

/// [`connect`], riding out a full listen queue: a connect it refused (a vsock reset, a Unix
/// EAGAIN, a VMM closing its hybrid socket) is tried again with short, growing, jittered waits
/// for up to `patience` in all, as TCP's SYN retransmission does for TCP clients; `tell` hears
/// of each retry (the error, the wait).
///
/// ```no_run
/// # async fn demo() -> anyhow::Result<()> {
/// let mut retried = 0;
/// let up = hvsock_relay::connect_patiently(
///     &"vsock:3:5000".parse()?, std::time::Duration::from_secs(5), std::time::Duration::from_secs(1),
///     &mut |_, _| retried += 1,
/// ).await?;
/// # let _ = up; Ok(()) }
/// ```
pub async fn connect_patiently(
    ep: &Endpoint,
    timeout: Duration,
    patience: Duration,
    tell: &mut (dyn FnMut(&io::Error, Duration) + Send),
) -> anyhow::Result<Conn> {
    open::connect::<Async>(ep, timeout, 0, patience, tell).await
}

/// The engine's face of the endpoint table: each kind as a [`Conn`].
struct Async;

impl Face for Async {
    type Conn = Conn;

    async fn vm(c: &Connector, addr: hvsock::SocketAddr, name: &str) -> io::Result<Conn> {
        Ok(Conn::shared(c.connect_async(addr).await?, name.to_string()))
    }

    async fn tcp(host: &str, port: u16, timeout: Duration, name: &str) -> io::Result<Conn> {
        let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port)))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "timed out"))??;
        Ok(Conn::tcp(stream, name.to_string()))
    }

    #[cfg(unix)]
    async fn unix(path: &Path, name: &str) -> io::Result<Conn> {
        Ok(Conn::unix(tokio::net::UnixStream::connect(path).await?, name.to_string()))
    }

    #[cfg(unix)]
    async fn hybrid(c: &Connector, path: &Path, port: u32, name: &str) -> io::Result<Conn> {
        Ok(Conn::hybrid(c.connect_hybrid_async(path, port).await?.0, name.to_string()))
    }

    #[cfg(target_os = "linux")]
    async fn vm_seqpacket(c: &Connector, addr: hvsock::SocketAddr, name: &str) -> io::Result<Conn> {
        let conn = c.connect_seqpacket_async(addr).await?;
        Ok(Conn::message(crate::messages::MsgSocket::Vsock(Arc::new(conn)), name.to_string()))
    }

    #[cfg(unix)]
    async fn unix_seqpacket(path: &Path, name: &str) -> io::Result<Conn> {
        let s = hvsock::unix::connect_seqpacket(path)?;
        Ok(Conn::message(crate::messages::MsgSocket::unix(s)?, name.to_string()))
    }

    #[cfg(unix)]
    async fn hybrid_seqpacket(c: &Connector, path: &Path, port: u32, name: &str) -> io::Result<Conn> {
        // The handshake is two short messages: on the blocking pool, with the connector's
        // timeout and retries.
        let (c, path) = (c.clone(), path.to_owned());
        let (s, _) = tokio::task::spawn_blocking(move || c.connect_hybrid_seqpacket(&path, port)).await??;
        Ok(Conn::hybrid_message(crate::messages::MsgSocket::unix(s)?, name.to_string()))
    }

    async fn pause(wait: Duration) {
        tokio::time::sleep(wait).await;
    }

    fn stdio() -> anyhow::Result<Conn> {
        Ok(Conn::stdio())
    }
}
