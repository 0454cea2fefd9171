use std::io::{self, ErrorKind};
use std::thread;
use std::time::Duration;

use socket2::Type;

use super::to_sockaddr;
use crate::{Role, Stream, ToSocketAddr};

/// One socket option a connector sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SockOpt {
    #[cfg(target_os = "linux")]
    BufferSize(u64),
    #[cfg(windows)]
    Flag(crate::HvFlag, bool),
    ConnectTimeout(Duration),
}

/// Connects with a timeout per attempt and retries while the peer is not there yet, like
/// go-winio's `HvsockDialer` (a VM still booting, a service not yet listening).
///
/// ```no_run
/// use std::time::Duration;
/// use hvsock::Connector;
/// let stream = Connector::new()
///     .timeout(Duration::from_secs(2))
///     .retries(10)
///     .retry_wait(Duration::from_millis(500))
///     .connect("hv:parent:19000")?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Connector {
    timeout: Option<Duration>,
    retries: u32,
    retry_wait: Duration,
    #[cfg(target_os = "linux")]
    buffer_size: Option<u64>,
    /// Set only when asked: a Windows build that does not know an option refuses it.
    #[cfg(windows)]
    high_vtl: Option<bool>,
    #[cfg(windows)]
    connected_suspend: Option<bool>,
}

impl Default for Connector {
    fn default() -> Connector {
        Connector::new()
    }
}

impl Connector {
    /// One attempt, the platform's own timeout.
    pub fn new() -> Connector {
        Connector {
            timeout: None,
            retries: 0,
            retry_wait: Duration::from_millis(100),
            #[cfg(target_os = "linux")]
            buffer_size: None,
            #[cfg(windows)]
            high_vtl: None,
            #[cfg(windows)]
            connected_suspend: None,
        }
    }

    /// Gives up on one attempt after this long (Windows caps it at 300 s).
    pub fn timeout(mut self, timeout: Duration) -> Connector {
        self.timeout = Some(timeout);
        self
    }

    /// Tries again this many times when the peer refuses, resets, times out or is unreachable.
    pub fn retries(mut self, retries: u32) -> Connector {
        self.retries = retries;
        self
    }

    /// Waits this long between attempts (default 100 ms).
    pub fn retry_wait(mut self, wait: Duration) -> Connector {
        self.retry_wait = wait;
        self
    }

    /// `SO_VM_SOCKETS_BUFFER_SIZE` for the new connection (Linux).
    #[cfg(target_os = "linux")]
    pub fn buffer_size(mut self, bytes: u64) -> Connector {
        self.buffer_size = Some(bytes);
        self
    }

    /// `HVSOCKET_HIGH_VTL`: connect to the partition's higher virtual trust level (Windows).
    #[cfg(windows)]
    pub fn high_vtl(mut self, yes: bool) -> Connector {
        self.high_vtl = Some(yes);
        self
    }

    /// `HVSOCKET_CONNECTED_SUSPEND`: keep the connection over a VM's suspend (Windows).
    #[cfg(windows)]
    pub fn connected_suspend(mut self, yes: bool) -> Connector {
        self.connected_suspend = Some(yes);
        self
    }

    /// Connects, retrying as configured; the last attempt's error when all fail.
    pub fn connect<A: ToSocketAddr>(&self, addr: A) -> io::Result<Stream> {
        let addr = to_sockaddr(&addr.to_socket_addr(Role::Connect)?);
        self.retry(|| {
            let inner = self.socket()?;
            match self.timeout {
                // Where the kernel times the connect out by itself (`socket` gave it our
                // timeout), one blocking call does it, without the non-blocking round trips.
                Some(timeout) if !crate::sys::KERNEL_TIMES_CONNECT => {
                    inner.connect_timeout(&addr, timeout)?
                }
                _ => inner.connect(&addr)?,
            }
            Ok(Stream { inner })
        })
    }

    /// A stream socket with every option asked for set, ready to connect.
    pub(crate) fn socket(&self) -> io::Result<socket2::Socket> {
        self.configure(crate::sys::socket(Type::STREAM)?)
    }

    /// The same, non-blocking, for the async API.
    #[cfg(feature = "tokio")]
    pub(crate) fn async_socket(&self) -> io::Result<socket2::Socket> {
        self.configure(crate::sys::async_socket(Type::STREAM)?)
    }

    pub(crate) fn configure(&self, inner: socket2::Socket) -> io::Result<socket2::Socket> {
        for option in self.options() {
            match option {
                #[cfg(target_os = "linux")]
                SockOpt::BufferSize(bytes) => {
                    crate::sys::set_buffer_size(&inner, crate::sys::BufferSize::Size, bytes)?
                }
                #[cfg(windows)]
                SockOpt::Flag(flag, on) => crate::sys::set_flag(&inner, flag, on)?,
                SockOpt::ConnectTimeout(timeout) => crate::sys::set_connect_timeout(&inner, timeout)?,
            }
        }
        Ok(inner)
    }

