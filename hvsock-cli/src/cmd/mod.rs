//! The command line's grammar, and one module per command.

pub mod addr;
pub mod bench;
pub mod client;
pub mod completions;
pub mod connect;
pub mod forward;
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
  hvsock connect vsock:3:5000 < in              # stdin to guest 3's port 5000, its answer to stdout
  hvsock listen vsock:any:5000 --exec cat -k    # serve every connection with a command
  hvsock relay vsock:any:8000 tcp:127.0.0.1:80  # guests reach a host web server
  hvsock forward vsock:host:5000 -L 8080:127.0.0.1:80   # many ports over one, like ssh -L
  hvsock lab run -- hvsock client lo            # vsock code in a throwaway Linux guest
  hvsock vms                                    # the VMs here: vsock:NAME:PORT reaches one

VM names: any, lo, parent, children, broadcast, a CID (Linux), a VM ID (Windows), a VM's name.
Services: a port or a service GUID. Each command's --help and man page say the rest.";

/// Host<->VM sockets with one set of names: Hyper-V sockets (Windows), vsock (Linux).
#[derive(Parser, Debug)]
#[command(name = "hvsock", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    #[command(about = "The article's sample server: answer each text with `Hello: <text>`")]
    Server(server::Args),
    #[command(about = "The article's sample client: send a text, print the answer")]
    Client(client::Args),
    #[command(about = "Register a Hyper-V service GUID (Windows, as administrator)")]
    Register(register::Args),
    #[command(about = "Remove a Hyper-V service's registration (Windows, as administrator)")]
    Unregister(unregister::Args),
    #[command(about = "List the registered Hyper-V services (Windows)")]
    Services(services::Args),
    #[command(about = "Show what this machine offers for VM sockets")]
    Info(info::Args),
    #[command(about = "Join stdin/stdout to a connection, like `ncat --vsock`")]
    Connect(connect::Args),
    #[command(about = "Accept a connection on stdin/stdout or a command, like `ncat -l`")]
    Listen(listen::Args),
    #[command(about = "Forward every connection from one endpoint to another")]
    Relay(relay::Args),
    #[command(about = "Forward many ports over one connection, like ssh -L/-R")]
    Forward(forward::Args),
    #[command(about = "List vsock sockets and their processes (Linux)")]
    List(list::Args),
    #[command(about = "Run the article's experiment: which bind accepts from where")]
    Matrix(matrix::Args),
    #[command(about = "Convert a vsock port to its Hyper-V service GUID, or back")]
    Guid(guid::Args),
    #[command(about = "Show what an endpoint means on Linux and on Windows")]
    Addr(addr::Args),
    #[command(about = "Run commands in throwaway Linux guests with real vsock")]
    Lab(lab::Args),
    #[command(about = "Measure throughput, latency or connection rate, every byte checked")]
    Bench(bench::Args),
    #[command(about = "List the VMs reachable from here, by name")]
    Vms(vms::Args),
    #[command(about = "Print a shell completion script")]
    Completions(completions::Args),
    #[command(about = "Write the man pages")]
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
            Command::Forward(a) => vec![("ENDPOINT", &mut a.endpoint)],
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
        Command::Forward(a) => forward::run(a),
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
