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

/// Run CMD in a fresh guest, with vsock and the loopback transport (CID 1) loaded; or, with
/// --guest, several guests on a vsock switch with this machine as their host (CID 2).
///
/// A guest sees this machine's files (hostfs) and runs in the current directory with this
/// environment; output and exit status are passed through. Nothing done with vsock leaves the
/// lab. With --guest, guest N (CID 2+N) runs its command through `sh -c`; --host commands run
/// here meanwhile; output lines are prefixed `[guest 3]`, `[host 1]`; the exit status is the
/// first non-zero one. Everyone sees $HVSOCK_LAB_VM<cid>, the guest's hybrid socket
/// (hybrid:$HVSOCK_LAB_VM3:PORT reaches guest 3's PORT; a guest's connection to CID 2 port P
/// arrives at the Unix socket ${HVSOCK_LAB_VM3}_P), and guests see $HVSOCK_LAB_CID.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  hvsock lab run -- hvsock info
  hvsock lab run --timeout 30 -- sh -c 'hvsock server any --count 1 & sleep 0.5; hvsock client lo'
  hvsock lab run -- python3 my_vsock_test.py
  hvsock lab run --guest 'hvsock server any 5000 --count 1' \\
                 --guest 'hvsock client 3 5000 --retries 50'          # guest 4 -> guest 3
  hvsock lab run --guest 'hvsock listen vsock:any:5000 > got' \\
                 --host 'hvsock connect hybrid:$HVSOCK_LAB_VM3:5000 --retries 50 < file'")]
pub struct RunArgs {
    /// Kill the guests after this many seconds (exit status 124)
    #[arg(long, value_name = "SECS", value_parser = parse_secs, allow_negative_numbers = true)]
    pub timeout: Option<Duration>,
    /// A guest on the switch running this shell command (repeatable: CIDs 3, 4, ...)
    #[arg(long, value_name = "CMD")]
    pub guest: Vec<String>,
    /// A shell command on this machine, run while the guests run (repeatable)
    #[arg(long, value_name = "CMD", requires = "guest")]
    pub host: Vec<String>,
    /// The command and its arguments (without --guest)
    #[arg(
        value_name = "CMD",
        required_unless_present = "guest",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
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
    if !run.guest.is_empty() {
        if !run.command.is_empty() {
            anyhow::bail!("give the guests' commands with --guest, not after `--`");
        }
        let scenario = hvsock_lab::Scenario { guests: run.guest, hosts: run.host };
        return Ok(match lab.forward_stdin(false).run_scenario(&scenario) {
            Ok(outcomes) => {
                let mut code = 0;
                for o in &outcomes {
                    match &o.result {
                        Ok(c) => eprintln!("lab: {} exited {c}", o.who),
                        Err(e) => eprintln!("lab: {}: {e}", o.who),
                    }
                    if code == 0 {
                        code = match o.result {
                            Ok(c) => u8::try_from(c).unwrap_or(255),
                            Err(_) => 125,
                        };
                    }
                }
                code
            }
            Err(e) => lab_error(e),
        });
    }
    Ok(match lab.run(&run.command) {
        Ok(code) => u8::try_from(code).unwrap_or(255),
        Err(e) => lab_error(e),
    })
}

#[cfg(target_os = "linux")]
fn lab_error(e: hvsock_lab::LabError) -> u8 {
    eprintln!("hvsock: lab: {e}");
    if matches!(e, hvsock_lab::LabError::TimedOut(_)) {
        124
    } else {
        125
    }
}

#[cfg(not(target_os = "linux"))]
pub fn run(_: Args) -> anyhow::Result<u8> {
    anyhow::bail!("the lab runs on Linux only (it boots a User-Mode Linux guest)")
}
