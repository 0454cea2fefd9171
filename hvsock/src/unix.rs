//! Unix sockets as every hvsock listener makes them: one listen backlog, a stale socket file
//! left by a listener that is gone removed (never a live one), and SOCK_SEQPACKET sockets,
//! which std has no type for (they come as socket2's, blocking).

use std::io;
use std::os::unix::net::UnixListener;
use std::path::Path;

/// Listens on a Unix stream socket at `path`, with the backlog every hvsock listener has; a
/// stale socket file there is removed first ([`remove_stale`]).
///
/// ```no_run
/// let listener = hvsock::unix::listen("/run/my-agent.sock")?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn listen(path: impl AsRef<Path>) -> io::Result<UnixListener> {
    let s = bound(path.as_ref(), socket2::Type::STREAM)?;
    Ok(UnixListener::from(std::os::fd::OwnedFd::from(s)))
}

/// [`listen`] for SOCK_SEQPACKET connections (a stream connection there is refused).
pub fn listen_seqpacket(path: impl AsRef<Path>) -> io::Result<socket2::Socket> {
    bound(path.as_ref(), socket2::Type::SEQPACKET)
}

/// A new SOCK_SEQPACKET socket, not yet connected or bound (close-on-exec, as socket2 makes
/// every socket).
pub fn seqpacket() -> io::Result<socket2::Socket> {
    socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::SEQPACKET, None)
}

/// Connects a SOCK_SEQPACKET socket to the listener at `path`.
///
/// ```no_run
/// let s = hvsock::unix::connect_seqpacket("/run/my-agent.seq")?;
/// s.send(b"one message")?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn connect_seqpacket(path: impl AsRef<Path>) -> io::Result<socket2::Socket> {
    let s = seqpacket()?;
    s.connect(&socket2::SockAddr::unix(path.as_ref())?)?;
    Ok(s)
}

fn bound(path: &Path, ty: socket2::Type) -> io::Result<socket2::Socket> {
    remove_stale(path)?;
    let s = socket2::Socket::new(socket2::Domain::UNIX, ty, None)?;
    s.bind(&socket2::SockAddr::unix(path)?)?;
    s.listen(crate::net::BACKLOG)?;
    Ok(s)
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

/// A directory of its own for a test's sockets, removed after it.
#[cfg(test)]
pub(crate) mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "hvsock-unix-{}-{}",
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn seqpacket_listeners_take_messages_whole_and_refuse_streams() {
        let d = super::tempdir::Dir::new();
        let path = d.0.join("seq.sock");
        let listener = listen_seqpacket(&path).unwrap();
        let client = connect_seqpacket(&path).unwrap();
        let (server, _) = listener.accept().unwrap();
        client.send(b"one").unwrap();
        client.send(b"two").unwrap();
        let mut buf = [0u8; 16];
        let n = crate::recv::recv_with_flags(&server, &mut buf, 0).unwrap();
        assert_eq!(&buf[..n], b"one", "one message per read");
        assert_eq!(
            std::os::unix::net::UnixStream::connect(&path).unwrap_err().raw_os_error(),
            Some(libc::EPROTOTYPE)
        );
        drop((listener, server));
        let _again = listen_seqpacket(&path).unwrap(); // the stale file is removed
    }

    /// A live listener whose backlog is full is in use: no hang, no deletion, no empty
    /// connection left on it.
    #[test]
    fn stale_checks_never_hang_delete_a_live_socket_or_connect_to_it() {
        let d = super::tempdir::Dir::new();
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
