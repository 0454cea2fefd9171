//! A socket in tokio's reactor. Linux: `AsyncFd` (epoll). Windows: AF_HYPERV sockets are IFS
//! handles, which mio's AFD polling takes like any Winsock socket, registered through tokio's
//! `UdpSocket` shell for readiness only (the I/O goes through socket2 on the same handle).

#[cfg(target_os = "linux")]
pub(crate) use linux::*;
#[cfg(windows)]
pub(crate) use windows::*;

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

    use socket2::Socket;

    /// A nonblocking connect that has started and not finished.
    pub(crate) fn connect_in_progress(e: &io::Error) -> bool {
        e.raw_os_error() == Some(libc::EINPROGRESS)
    }

    /// A socket registered with tokio's reactor (epoll, through `AsyncFd`).
    #[derive(Debug)]
    pub(crate) struct AsyncSocket(tokio::io::unix::AsyncFd<Socket>);

    impl AsyncSocket {
        pub(crate) fn new(socket: Socket) -> io::Result<AsyncSocket> {
            socket.set_nonblocking(true)?;
            AsyncSocket::register(socket)
        }

        /// Registers a socket that is already non-blocking (`sys::async_socket`, `sys::accept_nonblocking`).
        pub(crate) fn register(socket: Socket) -> io::Result<AsyncSocket> {
            // SAFETY: the Socket owns its fd and keeps it open until the AsyncFd gives it back or
            // drops it, deregistering first.
            Ok(AsyncSocket(unsafe { tokio::io::unix::AsyncFd::register(socket) }?))
        }

        pub(crate) fn socket(&self) -> &Socket {
            self.0.get_ref()
        }

        pub(crate) fn into_socket(self) -> io::Result<Socket> {
            Ok(self.0.into_inner())
        }

        /// Runs `op` once the socket is ready for `interest`, until it stops saying WouldBlock.
        pub(crate) fn poll_io<R>(
            &self,
            cx: &mut std::task::Context<'_>,
            interest: tokio::io::Interest,
            mut op: impl FnMut(&Socket) -> io::Result<R>,
        ) -> std::task::Poll<io::Result<R>> {
            loop {
                let mut guard = std::task::ready!(self.poll_ready(cx, interest))?;
                if let Ok(result) = guard.try_io(|fd| op(fd.get_ref())) {
                    return std::task::Poll::Ready(result);
                }
            }
        }

        fn poll_ready<'a>(
            &'a self,
            cx: &mut std::task::Context<'_>,
            interest: tokio::io::Interest,
        ) -> std::task::Poll<io::Result<tokio::io::unix::AsyncFdReadyGuard<'a, Socket>>> {
            if interest.is_readable() {
                self.0.poll_read_ready(cx)
            } else {
                self.0.poll_write_ready(cx)
            }
        }

        /// [`poll_io`](Self::poll_io) for a read or write of `offered` bytes. One that moves less
        /// has drained the socket (or filled its peer's credit), so the next call waits for
        /// readiness instead of first trying and getting `WouldBlock` — a system call saved per
        /// message, as tokio's own sockets do. Readiness that arrived meanwhile is kept (the guard
        /// clears only the event it saw).
        pub(crate) fn poll_rw(
            &self,
            cx: &mut std::task::Context<'_>,
            interest: tokio::io::Interest,
            offered: usize,
            mut op: impl FnMut(&Socket) -> io::Result<usize>,
        ) -> std::task::Poll<io::Result<usize>> {
            loop {
                let mut guard = std::task::ready!(self.poll_ready(cx, interest))?;
                match guard.try_io(|fd| op(fd.get_ref())) {
                    Ok(Ok(n)) if n > 0 && n < offered => {
                        guard.clear_ready();
                        return std::task::Poll::Ready(Ok(n));
                    }
                    Ok(result) => return std::task::Poll::Ready(result),
                    Err(_would_block) => {}
                }
            }
        }
    }

    macro_rules! impl_async_fd {
        ($ty:ty) => {
            impl AsFd for $ty {
                fn as_fd(&self) -> BorrowedFd<'_> {
                    self.io.socket().as_fd()
                }
            }
            impl AsRawFd for $ty {
                fn as_raw_fd(&self) -> RawFd {
                    self.io.socket().as_raw_fd()
                }
            }
        };
    }

    impl_async_fd!(crate::tokio::AsyncStream);
    impl_async_fd!(crate::tokio::AsyncListener);
    impl_async_fd!(crate::tokio::AsyncSeqpacket);
    impl_async_fd!(crate::tokio::AsyncSeqpacketListener);
}

