//! UDP forwards (`-L udp:[BIND:]PORT:HOST:PORT`): each sender's datagrams are a flow, carried
//! on a stream of its own as length-prefixed frames, each datagram kept whole; the serving end
//! sends them from a socket connected to the target and sends its answers back the same way.
//! A flow quiet either way for the idle time ends at both ends.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hvsock::Endpoint;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::mux::{Mux, MuxStream};
use super::wire::Request;

/// The largest datagram carried: UDP's own limit over IPv4 (65,535 less its headers). A larger
/// one cannot arrive; a frame that says so is a broken peer.
pub const MAX_DATAGRAM: usize = 65_507;

/// Datagrams queued for a flow whose stream is not open yet (or is held up): more are dropped,
/// as a full socket buffer drops them.
const QUEUED: usize = 256;

/// How a flow is kept and ended.
#[derive(Clone, Copy, Debug)]
pub struct Flows {
    /// A flow with no datagram either way for this long ends.
    pub idle: Duration,
    /// How long a new flow waits for the connection to be up.
    pub wait: Duration,
}

/// A datagram as a frame: its length (two bytes, big-endian), then its bytes.
pub fn frame(datagram: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(2 + datagram.len());
    f.extend_from_slice(&(datagram.len() as u16).to_be_bytes());
    f.extend_from_slice(datagram);
    f
}

/// Reads one frame into `buf`; `Ok(None)` at the stream's end.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<Option<()>> {
    let mut len = [0u8; 2];
    match r.read_exact(&mut len[..1]).await {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    };
    r.read_exact(&mut len[1..]).await?;
    let len = u16::from_be_bytes(len) as usize;
    if len > MAX_DATAGRAM {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("a datagram of {len} bytes")));
    }
    buf.resize(len, 0);
    r.read_exact(buf).await?;
    Ok(Some(()))
}

/// Carries datagrams both ways between a stream and a socket (`send` sends to the flow's
/// peer) until the stream ends or the flow has been idle too long.
async fn carry<S>(
    stream: S,
    mut from: Source<'_>,
    send: impl Fn(&[u8]) -> io::Result<()>,
    idle: Duration,
) -> String
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut r, mut w) = tokio::io::split(stream);
    let mut buf = Vec::new();
    loop {
        tokio::select! {
            d = from.next() => match d {
                Some(d) => {
                    if let Err(e) = w.write_all(&frame(&d)).await {
                        return format!("write: {e}");
                    }
                }
                None => return "the socket is gone".into(),
            },
            f = read_frame(&mut r, &mut buf) => match f {
                Ok(Some(())) => {
                    if let Err(e) = send(&buf) {
                        // A datagram the network would not take is lost, as UDP's are.
                        warn!("a datagram of {} bytes not sent: {e}", buf.len());
                    }
                }
                Ok(None) => return "the far end ended the flow".into(),
                Err(e) => return format!("read: {e}"),
            },
            () = tokio::time::sleep(idle) => {
                let _ = w.shutdown().await;
                return format!("idle for {} s", idle.as_secs_f64());
            }
        }
    }
}

/// Where a flow's outgoing datagrams come from: a queue (the client's socket is shared by its
/// flows) or a connected socket of its own (the serving end's).
enum Source<'a> {
    Queue(mpsc::Receiver<Vec<u8>>),
    Connected(&'a UdpSocket),
}

impl Source<'_> {
    async fn next(&mut self) -> Option<Vec<u8>> {
        match self {
            Source::Queue(rx) => rx.recv().await,
            Source::Connected(socket) => {
                let mut buf = vec![0u8; MAX_DATAGRAM];
                loop {
                    match socket.recv(&mut buf).await {
                        Ok(n) => {
                            buf.truncate(n);
                            return Some(buf);
                        }
                        // An ICMP error for an earlier datagram (nothing listens there): UDP
                        // goes on.
                        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                        Err(_) => return None,
                    }
                }
            }
        }
    }
}

