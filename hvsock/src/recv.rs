//! Receiving into an ordinary byte buffer with socket2, whose receives take
//! `&mut [MaybeUninit<u8>]` so as to accept buffers not yet written: the one place a `&mut [u8]`
//! is viewed that way. The view never leaves this file, since safe code given it could write
//! uninitialised bytes into the caller's buffer.

use std::io;
use std::mem::MaybeUninit;

/// `recv(2)` with `flags` into `buf`, returning the length received (with `MSG_TRUNC` on a
/// message socket, the message's whole length, which may exceed `buf`'s).
///
/// ```no_run
/// # let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
/// let mut buf = [0u8; 4096];
/// let n = hvsock::recv::recv_with_flags(&socket, &mut buf, 0)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn recv_with_flags(socket: &socket2::Socket, buf: &mut [u8], flags: i32) -> io::Result<usize> {
    socket.recv_with_flags(uninit(buf), flags)
}

/// Reads what has arrived without taking it (`MSG_PEEK`).
pub fn peek(socket: &socket2::Socket, buf: &mut [u8]) -> io::Result<usize> {
    socket.peek(uninit(buf))
}

fn uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: u8 and MaybeUninit<u8> have one layout, and the view goes only to socket2's
    // receives, which write nothing but received (initialised) bytes into it.
    unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) }
}
