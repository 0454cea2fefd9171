//! Hybrid vsock: the host side of a Firecracker / Cloud Hypervisor / vhost-device-vsock VM's
//! vsock device is a Unix socket.
//!
//! To reach the guest's port P, connect to the VM's socket `UDS`, send `CONNECT P\n` and read
//! `OK <host port>\n`; after that the stream is the guest's. The guest's connections to the
//! host (CID 2) port P arrive at the Unix socket `UDS_P`, which a host service listens on.

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::line::{Line, LineError};

/// How long the VM may take to answer `CONNECT` when the caller gives no timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to guest port `port` through the VM's hybrid socket `uds`; returns the stream and
/// the host-side port the VM gave it.
///
/// ```no_run
/// use std::io::Write;
/// let (mut s, _) = hvsock::hybrid::connect("/run/fc/v.sock", 52, None)?;
/// s.write_all(b"hello guest")?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn connect(uds: impl AsRef<Path>, port: u32, timeout: Option<Duration>) -> io::Result<(UnixStream, u32)> {
    let left = time_left(timeout, port);
    let mut s = UnixStream::connect(uds.as_ref()).map_err(|e| no_vmm(e, uds.as_ref()))?;
    s.set_write_timeout(Some(left()?))?;
    s.write_all(format!("CONNECT {port}\n").as_bytes()).map_err(|e| closed_early(e, port))?;
    let host_port = read_ok(port, |b| {
        s.set_read_timeout(Some(left()?))?;
        s.read(b)
    })?;
    s.set_read_timeout(None)?;
    s.set_write_timeout(None)?;
    Ok((s, host_port))
}

impl crate::Connector {
    /// [`connect`] with this connector's per-attempt timeout and retries: a VMM socket not
    /// created yet, a VMM closing it while its VM boots, a guest port nobody listens on yet
    /// are all tried again.
    ///
    /// ```no_run
    /// let (s, _) = hvsock::Connector::new().retries(50).connect_hybrid("/run/fc/v.sock", 52)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect_hybrid(&self, uds: impl AsRef<Path>, port: u32) -> io::Result<(UnixStream, u32)> {
        self.retry(|| connect(uds.as_ref(), port, self.attempt_timeout()))
    }

    /// [`connect_seqpacket`] with this connector's timeout and retries.
    pub fn connect_hybrid_seqpacket(
        &self,
        uds: impl AsRef<Path>,
        port: u32,
    ) -> io::Result<(socket2::Socket, u32)> {
        self.retry(|| connect_seqpacket(uds.as_ref(), port, self.attempt_timeout()))
    }
}

/// [`connect`] to a VM whose hybrid socket takes SOCK_SEQPACKET connections (the device-wide
/// `vsock_type` Firecracker's seqpacket work proposes; `hvsock lab run --hybrid-seqpacket`):
/// `CONNECT <port>\n` and the `OK <host port>\n` answer are messages of their own, and each
/// message after them is one of the guest's SEQPACKET socket. std has no type for a Unix
/// SOCK_SEQPACKET socket: it comes as socket2's, blocking.
///
/// ```no_run
/// let (s, _) = hvsock::hybrid::connect_seqpacket("/run/fc/v.sock", 52, None)?;
/// s.send(b"one message")?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn connect_seqpacket(
    uds: impl AsRef<Path>,
    port: u32,
    timeout: Option<Duration>,
) -> io::Result<(socket2::Socket, u32)> {
    let left = time_left(timeout, port);
    let s = crate::unix::connect_seqpacket(uds.as_ref()).map_err(|e| match e.raw_os_error() {
        Some(libc::EPROTOTYPE) => io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} takes stream connections, not SOCK_SEQPACKET ones (use hybrid:)",
                uds.as_ref().display()
            ),
        ),
        _ => no_vmm(e, uds.as_ref()),
    })?;
    s.set_write_timeout(Some(left()?))?;
    s.send_with_flags(format!("CONNECT {port}\n").as_bytes(), libc::MSG_NOSIGNAL)
        .map_err(|e| closed_early(e, port))?;
    s.set_read_timeout(Some(left()?))?;
    let mut answer = [0u8; 64];
    let n = match crate::recv::recv_with_flags(&s, &mut answer, 0) {
        Ok(0) => return Err(refused(port)),
        Ok(n) => n,
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
            return Err(no_answer(port))
        }
        Err(e) => return Err(closed_early(e, port)),
    };
    let line = answer[..n].strip_suffix(b"\n").ok_or_else(|| garbled(&answer[..n]))?;
    let host_port = parse_ok(line)?;
    s.set_read_timeout(None)?;
    s.set_write_timeout(None)?;
    Ok((s, host_port))
}

