//! Socket errors told as what probably happened and what to do.

use std::io;

/// `action: advice (os error N)`, one line.
pub fn socket_error(action: impl std::fmt::Display, e: io::Error) -> anyhow::Error {
    match (advice(&e), e.raw_os_error()) {
        // The advice says what the OS text would; wine and some Windows builds have no text.
        (Some(advice), Some(code)) => anyhow::anyhow!("{action}: {advice} (os error {code})"),
        _ => anyhow::anyhow!("{action}: {e}"),
    }
}

fn advice(e: &io::Error) -> Option<&'static str> {
    if e.kind() == io::ErrorKind::InvalidInput && e.raw_os_error().is_none() {
        return None; // our own address errors say it all already
    }
    #[cfg(unix)]
    {
        let advice = match e.raw_os_error()? {
            libc::ECONNREFUSED | libc::ECONNRESET => "nothing is listening there",
            libc::ETIMEDOUT => "no answer in time (is the VM running, and is something listening?)",
            libc::EAFNOSUPPORT => "AF_VSOCK is not available: load the vsock kernel module",
            libc::EADDRNOTAVAIL => "no vsock transport on this machine serves that CID (CID 1 needs vsock_loopback; binding the host CID needs vhost_vsock)",
            libc::EADDRINUSE => "something is already listening there",
            libc::ENODEV | libc::ENETUNREACH | libc::EHOSTUNREACH => "no vsock transport reaches that CID",
            libc::EACCES | libc::EPERM => "ports below 1024 need root",
            _ => return None,
        };
        Some(advice)
    }
    #[cfg(windows)]
    {
        const WSAEAFNOSUPPORT: i32 = 10047;
        const WSAEADDRINUSE: i32 = 10048;
        const WSAECONNREFUSED: i32 = 10061;
        const WSAETIMEDOUT: i32 = 10060;
        let advice = match e.raw_os_error()? {
            WSAEAFNOSUPPORT => "Hyper-V sockets are not available on this system",
            WSAECONNREFUSED => {
                "nothing is listening there (or the service GUID is not registered on the host)"
            }
            WSAETIMEDOUT => "no answer in time (is the VM running, and is the service registered?)",
            WSAEADDRINUSE => "something is already listening there",
            _ => return None,
        };
        Some(advice)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn known_socket_errors_get_advice_and_the_code() {
        let e = socket_error("cannot connect to vsock:1:5", io::Error::from_raw_os_error(libc::ECONNRESET));
        assert_eq!(e.to_string(), "cannot connect to vsock:1:5: nothing is listening there (os error 104)");
        let e = socket_error("cannot listen", io::Error::from_raw_os_error(libc::EADDRNOTAVAIL));
        assert!(e.to_string().contains("no vsock transport on this machine serves that CID"));
        let e = socket_error("x", io::Error::new(io::ErrorKind::InvalidInput, "any: only a listener"));
        assert_eq!(e.to_string(), "x: any: only a listener");
    }
}
