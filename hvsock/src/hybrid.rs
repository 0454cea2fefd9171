//! Hybrid vsock: the host side of a Firecracker / Cloud Hypervisor / vhost-device-vsock VM's
//! vsock device is a Unix socket.
//!
//! To reach the guest's port P, connect to the VM's socket `UDS`, send `CONNECT P\n` and read
//! `OK <host port>\n`; after that the stream is the guest's. The guest's connections to the
//! host (CID 2) port P arrive at the Unix socket `UDS_P`, which a host service listens on.

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    let uds = uds.as_ref();
    let mut s = UnixStream::connect(uds)?;
    s.set_read_timeout(Some(timeout.unwrap_or(DEFAULT_TIMEOUT)))?;
    s.write_all(format!("CONNECT {port}\n").as_bytes())?;
    let host_port = read_ok(&mut s, port)?;
    s.set_read_timeout(None)?;
    Ok((s, host_port))
}

/// Reads the answer line byte by byte, so nothing of the stream after it is consumed.
fn read_ok(s: &mut impl Read, port: u32) -> io::Result<u32> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(0) => return Err(refused(port)),
            Ok(_) if b[0] == b'\n' => break,
            Ok(_) if line.len() < 64 => line.push(b[0]),
            Ok(_) => return Err(garbled(&line)),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer to CONNECT {port} in time"),
                ))
            }
            Err(e) => return Err(e),
        }
    }
    parse_ok(&line)
}

/// The VM closed the socket instead of answering: nobody listens on that guest port.
fn refused(port: u32) -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionRefused,
        format!("the VM closed the hybrid socket instead of answering: nothing listens on guest port {port}"),
    )
}

fn parse_ok(line: &[u8]) -> io::Result<u32> {
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
            String::from_utf8_lossy(line).trim_end()
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
pub fn remove_stale(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if !m.file_type().is_socket() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        )),
        Ok(_) => match UnixStream::connect(path) {
            Ok(_) => Err(io::Error::new(io::ErrorKind::AddrInUse, format!("{} is in use", path.display()))),
            Err(_) => std::fs::remove_file(path),
        },
    }
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
        let mut s = UnixStream::connect(uds).await?;
        s.write_all(format!("CONNECT {port}\n").as_bytes()).await?;
        let read = async {
            let mut line = Vec::new();
            loop {
                let mut b = [0u8; 1];
                if s.read(&mut b).await? == 0 {
                    return Err(super::refused(port));
                }
                if b[0] == b'\n' {
                    return super::parse_ok(&line);
                }
                if line.len() >= 64 {
                    return Err(super::garbled(&line));
                }
                line.push(b[0]);
            }
        };
        let host_port =
            tokio::time::timeout(timeout.unwrap_or(super::DEFAULT_TIMEOUT), read).await.map_err(|_| {
                io::Error::new(io::ErrorKind::TimedOut, format!("no answer to CONNECT {port} in time"))
            })??;
        Ok((s, host_port))
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

        let (_d, path) = fake_vm(b"", Duration::from_secs(2));
        let start = std::time::Instant::now();
        let e = connect(&path, 5000, Some(Duration::from_millis(300))).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() < Duration::from_secs(2));

        let e = connect(_d.0.join("missing.sock"), 5000, None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
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
}