/// [`listen`] for the guest's SOCK_SEQPACKET connections to host port `port`: a Unix
/// SOCK_SEQPACKET listener at `UDS_port` (a guest's stream connection there is refused).
pub fn listen_seqpacket(uds: impl AsRef<Path>, port: u32) -> io::Result<socket2::Socket> {
    crate::unix::listen_seqpacket(listen_path(uds, port))
}

/// One deadline for the whole exchange (a VM answering a byte at a time cannot stretch it): what
/// is left of it, or the error for a VM that did not answer in time.
fn time_left(timeout: Option<Duration>, port: u32) -> impl Fn() -> io::Result<Duration> {
    let deadline = Instant::now() + timeout.unwrap_or(DEFAULT_TIMEOUT);
    move || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| no_answer(port))
    }
}

/// Reads the answer line byte by byte, so nothing of the stream after it is consumed.
fn read_ok(port: u32, read: impl FnMut(&mut [u8]) -> io::Result<usize>) -> io::Result<u32> {
    struct By<F>(F);
    impl<F: FnMut(&mut [u8]) -> io::Result<usize>> Read for By<F> {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            (self.0)(b)
        }
    }
    let mut line = Line::new(ANSWER_MAX);
    line.read_from(By(read)).map_err(|e| answer_error(e, port))?;
    parse_ok(line.bytes())
}

/// The longest `OK <port>` answer taken: a VM sending more without a newline is garbled.
const ANSWER_MAX: usize = 64;

/// A failed read of the answer line, said as what it means for the handshake.
fn answer_error(e: LineError, port: u32) -> io::Error {
    match e {
        LineError::Closed => refused(port),
        LineError::TooLong { so_far, .. } => garbled(&so_far),
        LineError::Io(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
            no_answer(port)
        }
        LineError::Io(e) => closed_early(e, port),
    }
}

/// The VM's socket is missing or nobody listens on it: its VMM is not running (yet).
fn no_vmm(e: io::Error, uds: &Path) -> io::Error {
    let why = match e.kind() {
        io::ErrorKind::NotFound => "no such socket",
        io::ErrorKind::ConnectionRefused => "a socket nobody listens on",
        _ => return e,
    };
    io::Error::new(e.kind(), format!("no VMM is running at {} ({why}): is the VM started?", uds.display()))
}

fn no_answer(port: u32) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("no answer to CONNECT {port} in time"))
}

/// A VMM that accepts and closes before reading `CONNECT` (one still booting its VM does)
/// makes our write fail with EPIPE or our read with ECONNRESET: said as what it is, and
/// kept a reset, which retries treat as "not ready yet".
fn closed_early(e: io::Error, port: u32) -> io::Error {
    match e.kind() {
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => io::Error::new(
            io::ErrorKind::ConnectionReset,
            format!(
                "the VMM closed the hybrid socket before answering CONNECT {port} (is the VM still booting?)"
            ),
        ),
        _ => e,
    }
}

/// The VM closed the socket instead of answering: nobody listens on that guest port.
fn refused(port: u32) -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionRefused,
        format!("the VM closed the hybrid socket instead of answering: nothing listens on guest port {port}"),
    )
}

