//! One module per command.

pub mod addr;
pub mod bench;
pub mod client;
pub mod completions;
pub mod connect;
pub mod guid;
pub mod info;
pub mod lab;
pub mod list;
pub mod listen;
pub mod man;
pub mod matrix;
pub mod register;
pub mod relay;
pub mod server;
pub mod services;
pub mod unregister;
pub mod vms;

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
        Command::Info(a) => info::run(a),
        Command::Connect(a) => connect::run(a),
        Command::Listen(a) => listen::run(a),
        Command::Relay(a) => relay::run(a),
        Command::List(a) => list::run(a),
        Command::Matrix(a) => matrix::run(a),
        Command::Services(a) => services::run(a),
        Command::Unregister(a) => unregister::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Vms(a) => vms::run(a),
        Command::Completions(a) => completions::run(a),
        Command::Man(a) => man::run(a),
    }
}
