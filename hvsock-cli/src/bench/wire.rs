//! What a bench client asks its server, in one line before any data:
//! `HVSOCK-BENCH 1 <test> <direction> <count> <size> <seed>`. For `stream`, count is the bytes
//! each way and size the write size; for `rr`, count is the messages and size their length;
//! `conn` takes none. After an upload the server answers `OK` or `ERR <why>` on a line of its
//! own, after any bytes it sent.

use std::io::{self, Read};

use hvsock::Printable;

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

/// Reads one line (without its newline) byte by byte, so no data after it is taken.
pub fn read_line(r: &mut impl Read) -> io::Result<String> {
    let mut line = Vec::new();
    let mut b = [0u8];
    loop {
        if r.read(&mut b)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the peer closed before its line"));
        }
        if b[0] == b'\n' {
            return Ok(String::from_utf8_lossy(&line).into_owned());
        }
        line.push(b[0]);
        if line.len() > MAX_LINE {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
    }
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
}