pub(crate) fn parse_ok(line: &[u8]) -> io::Result<u32> {
    let text = String::from_utf8_lossy(line);
    text.trim_end_matches('\r')
        .strip_prefix("OK ")
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| garbled(line))
}

fn garbled(line: &[u8]) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "unexpected hybrid handshake answer `{}` (expected `OK <port>`)",
            crate::Printable::new(String::from_utf8_lossy(line).trim_end())
        ),
    )
}

/// The Unix socket where the guest's connections to host port `port` arrive: `UDS_port`.
pub fn listen_path(uds: impl AsRef<Path>, port: u32) -> PathBuf {
    let mut p = uds.as_ref().as_os_str().to_owned();
    p.push(format!("_{port}"));
    PathBuf::from(p)
}

/// Listens for the guest's connections to host port `port`, removing a stale socket file
/// left by a listener that is gone (see [`crate::unix::listen`]).
pub fn listen(uds: impl AsRef<Path>, port: u32) -> io::Result<UnixListener> {
    crate::unix::listen(listen_path(uds, port))
}

/// The async flavour (feature `tokio`).
#[cfg(feature = "tokio")]
pub mod tokio {
    use std::io;
    use std::path::Path;
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;
    use tokio::net::{UnixListener, UnixStream};

    /// [`super::connect`] for tokio.
    pub async fn connect(
        uds: impl AsRef<Path>,
        port: u32,
        timeout: Option<Duration>,
    ) -> io::Result<(UnixStream, u32)> {
        // One deadline for the whole exchange, as in the blocking flavour.
        let exchange = async {
            let mut s =
                UnixStream::connect(uds.as_ref()).await.map_err(|e| super::no_vmm(e, uds.as_ref()))?;
            s.write_all(format!("CONNECT {port}\n").as_bytes())
                .await
                .map_err(|e| super::closed_early(e, port))?;
            let mut line = crate::line::Line::new(super::ANSWER_MAX);
            line.read_from_async(&mut s).await.map_err(|e| super::answer_error(e, port))?;
            super::parse_ok(line.bytes()).map(|p| (s, p))
        };
        tokio::time::timeout(timeout.unwrap_or(super::DEFAULT_TIMEOUT), exchange)
            .await
            .map_err(|_| super::no_answer(port))?
    }

    impl crate::Connector {
        /// [`Connector::connect_hybrid`](crate::Connector::connect_hybrid) for tokio.
        pub async fn connect_hybrid_async(
            &self,
            uds: impl AsRef<Path>,
            port: u32,
        ) -> io::Result<(UnixStream, u32)> {
            self.retry_async(|| connect(uds.as_ref(), port, self.attempt_timeout())).await
        }
    }

    /// [`super::listen`] for tokio.
    pub fn listen(uds: impl AsRef<Path>, port: u32) -> io::Result<UnixListener> {
        let l = crate::unix::listen(super::listen_path(uds, port))?;
        l.set_nonblocking(true)?;
        UnixListener::from_std(l)
    }
}

#[cfg(test)]
mod tests {
    use std::thread;

    use super::*;

