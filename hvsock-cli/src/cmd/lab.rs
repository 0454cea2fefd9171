//! `hvsock lab`: run commands in a throwaway Linux guest with real vsock.

use std::ffi::OsString;
use std::time::Duration;

use crate::args::parse_secs;

/// Run commands in a throwaway Linux guest with real AF_VSOCK (User-Mode Linux).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: LabCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum LabCommand {
    Run(RunArgs),
}

/// Run CMD in a fresh guest, with vsock and the loopback transport (CID 1) loaded.
///
/// The guest sees this machine's files (hostfs) and runs CMD in the current directory with
/// this environment; CMD's output and exit status are passed through. Nothing it does with
/// vsock leaves the guest.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  hvsock lab run -- hvsock info
  hvsock lab run --timeout 30 -- sh -c 'hvsock server any --count 1 & sleep 0.5; hvsock client lo'
  hvsock lab run -- python3 my_vsock_test.py")]
pub struct RunArgs {
    /// Kill the guest after this many seconds (exit status 124)
    #[arg(long, value_name = "SECS", value_parser = parse_secs, allow_negative_numbers = true)]
    pub timeout: Option<Duration>,
    /// The command and its arguments
    #[arg(value_name = "CMD", required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<OsString>,
}

#[cfg(target_os = "linux")]
pub fn run(args: Args) -> anyhow::Result<u8> {
    let LabCommand::Run(run) = args.command;
    let exe = std::env::current_exe()?;
    let mut lab = hvsock_lab::Lab::new(exe).forward_stdin(true);
    if let Some(t) = run.timeout {
        lab = lab.timeout(t);
    }
    match lab.run(&run.command) {
        Ok(code) => Ok(u8::try_from(code).unwrap_or(255)),
        Err(e) => {
            eprintln!("hvsock: lab: {e}");
            Ok(if matches!(e, hvsock_lab::LabError::TimedOut(_)) { 124 } else { 125 })
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn run(_: Args) -> anyhow::Result<u8> {
    anyhow::bail!("the lab runs on Linux only (it boots a User-Mode Linux guest)")
}