#[cfg(windows)]
mod windows {
    use std::io;
    use std::os::windows::io::{
        AsRawSocket, AsSocket, BorrowedSocket, FromRawSocket, IntoRawSocket, RawSocket,
    };

    use socket2::Socket;

    /// A nonblocking connect that has started and not finished.
    pub(crate) fn connect_in_progress(e: &io::Error) -> bool {
        e.raw_os_error() == Some(windows_sys::Win32::Networking::WinSock::WSAEWOULDBLOCK)
    }

    /// A socket registered with tokio's reactor. AF_HYPERV sockets are IFS handles, which mio's
    /// AFD polling takes like any Winsock socket; tokio's `UdpSocket` is the public door to that
    /// registration, used here for readiness only; the I/O goes through socket2 on the same handle.
    #[derive(Debug)]
    pub(crate) struct AsyncSocket(tokio::net::UdpSocket);

    impl AsyncSocket {
        pub(crate) fn new(socket: Socket) -> io::Result<AsyncSocket> {
            socket.set_nonblocking(true)?;
            AsyncSocket::register(socket)
        }

        /// Registers a socket that is already non-blocking.
        pub(crate) fn register(socket: Socket) -> io::Result<AsyncSocket> {
            // SAFETY: the handle moves from `socket` into the UdpSocket shell, which owns it now.
            let shell = unsafe { std::net::UdpSocket::from_raw_socket(socket.into_raw_socket()) };
            Ok(AsyncSocket(tokio::net::UdpSocket::from_std(shell)?))
        }

        pub(crate) fn socket(&self) -> socket2::SockRef<'_> {
            socket2::SockRef::from(&self.0)
        }

        pub(crate) fn into_socket(self) -> io::Result<Socket> {
            let shell = self.0.into_std()?;
            // SAFETY: the handle moves back out of the shell.
            Ok(unsafe { Socket::from_raw_socket(shell.into_raw_socket()) })
        }

        /// Runs `op` once the socket is ready for `interest`, until it stops saying WouldBlock.
        pub(crate) fn poll_io<R>(
            &self,
            cx: &mut std::task::Context<'_>,
            interest: tokio::io::Interest,
            mut op: impl FnMut(&Socket) -> io::Result<R>,
        ) -> std::task::Poll<io::Result<R>> {
            loop {
                std::task::ready!(if interest.is_readable() {
                    self.0.poll_recv_ready(cx)
                } else {
                    self.0.poll_send_ready(cx)
                })?;
                match self.0.try_io(interest, || op(&self.socket())) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    result => return std::task::Poll::Ready(result),
                }
            }
        }

        /// A read or write of `offered` bytes (tokio's UdpSocket keeps no partial-move hint).
        pub(crate) fn poll_rw(
            &self,
            cx: &mut std::task::Context<'_>,
            interest: tokio::io::Interest,
            _offered: usize,
            op: impl FnMut(&Socket) -> io::Result<usize>,
        ) -> std::task::Poll<io::Result<usize>> {
            self.poll_io(cx, interest, op)
        }
    }

    macro_rules! impl_async_socket {
        ($ty:ty) => {
            impl AsSocket for $ty {
                fn as_socket(&self) -> BorrowedSocket<'_> {
                    self.io.0.as_socket()
                }
            }
            impl AsRawSocket for $ty {
                fn as_raw_socket(&self) -> RawSocket {
                    self.io.0.as_raw_socket()
                }
            }
        };
    }

    impl_async_socket!(crate::tokio::AsyncStream);
    impl_async_socket!(crate::tokio::AsyncListener);
}
