//! Everything the commands print on standard output goes through [`outln!`] and [`out!`]: a write error is
//! an error like any other (one line, exit 1) instead of the panic `println!` makes of it, and
//! a reader that went away (`hvsock list | head -1`) ends the command quietly, as it ends
//! coreutils: [`Closed`], which `main` turns into exit status 141 (128 + SIGPIPE).

use std::fmt;
use std::io::{self, Write};

/// The reader of our standard output has gone.
#[derive(Debug)]
pub struct Closed;

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for Closed {}

/// Writes to standard output, with a newline after when `newline`.
pub fn write(args: fmt::Arguments<'_>, newline: bool) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    let end: &[u8] = if newline { b"\n" } else { b"" };
    match out.write_fmt(args).and_then(|()| out.write_all(end)).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(Closed.into()),
        Err(e) => Err(anyhow::anyhow!("cannot write to standard output: {e}")),
    }
}

/// `println!` that returns the write's failure from the enclosing function (see the module).
macro_rules! outln {
    () => {
        $crate::output::write(format_args!(""), true)?
    };
    ($($arg:tt)*) => {
        $crate::output::write(format_args!($($arg)*), true)?
    };
}
pub(crate) use outln;

/// `print!` that returns the write's failure from the enclosing function.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write(format_args!($($arg)*), false)?
    };
}
pub(crate) use out;
