//! `hvsock lab`: run commands in throwaway Linux guests with real vsock.

use std::ffi::OsString;
use std::time::Duration;

use crate::values::parse_secs;

/// Run commands in throwaway Linux guests with real AF_VSOCK (User-Mode Linux).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: LabCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum LabCommand {
    Run(Box<RunArgs>),
    Wait(WaitArgs),
}

/// `lab run`: its flags, and every participant in command-line order.
#[derive(Debug)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))] // read by the Linux lab only
pub struct RunArgs {
    pub flags: RunFlags,
    /// Every participant, in command-line order: (role, service, command).
    pub participants: Vec<(hvsock_lab::Role, bool, String)>,
}

/// Run CMD in a fresh guest, with vsock and the loopback transport (CID 1) loaded; or, with
/// --guest and friends, several VMs on a vsock switch.
///
/// A guest sees this machine's files (hostfs) and runs in the current directory with this
/// environment; output and exit status are passed through. Nothing done with vsock leaves the
/// lab. After `--`, CMD runs as given (no shell); every --guest/--vm-host/--host command runs
/// through `/bin/sh -c`.
///
/// With --guest, guests get CIDs 3, 4, ... in command-line order and this machine is their
/// host the way Firecracker and Cloud Hypervisor hosts are (hybrid vsock):
/// hybrid:$HVSOCK_LAB_VM3:PORT reaches guest 3's PORT, and a guest's connection to CID 2 port
/// P arrives at the Unix socket ${HVSOCK_LAB_VM3}_P. With --vm-host, the host is a VM the way
/// KVM/vhost-vsock hosts are: its own CID is 2, with real AF_VSOCK (bind 2 or any, connect to
/// guests' CIDs), and guests reaching `parent` reach it. --host commands run on this machine.
///
/// The *-service forms start first and are stopped once every other participant has
/// finished (that stop is not a failure). `hvsock lab wait CID:PORT` in any participant waits
/// until that port listens in that guest, without connecting to it. Output lines are prefixed
/// `[guest 3]`, `[vm-host]`, `[host 1]`; each participant's end is reported on stderr; the exit
/// status is that of the participant that failed first (124 if the timeout hit first, 125 if
/// a guest died, 128+N when a signal N stopped the lab). The lab's files are removed after
/// the run, or kept and named when a guest died or the run timed out.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  hvsock lab run -- hvsock info
  hvsock lab run -- sh -c 'hvsock server any --count 1 & hvsock lab wait 19000; hvsock client lo'
  hvsock lab run -- python3 my_vsock_test.py
  hvsock lab run --guest-service 'hvsock server any 5000' \\
                 --guest 'hvsock lab wait 3:5000 && hvsock client 3 5000'   # guest 4 -> guest 3
  hvsock lab run --guest 'hvsock listen vsock:any:5000 > got' \\
                 --host 'hvsock lab wait 3:5000 && hvsock connect hybrid:$HVSOCK_LAB_VM3:5000 < file'
  hvsock lab run --vm-host-service 'hvsock server any 5000' \\
                 --guest 'hvsock lab wait 2:5000 && hvsock client parent 5000'")]
pub struct RunFlags {
    /// Kill everything after this many seconds (exit status 124)
    #[arg(long, value_name = "SECS", value_parser = parse_secs, allow_negative_numbers = true)]
    pub timeout: Option<Duration>,
    /// A guest on the switch running this shell command (repeatable: CIDs 3, 4, ...)
    #[arg(long, value_name = "CMD")]
    pub guest: Vec<String>,
    /// A guest that serves the others: started first, stopped at the end (repeatable)
    #[arg(long, value_name = "CMD")]
    pub guest_service: Vec<String>,
    /// The host as a KVM host is: a VM with CID 2 and real AF_VSOCK, running this command
    #[arg(long, value_name = "CMD", conflicts_with = "vm_host_service")]
    pub vm_host: Option<String>,
    /// The same host VM as a service: started first, stopped at the end
    #[arg(long, value_name = "CMD")]
    pub vm_host_service: Option<String>,
    /// Give the single guest (`-- CMD`) its vsock device from a third-party vhost-user backend
    /// listening at PATH (e.g. vhost-device-vsock --socket PATH), through a proxy that fixes
    /// UML 6.1's control-message quirks
    #[arg(long, value_name = "PATH", conflicts_with_all = ["guest", "guest_service", "vm_host", "vm_host_service"])]
    pub vhost_user: Option<std::path::PathBuf>,
    /// Pass half-closes on hybrid sockets on as a Linux peer would: this machine's to the guest
    /// as SHUTDOWN SEND alone, a guest's to this machine as end-of-file (by default, as
    /// Firecracker and vhost-device-vsock do, the first becomes RCV|SEND and the second is dropped)
    #[arg(long)]
    pub keep_half_close: bool,
    /// The guests' hybrid sockets take SOCK_SEQPACKET connections (CONNECT line and OK answer
    /// as messages), which reach SEQPACKET listeners in the guest, instead of SOCK_STREAM ones
    /// (Firecracker's proposed vsock_type); guests' connections to the host keep their type
    #[arg(long)]
    pub hybrid_seqpacket: bool,
    /// Say why the vsock switch reset or held back a connection (-v; -vv for every line)
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// A shell command on this machine, run while the VMs run (repeatable)
    #[arg(long, value_name = "CMD")]
    pub host: Vec<String>,
    /// A command on this machine that serves the others: started first, stopped at the end
    #[arg(long, value_name = "CMD")]
    pub host_service: Vec<String>,
    /// The command and its arguments (a single guest, without the flags above)
    #[arg(
        value_name = "CMD",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required_unless_present_any = ["guest", "guest_service", "vm_host", "vm_host_service"]
    )]
    pub command: Vec<OsString>,
}

