//! Header lines: the one-line handshakes read before a stream is handed over — hybrid vsock's
//! `CONNECT <port>` and `OK <port>`, a relay's `CONNECT HOST:PORT`, a benchmark's header.
//!
//! Two rules make such a reader safe, and they live here once: it takes nothing after the
//! newline (those bytes are the stream's), and it refuses a line longer than its bound (a peer
//! that never sends a newline must not make us buffer for ever). How the bytes arrive — one at a
//! time, peeked at, or read ahead by a poll loop that keeps the rest — is the caller's.
//!
//! ```
//! use hvsock::line::{Fed, Line};
//! let mut line = Line::new(64);
//! assert_eq!(line.feed(b"CONNECT 52").unwrap(), Fed::More);
//! // The newline ends it; what follows is left to the caller (the stream's first bytes).
//! assert_eq!(line.feed(b"\nhello").unwrap(), Fed::Done(1));
//! assert_eq!(line.text(), "CONNECT 52");
//! ```

use std::io::{self, Read};

/// A line being read: the bytes before its newline, at most `max` of them.
#[derive(Debug, Clone)]
pub struct Line {
    bytes: Vec<u8>,
    max: usize,
    done: bool,
}

/// What [`Line::feed`] made of the bytes it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// No newline yet: every byte was taken.
    More,
    /// The line is whole; this many bytes of the input were taken, its newline included.
    Done(usize),
}

/// Why no line was read.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// The peer ended its stream before the newline.
    #[error("the peer closed before the end of its line")]
    Closed,
    /// More than the bound came without a newline; the bytes so far are kept for the message.
    #[error("a line longer than {max} bytes")]
    TooLong {
        /// The bound.
        max: usize,
        /// What had come.
        so_far: Vec<u8>,
    },
    /// Reading failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<LineError> for io::Error {
    fn from(e: LineError) -> io::Error {
        match e {
            LineError::Io(e) => e,
            LineError::Closed => io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string()),
            LineError::TooLong { .. } => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
        }
    }
}

impl Line {
    /// An empty line of at most `max` bytes before its newline.
    pub fn new(max: usize) -> Line {
        Line { bytes: Vec::new(), max, done: false }
    }

    /// Takes `input` up to and including its first newline. After [`Fed::Done`] the line is
    /// whole and further input is not taken (`Done(0)`).
    pub fn feed(&mut self, input: &[u8]) -> Result<Fed, LineError> {
        if self.done {
            return Ok(Fed::Done(0));
        }
        let newline = input.iter().position(|&b| b == b'\n');
        let body = &input[..newline.unwrap_or(input.len())];
        if self.bytes.len() + body.len() > self.max {
            // What had come, cut one byte past the bound (the bytes kept never exceed it).
            let room = self.max + 1 - self.bytes.len();
            let mut so_far = std::mem::take(&mut self.bytes);
            so_far.extend_from_slice(&body[..room.min(body.len())]);
            return Err(LineError::TooLong { max: self.max, so_far });
        }
        self.bytes.extend_from_slice(body);
        Ok(match newline {
            Some(i) => {
                self.done = true;
                Fed::Done(i + 1)
            }
            None => Fed::More,
        })
    }

    /// Whether the newline has come.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The line without its newline (and without a `\r` before it: some peers end lines so).
    pub fn bytes(&self) -> &[u8] {
        self.bytes.strip_suffix(b"\r").unwrap_or(&self.bytes)
    }

    /// [`bytes`](Line::bytes) as text, anything that is not UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.bytes()).into_owned()
    }

    /// Reads the rest of the line from `r` a byte at a time, so nothing after the newline is
    /// taken (for a stream that cannot be peeked at).
    pub fn read_from(&mut self, mut r: impl Read) -> Result<(), LineError> {
        let mut b = [0u8; 1];
        while !self.done {
            if r.read(&mut b)? == 0 {
                return Err(LineError::Closed);
            }
            self.feed(&b)?;
        }
        Ok(())
    }

    /// [`read_from`](Line::read_from) for tokio.
    #[cfg(feature = "tokio")]
    pub async fn read_from_async(
        &mut self,
        mut r: impl ::tokio::io::AsyncRead + Unpin,
    ) -> Result<(), LineError> {
        use ::tokio::io::AsyncReadExt;
        let mut b = [0u8; 1];
        while !self.done {
            if r.read(&mut b).await? == 0 {
                return Err(LineError::Closed);
            }
            self.feed(&b)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_taken_up_to_its_newline_and_no_further() {
        for (chunks, taken_last, text) in [
            (&[&b"OK 1\n"[..]][..], 5, "OK 1"),
            (&[&b"OK"[..], b" 1\nrest"][..], 3, "OK 1"),
            (&[&b"OK 1\r\n"[..]][..], 6, "OK 1"),
            (&[&b"\n"[..]][..], 1, ""),
            (&[&b""[..], b"x", b"\n\n"][..], 1, "x"),
        ] {
            let mut line = Line::new(8);
            let (last, rest) = chunks.split_last().unwrap();
            for c in rest {
                assert_eq!(line.feed(c).unwrap(), Fed::More, "{chunks:?}");
            }
            assert_eq!(line.feed(last).unwrap(), Fed::Done(taken_last), "{chunks:?}");
            assert_eq!(line.text(), text);
            assert_eq!(line.feed(b"more\n").unwrap(), Fed::Done(0), "a whole line takes no more");
        }
    }

    #[test]
    fn a_line_past_its_bound_is_refused_whether_it_comes_at_once_or_in_pieces() {
        // 8 bytes before the newline fit a bound of 8; 9 do not, however they arrive.
        assert_eq!(Line::new(8).feed(b"12345678\n").unwrap(), Fed::Done(9));
        let too_long = |r: Result<Fed, LineError>| matches!(r, Err(LineError::TooLong { max: 8, .. }));
        assert!(too_long(Line::new(8).feed(b"123456789\n")));
        assert!(too_long(Line::new(8).feed(b"123456789")), "no newline needed to know");
        let mut line = Line::new(8);
        assert_eq!(line.feed(b"1234").unwrap(), Fed::More);
        assert_eq!(line.feed(b"5678").unwrap(), Fed::More);
        match line.feed(b"9") {
            Err(LineError::TooLong { so_far, .. }) => assert_eq!(so_far, b"123456789"),
            other => panic!("{other:?}"),
        }
        let mut endless = io::repeat(b'x');
        assert!(matches!(Line::new(64).read_from(&mut endless), Err(LineError::TooLong { .. })));
    }

    #[test]
    fn reading_takes_nothing_after_the_newline_and_an_early_end_is_not_a_line() {
        let mut input = &b"OK 1024\nthe stream"[..];
        let mut line = Line::new(64);
        line.read_from(&mut input).unwrap();
        assert_eq!((line.text().as_str(), input), ("OK 1024", &b"the stream"[..]));
        let mut short = &b"OK 10"[..];
        let e = Line::new(64).read_from(&mut short).unwrap_err();
        assert!(matches!(e, LineError::Closed));
        assert_eq!(io::Error::from(e).kind(), io::ErrorKind::UnexpectedEof);
    }
}