/// The client's side of one `-L udp:` forward: a flow per sender, each on a stream of its own.
pub async fn serve_local(
    socket: UdpSocket,
    target: (String, u16),
    up: watch::Receiver<Option<Mux>>,
    flows: Flows,
) {
    let socket = Arc::new(socket);
    let mut senders: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let (ended_tx, mut ended) = mpsc::unbounded_channel();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (n, peer) = match r {
                    Ok(got) => got,
                    Err(e) => {
                        warn!("udp: {e}");
                        continue;
                    }
                };
                let tx = senders.entry(peer).or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(QUEUED);
                    let (socket, up, target, ended) = (socket.clone(), up.clone(), target.clone(), ended_tx.clone());
                    tokio::spawn(async move {
                        let why = flow(peer, rx, &socket, target, up, flows).await;
                        info!("udp flow from {peer}: ended: {why}");
                        let _ = ended.send(peer);
                    });
                    tx
                });
                let _ = tx.try_send(buf[..n].to_vec());
            }
            Some(peer) = ended.recv() => {
                senders.remove(&peer);
            }
        }
    }
}

async fn flow(
    peer: SocketAddr,
    rx: mpsc::Receiver<Vec<u8>>,
    socket: &UdpSocket,
    (host, port): (String, u16),
    mut up: watch::Receiver<Option<Mux>>,
    flows: Flows,
) -> String {
    let waited = tokio::time::timeout(flows.wait, up.wait_for(Option::is_some)).await;
    let Some(mux) = waited.ok().and_then(|r| r.ok().and_then(|mux| mux.clone())) else {
        return "the forward connection is down".into();
    };
    let mut s = match mux.open().await {
        Ok(s) => MuxStream::new(s),
        Err(e) => return e.to_string(),
    };
    let request = Request::OpenUdp { host, port };
    if let Err(why) = super::ask(&mut s, &request).await {
        return format!("refused: {why}");
    }
    info!("udp flow from {peer}: open to {}", request.line());
    let send = |d: &[u8]| socket.try_send_to(d, peer).map(drop);
    carry(s, Source::Queue(rx), send, flows.idle).await
}

/// The serving end's side of a flow: a socket connected to the target.
pub async fn serve_remote(s: &mut MuxStream, target: &str, port: u16, idle: Duration) -> Result<(), String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target, port))
        .await
        .map_err(|e| format!("cannot resolve {target}: {e}"))?
        .collect();
    let addr = *addrs.first().ok_or_else(|| format!("cannot resolve {target}"))?;
    let bind: SocketAddr =
        if addr.is_ipv4() { "0.0.0.0:0".parse().unwrap() } else { "[::]:0".parse().unwrap() };
    let socket = UdpSocket::bind(bind).await.map_err(|e| format!("udp: {e}"))?;
    socket.connect(addr).await.map_err(|e| format!("udp: {e}"))?;
    super::answer(s, super::wire::Answer::Ok).await;
    let send = |d: &[u8]| socket.try_send(d).map(drop);
    let why = carry(s, Source::Connected(&socket), send, idle).await;
    info!("udp flow to {target}:{port}: ended: {why}");
    Ok(())
}

/// An endpoint as the (host, port) a UDP forward reaches.
pub fn host_port(ep: &Endpoint) -> Option<(String, u16)> {
    match ep {
        Endpoint::Tcp(h, p) => Some((h.clone(), *p)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_keep_each_datagram_whole() {
        let datagrams: [&[u8]; 4] = [b"", b"a", &[7u8; 1400], &[9u8; MAX_DATAGRAM]];
        let bytes: Vec<u8> = datagrams.iter().flat_map(|d| frame(d)).collect();
        let mut r = &bytes[..];
        let mut buf = Vec::new();
        for d in datagrams {
            assert_eq!(read_frame(&mut r, &mut buf).await.unwrap(), Some(()));
            assert_eq!(buf, d);
        }
        assert_eq!(read_frame(&mut r, &mut buf).await.unwrap(), None);
        // A frame longer than any datagram, and one cut short, are errors.
        let mut r = &[0xff, 0xff, 1][..];
        assert_eq!(read_frame(&mut r, &mut buf).await.unwrap_err().kind(), io::ErrorKind::InvalidData);
        let mut r = &[0, 5, 1, 2][..];
        assert_eq!(read_frame(&mut r, &mut buf).await.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
