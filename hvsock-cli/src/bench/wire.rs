//! What a bench client asks its server, in one line before any data:
//! `HVSOCK-BENCH 1 <test> <direction> <count> <size> <seed>`. For `stream`, count is the bytes
//! each way and size the write size; for `rr`, count is the messages and size their length;
//! `conn` takes none. After an upload the server answers `OK` or `ERR <why>` on a line of its
//! own, after any bytes it sent.

use std::io::{self, Read};

use hvsock::line::{Fed, Line, LineError};
use hvsock::Printable;
use hvsock_relay::blocking::Socket;

const MAGIC: &str = "HVSOCK-BENCH 1";
/// The longest header a server reads.
const MAX_LINE: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Test {
    Stream(Direction),
    Rr,
    Conn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Client to server.
    Up,
    /// Server to client.
    Down,
    /// Both at once.
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub test: Test,
    pub count: u64,
    pub size: usize,
    pub seed: u64,
}

/// The largest write or message a server accepts (what a client may ask it to allocate).
pub const MAX_SIZE: usize = 16 << 20;

impl Header {
    pub fn line(&self) -> String {
        let (test, dir) = match self.test {
            Test::Stream(Direction::Up) => ("stream", "up"),
            Test::Stream(Direction::Down) => ("stream", "down"),
            Test::Stream(Direction::Both) => ("stream", "both"),
            Test::Rr => ("rr", "-"),
            Test::Conn => ("conn", "-"),
        };
        format!("{MAGIC} {test} {dir} {} {} {}\n", self.count, self.size, self.seed)
    }

    pub fn parse(line: &str) -> Result<Header, String> {
        let bad = || format!("not a bench header: `{}`", Printable::new(line));
        let rest = line.strip_prefix(MAGIC).ok_or_else(bad)?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let [test, dir, count, size, seed] = f[..] else { return Err(bad()) };
        let test = match (test, dir) {
            ("stream", "up") => Test::Stream(Direction::Up),
            ("stream", "down") => Test::Stream(Direction::Down),
            ("stream", "both") => Test::Stream(Direction::Both),
            ("rr", _) => Test::Rr,
            ("conn", _) => Test::Conn,
            _ => return Err(bad()),
        };
        let (Ok(count), Ok(size), Ok(seed)) = (count.parse(), size.parse::<usize>(), seed.parse()) else {
            return Err(bad());
        };
        if test != Test::Conn && !(1..=MAX_SIZE).contains(&size) {
            return Err(format!("size {size} is not 1..={MAX_SIZE}"));
        }
        Ok(Header { test, count, size, seed })
    }
}

/// Reads one line (without its newline) and nothing after it: what has arrived is peeked at,
/// and only the line is taken — two system calls for a whole header instead of one per byte.
pub fn read_line(s: &mut Socket) -> io::Result<String> {
    if s.carries_messages() {
        // A line is a message of its own.
        let mut line = vec![0u8; MAX_LINE + 1];
        let n = s
            .read(&mut line)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("a header: {e}")))?;
        line.truncate(n);
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the peer closed before its line"));
        }
        if line.pop() != Some(b'\n') {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "a message that is not one line"));
        }
        return Ok(String::from_utf8_lossy(&line).into_owned());
    }
    let mut line = Line::new(MAX_LINE);
    let mut peeked = [0u8; MAX_LINE + 1];
    while !line.is_done() {
        let n = s.peek(&mut peeked)?;
        if n == 0 {
            return Err(LineError::Closed.into());
        }
        let taken = match line.feed(&peeked[..n])? {
            Fed::More => n,
            Fed::Done(taken) => taken,
        };
        s.read_exact(&mut peeked[..taken])?;
    }
    Ok(line.text())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_bad_ones_are_refused() {
        for test in [Test::Stream(Direction::Up), Test::Stream(Direction::Both), Test::Rr, Test::Conn] {
            let h = Header { test, count: 1 << 30, size: 65536, seed: 42 };
            assert_eq!(Header::parse(h.line().trim_end()), Ok(h));
        }
        for bad in [
            "",
            "GET / HTTP/1.0",
            "HVSOCK-BENCH 1 stream up 1",
            "HVSOCK-BENCH 1 stream sideways 1 1 1",
            "HVSOCK-BENCH 1 stream up 10 0 1",
            "HVSOCK-BENCH 1 rr - 10 99999999999 1",
            "HVSOCK-BENCH 1 stream up -1 1 1",
        ] {
            assert!(Header::parse(bad).is_err(), "{bad}");
        }
    }

    /// The header is taken whole, however it arrives, and not one byte of the data after it.
    #[cfg(unix)]
    #[test]
    fn a_line_is_read_without_the_data_after_it() {
        use std::io::Write;
        use std::os::unix::net::UnixStream;
        let (mut tx, rx) = UnixStream::pair().unwrap();
        let mut rx = Socket::Unix(rx);
        tx.write_all(b"HVSOCK-BENCH 1 conn - 0 0 0\ndata").unwrap();
        assert_eq!(read_line(&mut rx).unwrap(), "HVSOCK-BENCH 1 conn - 0 0 0");
        let mut rest = [0u8; 4];
        rx.read_exact(&mut rest).unwrap();
        assert_eq!(&rest, b"data");

        // In pieces: the first has no newline yet.
        let writer = std::thread::spawn(move || {
            tx.write_all(b"OK ").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(50));
            tx.write_all(b"then\nmore").unwrap();
            tx.write_all(&[b'x'; MAX_LINE + 1]).unwrap();
            tx
        });
        assert_eq!(read_line(&mut rx).unwrap(), "OK then");
        let mut more = [0u8; 4];
        rx.read_exact(&mut more).unwrap();
        assert_eq!(&more, b"more");
        let tx = writer.join().unwrap();
        assert_eq!(read_line(&mut rx).unwrap_err().kind(), io::ErrorKind::InvalidData, "too long");
        drop(tx);
        let (tx, rx) = UnixStream::pair().unwrap();
        drop(tx);
        assert_eq!(read_line(&mut Socket::Unix(rx)).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
