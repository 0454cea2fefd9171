//! The command line's grammar, and one module per command.

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

use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  hvsock server any --count 1          # answer one client, from any VM or this one
  hvsock client lo                     # prints: Hello: World!
  hvsock guid 19000                    # 00004a38-facb-11e6-bd58-64006a7986d3
  hvsock addr hv:parent:19000          # what an endpoint means on Linux and on Windows
  hvsock info                          # local CID, transports, hypervisor / VM ID, Winsock entry
  hvsock listen vsock:any:5000 > out   # netcat-style: one connection to stdout
  hvsock connect vsock:3:5000 < in     # stdin to a guest, its answer to stdout
  hvsock relay vsock:any:8000 tcp:127.0.0.1:80   # vsock-proxy-style forwarding
  hvsock lab run -- hvsock client lo   # run vsock code in a throwaway Linux guest
  hvsock vms                           # the VMs here, by name: vsock:NAME:PORT reaches one

The spelling of the Hyper-V socket wildcards article's C# sample works too: `hvsock /server any`, `hvsock /client parent`,
`hvsock /register`; no arguments at all runs `hvsock server loopback`.

VM names: any|wildcard|zero, lo|loopback, parent|host, child|children, broadcast,
a VM ID GUID (Windows) or a CID number (Linux), or a VM's name as `hvsock vms` lists it.
Services: a port or a service GUID.";

/// Host<->VM sockets with one set of names: Hyper-V sockets (Windows), vsock (Linux).
#[derive(Parser, Debug)]
#[command(name = "hvsock", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Server(server::Args),
    Client(client::Args),
    Register(register::Args),
    Unregister(unregister::Args),
    Services(services::Args),
    Info(info::Args),
    Connect(connect::Args),
    Listen(listen::Args),
    Relay(relay::Args),
    List(list::Args),
    Matrix(matrix::Args),
    Guid(guid::Args),
    Addr(addr::Args),
    Lab(lab::Args),
    Bench(bench::Args),
    Vms(vms::Args),
    Completions(completions::Args),
    Man(man::Args),
}

impl Command {
    /// The endpoint arguments, by value name: their VM names are looked up once all the
    /// arguments are parsed.
    pub fn endpoint_args(&mut self) -> Vec<(&'static str, &mut crate::vms::EndpointArg)> {
        match self {
            Command::Connect(a) => vec![("ENDPOINT", &mut a.endpoint)],
            Command::Listen(a) => vec![("ENDPOINT", &mut a.endpoint)],
            Command::Bench(a) => vec![("ENDPOINT", &mut a.endpoint)],
            Command::Addr(a) => vec![("ENDPOINT", &mut a.endpoint)],
            Command::Relay(a) => vec![("FROM", &mut a.from), ("TO", &mut a.to)],
            _ => Vec::new(),
        }
    }
}

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
