//! One module per command.

pub mod addr;
pub mod client;
pub mod guid;
pub mod lab;
pub mod register;
pub mod server;

use crate::args::{Cli, Command};

/// Runs the command; `Ok` carries the exit code.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Server(a) => server::run(a),
        Command::Client(a) => client::run(a),
        Command::Register(a) => register::run(a),
        Command::Guid(a) => guid::run(a),
        Command::Addr(a) => addr::run(a),
        Command::Lab(a) => lab::run(a),
    }
}
