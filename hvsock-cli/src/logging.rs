//! Log lines on stderr for the long-running commands (`relay`, `lab run`), by `-v` count.

use std::io::IsTerminal;

/// Warnings only by default; `-v` adds info lines, `-vv` debug lines.
pub fn init(verbose: u8) {
    let level = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