    /// What `configure` sets, in order: only what the caller asked for, since a Windows build
    /// that does not know an HVSOCKET option refuses it (not even a default 0 is set).
    fn options(&self) -> Vec<SockOpt> {
        let mut options = Vec::new();
        #[cfg(target_os = "linux")]
        options.extend(self.buffer_size.map(SockOpt::BufferSize));
        #[cfg(windows)]
        {
            options.extend(self.high_vtl.map(|on| SockOpt::Flag(crate::HvFlag::HighVtl, on)));
            options
                .extend(self.connected_suspend.map(|on| SockOpt::Flag(crate::HvFlag::ConnectedSuspend, on)));
        }
        // Both kernels also time a connect out on their own (Linux vsock after 2 s, even a
        // non-blocking one): lifted to ours.
        options.extend(self.timeout.map(SockOpt::ConnectTimeout));
        options
    }

    /// The timeout of one attempt.
    pub fn attempt_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries are used up.
    pub fn retry<T>(&self, mut attempt: impl FnMut() -> io::Result<T>) -> io::Result<T> {
        let mut tried = 0;
        loop {
            match attempt() {
                Err(e) if tried < self.retries && Connector::is_not_ready(&e) => {
                    tried += 1;
                    thread::sleep(self.retry_wait);
                }
                result => return result,
            }
        }
    }

    /// [`Connector::retry`] for async attempts (feature `tokio`).
    #[cfg(feature = "tokio")]
    pub async fn retry_async<T, F, Fut>(&self, mut attempt: F) -> io::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = io::Result<T>>,
    {
        let mut tried = 0;
        loop {
            match attempt().await {
                Err(e) if tried < self.retries && Connector::is_not_ready(&e) => {
                    tried += 1;
                    ::tokio::time::sleep(self.retry_wait).await;
                }
                result => return result,
            }
        }
    }

    /// The one retry policy of hvsock (the blocking and async APIs, hybrid vsock, the CLI):
    /// errors that mean "not there yet" rather than "never" — refused, reset (also a VMM
    /// closing its hybrid socket while the VM boots), timed out, unreachable, and a hybrid
    /// socket file not created yet. An unknown CID (ENODEV) or a bad address is final.
    ///
    /// ```
    /// use std::io::{Error, ErrorKind};
    /// assert!(hvsock::Connector::is_not_ready(&Error::from(ErrorKind::ConnectionRefused)));
    /// assert!(!hvsock::Connector::is_not_ready(&Error::from(ErrorKind::InvalidInput)));
    /// ```
    pub fn is_not_ready(e: &io::Error) -> bool {
        matches!(
            e.kind(),
            ErrorKind::ConnectionRefused
                | ErrorKind::ConnectionReset
                | ErrorKind::TimedOut
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::NotFound
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What reaches setsockopt: nothing the caller did not ask for (a Windows build that does
    /// not know an HVSOCKET option refuses it), and what was asked, as asked.
    #[test]
    fn options_are_set_only_when_asked() {
        assert_eq!(Connector::new().options(), []);
        let second = Duration::from_secs(1);
        assert_eq!(Connector::new().timeout(second).options(), [SockOpt::ConnectTimeout(second)]);
        #[cfg(target_os = "linux")]
        assert_eq!(
            Connector::new().buffer_size(4096).timeout(second).options(),
            [SockOpt::BufferSize(4096), SockOpt::ConnectTimeout(second)]
        );
        #[cfg(windows)]
        {
            use crate::HvFlag::{ConnectedSuspend, HighVtl};
            let asked = Connector::new().high_vtl(false).connected_suspend(true);
            assert_eq!(
                asked.options(),
                [SockOpt::Flag(HighVtl, false), SockOpt::Flag(ConnectedSuspend, true)]
            );
            assert_eq!(
                Connector::new().connected_suspend(false).options(),
                [SockOpt::Flag(ConnectedSuspend, false)]
            );
        }
    }

    #[test]
    fn one_retry_policy() {
        use std::io::Error;
        for kind in [
            ErrorKind::ConnectionRefused,
            ErrorKind::ConnectionReset,
            ErrorKind::TimedOut,
            ErrorKind::NotFound,
        ] {
            assert!(Connector::is_not_ready(&Error::from(kind)), "{kind:?}");
        }
        for kind in [ErrorKind::InvalidInput, ErrorKind::PermissionDenied, ErrorKind::AddrNotAvailable] {
            assert!(!Connector::is_not_ready(&Error::from(kind)), "{kind:?}");
        }
        let mut tries = 0;
        let r: io::Result<()> = Connector::new().retries(3).retry_wait(Duration::ZERO).retry(|| {
            tries += 1;
            Err(ErrorKind::ConnectionRefused.into())
        });
        assert_eq!((r.unwrap_err().kind(), tries), (ErrorKind::ConnectionRefused, 4));
    }

    /// The kernel, not a timer of ours, ends a vsock connect that takes too long (one blocking
    /// call, no clock reads): it must have been given the caller's timeout, and async sockets
    /// must be non-blocking from their creation. Only creates sockets: nothing connects.
    #[test]
    #[cfg(target_os = "linux")]
    fn the_kernel_gets_the_connect_timeout() {
        let c = Connector::new().timeout(Duration::from_millis(7500));
        let blocking = c.socket().unwrap();
        assert_eq!(crate::sys::connect_timeout(&blocking).unwrap(), Duration::from_millis(7500));
        assert!(!blocking.nonblocking().unwrap());
        #[cfg(feature = "tokio")]
        {
            let nonblocking = c.async_socket().unwrap();
            assert_eq!(crate::sys::connect_timeout(&nonblocking).unwrap(), Duration::from_millis(7500));
            assert!(nonblocking.nonblocking().unwrap());
        }
    }
}
