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
    let s = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::SEQPACKET, None)?;
    s.connect(&socket2::SockAddr::unix(uds.as_ref())?).map_err(|e| match e.raw_os_error() {
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
    let path = listen_path(uds, port);
    remove_stale(&path)?;
    let s = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::SEQPACKET, None)?;
    s.bind(&socket2::SockAddr::unix(&path)?)?;
    s.listen(crate::net::BACKLOG)?;
    Ok(s)
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
fn read_ok(port: u32, mut read: impl FnMut(&mut [u8]) -> io::Result<usize>) -> io::Result<u32> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match read(&mut b) {
            Ok(0) => return Err(refused(port)),
            Ok(_) if b[0] == b'\n' => break,
            Ok(_) if line.len() < 64 => line.push(b[0]),
            Ok(_) => return Err(garbled(&line)),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(no_answer(port))
            }
            Err(e) => return Err(closed_early(e, port)),
        }
    }
    parse_ok(&line)
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
/// left by a listener that is gone (never one that is still listening, nor a file that is not
/// a socket).
pub fn listen(uds: impl AsRef<Path>, port: u32) -> io::Result<UnixListener> {
    let path = listen_path(uds, port);
    remove_stale(&path)?;
    UnixListener::bind(&path)
}

/// Removes `path` if it is a socket nobody listens on.
///
/// Only a provably stale socket goes: one whose connect is refused (ECONNREFUSED). The check
/// never waits (a live listener with a full backlog answers EAGAIN: in use), and any other
/// answer (EACCES, …) is an error that leaves the file alone. A listener found listed in
/// `/proc/net/unix` under this path is in use without being connected to at all.
pub fn remove_stale(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let in_use = || io::Error::new(io::ErrorKind::AddrInUse, format!("{} is in use", path.display()));
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(m) if !m.file_type().is_socket() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ))
        }
        Ok(_) => {}
    }
    if listed_as_listening(path) {
        return Err(in_use());
    }
    let probe = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    probe.set_nonblocking(true)?;
    match probe.connect(&socket2::SockAddr::unix(path)?) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path),
        Ok(()) => Err(in_use()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::EAGAIN) => {
            Err(in_use())
        }
        Err(e) => {
            Err(io::Error::new(e.kind(), format!("cannot tell whether {} is in use: {e}", path.display())))
        }
    }
}

/// Whether `/proc/net/unix` lists a listening socket bound at exactly this path.
fn listed_as_listening(path: &Path) -> bool {
    const ACCEPTING: u32 = 0x0001_0000; // __SO_ACCEPTCON
    let Ok(table) = std::fs::read_to_string("/proc/net/unix") else { return false };
    let want = path.to_string_lossy();
    let absolute = std::path::absolute(path).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 8
            && u32::from_str_radix(f[3], 16).is_ok_and(|flags| flags & ACCEPTING != 0)
            && (f[7] == want || f[7] == absolute)
    })
}

/// The async flavour (feature `tokio`).
#[cfg(feature = "tokio")]
pub mod tokio {
    use std::io;
    use std::path::Path;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
            let mut line = Vec::new();
            loop {
                let mut b = [0u8; 1];
                if s.read(&mut b).await.map_err(|e| super::closed_early(e, port))? == 0 {
                    return Err(super::refused(port));
                }
                if b[0] == b'\n' {
                    return super::parse_ok(&line).map(|p| (s, p));
                }
                if line.len() >= 64 {
                    return Err(super::garbled(&line));
                }
                line.push(b[0]);
            }
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
        let path = super::listen_path(uds, port);
        super::remove_stale(&path)?;
        UnixListener::bind(path)
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

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "hvsock-hybrid-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

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

    /// A live listener whose backlog is full is in use: no hang, no deletion, no empty
    /// connection left on it.
    #[test]
    fn stale_checks_never_hang_delete_a_live_socket_or_connect_to_it() {
        let d = tempdir::Dir::new();
        let path = d.0.join("full.sock");
        let live = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
        live.bind(&socket2::SockAddr::unix(&path).unwrap()).unwrap();
        live.listen(0).unwrap();
        let mut fillers = Vec::new();
        for _ in 0..4 {
            let c = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
            c.set_nonblocking(true).unwrap();
            let _ = c.connect(&socket2::SockAddr::unix(&path).unwrap());
            fillers.push(c);
        }
        let start = Instant::now();
        assert_eq!(remove_stale(&path).unwrap_err().kind(), io::ErrorKind::AddrInUse);
        assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
        assert!(path.exists());

        let quiet = d.0.join("quiet.sock");
        let listener = UnixListener::bind(&quiet).unwrap();
        listener.set_nonblocking(true).unwrap();
        assert_eq!(remove_stale(&quiet).unwrap_err().kind(), io::ErrorKind::AddrInUse);
        assert_eq!(
            listener.accept().unwrap_err().kind(),
            io::ErrorKind::WouldBlock,
            "a probe connection was left"
        );
    }
}