    fn fake_vm(answer: &'static [u8], hold: Duration) -> (tempdir::Dir, PathBuf) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("vm.sock");
        let listener = UnixListener::bind(&path).unwrap();
        thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut line = [0u8; 13];
            s.read_exact(&mut line).unwrap();
            assert_eq!(&line, b"CONNECT 5000\n");
            s.write_all(answer).unwrap();
            thread::sleep(hold);
        });
        (dir, path)
    }

    use crate::unix::tempdir;

    #[test]
    fn ok_then_the_stream_untouched() {
        let (_d, path) = fake_vm(b"OK 1073741824\nrest of the stream", Duration::from_millis(200));
        let (mut s, port) = connect(&path, 5000, None).unwrap();
        assert_eq!(port, 1 << 30);
        let mut rest = String::new();
        s.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "rest of the stream");
    }

    #[test]
    fn refused_garbled_and_silent_vms_are_clear_errors() {
        let (_d, path) = fake_vm(b"", Duration::ZERO);
        let e = connect(&path, 5000, None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        assert!(e.to_string().contains("nothing listens on guest port 5000"), "{e}");

        let (_d, path) = fake_vm(b"HELLO THERE\n", Duration::ZERO);
        let e = connect(&path, 5000, None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(e.to_string(), "unexpected hybrid handshake answer `HELLO THERE` (expected `OK <port>`)");

        let (_d, path) = fake_vm(&[b'x'; 100], Duration::from_millis(200));
        assert_eq!(connect(&path, 5000, None).unwrap_err().kind(), io::ErrorKind::InvalidData);

        // Bounds far apart (0.3 s against 20 s), so no load on this machine tips them.
        let (_d, path) = fake_vm(b"", Duration::from_secs(20));
        let start = std::time::Instant::now();
        let e = connect(&path, 5000, Some(Duration::from_millis(300))).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());

        let e = connect(_d.0.join("missing.sock"), 5000, None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("missing.sock (no such socket): is the VM started?"), "{e}");
        drop(UnixListener::bind(_d.0.join("stale.sock")).unwrap());
        let e = connect(_d.0.join("stale.sock"), 5000, None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        assert!(e.to_string().contains("no VMM is running at"), "{e}");
    }

    #[test]
    fn listen_removes_only_stale_sockets() {
        let d = tempdir::Dir::new();
        let uds = d.0.join("vm.sock");
        let first = listen(&uds, 52).unwrap();
        assert_eq!(listen(&uds, 52).unwrap_err().kind(), io::ErrorKind::AddrInUse);
        drop(first); // the file stays behind, stale
        assert!(listen_path(&uds, 52).exists());
        let _again = listen(&uds, 52).unwrap();
        std::fs::write(listen_path(&uds, 53), b"not a socket").unwrap();
        let e = listen(&uds, 53).unwrap_err();
        assert!(e.to_string().ends_with("vm.sock_53 exists and is not a socket"), "{e}");
    }

    /// A VM answering one byte at a time cannot hold the handshake past its one deadline.
    #[test]
    fn a_trickling_vm_meets_one_deadline() {
        let d = tempdir::Dir::new();
        let path = d.0.join("vm.sock");
        let listener = UnixListener::bind(&path).unwrap();
        thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            // A byte every 0.4 s: a timeout per read (0.5 s) would never fire, and the whole
            // answer would take 5.6 s; the one deadline ends it at 0.5 s.
            for b in b"OK 123456789\n" {
                thread::sleep(Duration::from_millis(400));
                if s.write_all(&[*b]).is_err() {
                    return;
                }
            }
        });
        let start = Instant::now();
        let e = connect(&path, 5000, Some(Duration::from_millis(500))).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());
    }

    /// A VMM that closes before reading CONNECT (its VM still booting) is a reset, said so.
    #[test]
    fn a_vmm_closing_before_connect_is_a_reset_with_a_reason() {
        let d = tempdir::Dir::new();
        let path = d.0.join("vm.sock");
        let listener = UnixListener::bind(&path).unwrap();
        thread::spawn(move || {
            for s in listener.incoming() {
                drop(s);
            }
        });
        for _ in 0..20 {
            let e = connect(&path, 5000, None).unwrap_err();
            // Closed before our write: EPIPE; after it, with our line unread: ECONNRESET; with
            // nothing unread the VMM's close reads as "nothing listens".
            match e.kind() {
                io::ErrorKind::ConnectionReset => {
                    assert!(
                        e.to_string().contains("closed the hybrid socket before answering CONNECT 5000"),
                        "{e}"
                    )
                }
                io::ErrorKind::ConnectionRefused => {}
                _ => panic!("{e}"),
            }
        }
    }
}