/// The participant flags: (argument id, role, service).
const PARTICIPANTS: [(&str, hvsock_lab::Role, bool); 6] = [
    ("guest", hvsock_lab::Role::Guest, false),
    ("guest_service", hvsock_lab::Role::Guest, true),
    ("vm_host", hvsock_lab::Role::VmHost, false),
    ("vm_host_service", hvsock_lab::Role::VmHost, true),
    ("host", hvsock_lab::Role::Host, false),
    ("host_service", hvsock_lab::Role::Host, true),
];

// Guests take their CIDs in command-line order across --guest and --guest-service, which
// derive alone cannot tell: the order comes from the matches' indices.
impl clap::FromArgMatches for RunArgs {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let flags = RunFlags::from_arg_matches(m)?;
        let mut found = Vec::new();
        for (id, role, service) in PARTICIPANTS {
            if let (Some(at), Some(values)) = (m.indices_of(id), m.get_many::<String>(id)) {
                found.extend(at.zip(values).map(|(i, v)| (i, role, service, v.clone())));
            }
        }
        found.sort_by_key(|f| f.0);
        let participants = found.into_iter().map(|(_, role, service, cmd)| (role, service, cmd)).collect();
        Ok(RunArgs { flags, participants })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for RunArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        RunFlags::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        RunFlags::augment_args_for_update(cmd)
    }
}

/// Wait until vsock ports listen in lab guests, without connecting to them.
///
/// PORT (or 1:PORT, or the guest's own CID) looks at the guest this runs in, through
/// vsock_diag. CID:PORT looks at guest CID of the same `lab run --guest …` scenario (from
/// another guest, the VM host or a host command), through the files its init keeps. Exit 0
/// once every port listens; 1 with one line at the timeout, or when the guest ended first.
#[derive(clap::Args, Debug)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))] // read by the Linux lab only
#[command(after_help = "\
Examples:
  hvsock lab wait 19000                  # in a guest: its own server is up
  hvsock lab wait 3:5000 4:5000          # in a scenario: guests 3 and 4 are listening")]
pub struct WaitArgs {
    /// Give up after this many seconds
    #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "60")]
    pub timeout: Duration,
    /// PORT or CID:PORT
    #[arg(value_name = "[CID:]PORT", required = true, value_parser = parse_target)]
    pub targets: Vec<TargetArg>,
}

#[cfg(target_os = "linux")]
pub type TargetArg = hvsock_lab::Target;
#[cfg(not(target_os = "linux"))]
pub type TargetArg = String;

#[cfg(target_os = "linux")]
fn parse_target(s: &str) -> Result<TargetArg, String> {
    s.parse()
}

#[cfg(not(target_os = "linux"))]
fn parse_target(s: &str) -> Result<TargetArg, String> {
    Ok(s.to_string())
}

#[cfg(target_os = "linux")]
pub fn run(args: Args) -> anyhow::Result<u8> {
    let run = match args.command {
        LabCommand::Run(run) => *run,
        LabCommand::Wait(wait) => {
            for target in wait.targets {
                hvsock_lab::wait_listening(target, wait.timeout)?;
            }
            return Ok(0);
        }
    };
    // The switch's reasons are debug lines: one -v shows them.
    crate::logging::init(run.flags.verbose.saturating_add(1));
    let exe = std::env::current_exe()?;
    let mut lab = hvsock_lab::Lab::new(exe).forward_stdin(true);
    if let Some(t) = run.flags.timeout {
        lab = lab.timeout(t);
    }
    hvsock_lab::stop_on_signals();
    if let Some(backend) = &run.flags.vhost_user {
        lab = lab.vhost_user_backend(backend);
    }
    if run.participants.is_empty() {
        return Ok(match lab.run(&run.flags.command) {
            Ok(code) => exit_code(code),
            Err(e) => lab_error(e),
        });
    }
    if !run.flags.command.is_empty() {
        anyhow::bail!("give the guests' commands with --guest, not after `--`");
    }
    lab = lab.keep_half_close(run.flags.keep_half_close).hybrid_seqpacket(run.flags.hybrid_seqpacket);
    let mut scenario = hvsock_lab::Scenario::new();
    for (role, service, cmd) in run.participants {
        scenario = scenario.with(role, cmd, service);
    }
    Ok(match lab.forward_stdin(false).run_scenario(&scenario) {
        Ok(report) => {
            for o in &report.outcomes {
                eprintln!("lab: {} {}", o.who, o.ending);
            }
            if let Some(line) = report.summary() {
                eprintln!("hvsock: lab: {line}");
            }
            exit_code(report.status())
        }
        Err(e) => lab_error(e),
    })
}

#[cfg(target_os = "linux")]
fn exit_code(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(255)
}

#[cfg(target_os = "linux")]
fn lab_error(e: hvsock_lab::LabError) -> u8 {
    eprintln!("hvsock: lab: {e}");
    exit_code(e.exit_code())
}

#[cfg(not(target_os = "linux"))]
pub fn run(_: Args) -> anyhow::Result<u8> {
    anyhow::bail!("the lab runs on Linux only (it boots User-Mode Linux guests)")
}
