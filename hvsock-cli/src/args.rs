//! The command line's grammar, and the `/server` spelling of the C# sample it grew from.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::cmd;

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
    Server(cmd::server::Args),
    Client(cmd::client::Args),
    Register(cmd::register::Args),
    Unregister(cmd::unregister::Args),
    Services(cmd::services::Args),
    Info(cmd::info::Args),
    Connect(cmd::connect::Args),
    Listen(cmd::listen::Args),
    Relay(cmd::relay::Args),
    List(cmd::list::Args),
    Matrix(cmd::matrix::Args),
    Guid(cmd::guid::Args),
    Addr(cmd::addr::Args),
    Lab(cmd::lab::Args),
    Bench(cmd::bench::Args),
    Vms(cmd::vms::Args),
    Completions(cmd::completions::Args),
    Man(cmd::man::Args),
}

/// Parses the command line; on a usage error prints one line and returns the exit code.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, ExitCode> {
    Cli::try_parse_from(sample_spelling(args.into_iter().collect())).map_err(|e| {
        use clap::error::ErrorKind::*;
        if matches!(e.kind(), DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand) {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        eprintln!("hvsock: {} (see `hvsock --help`)", message(&e));
        ExitCode::from(2)
    })
}

/// One line for a usage error. A value our parser refused is said once, by our parser's
/// message (clap's would echo the raw value first); everything shown is escaped and cut.
fn message(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => Some(arg.clone()),
        _ => None,
    };
    let line = match (e.kind(), arg, std::error::Error::source(e)) {
        (ErrorKind::ValueValidation, Some(arg), Some(why)) => format!("{arg}: {why}"),
        _ => one_line(&e.render().to_string()),
    };
    hvsock::Printable::new(&line).limit(400).to_string()
}

/// clap's message without its usage block, on one line.
fn one_line(rendered: &str) -> String {
    rendered
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches("error: ")
        .to_string()
}

/// The article's sample program's `/server`, `/client`, `/register`, and no arguments meaning a loopback
/// server.
fn sample_spelling(mut args: Vec<OsString>) -> Vec<OsString> {
    if args.len() == 1 {
        args.extend(["server".into(), "loopback".into()]);
    } else if let Some(cmd) = args[1].to_str().and_then(|a| a.strip_prefix('/')) {
        if ["server", "client", "register"].contains(&cmd) {
            args[1] = cmd.into();
        }
    }
    args
}

/// The longest time every platform can honour: Windows takes socket timeouts as a u32 of
/// milliseconds (about 49.7 days).
pub const MAX_SECS: f64 = u32::MAX as f64 / 1000.0;
/// The shortest: one millisecond, the unit of Windows timeouts.
pub const MIN_SECS: f64 = 0.001;

/// Seconds, fractions allowed: `5`, `0.5`; from 0.001 to about 49 days.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(secs) if (MIN_SECS..=MAX_SECS).contains(&secs) => Ok(Duration::from_secs_f64(secs)),
        _ => Err(format!(
            "`{}` is not a number of seconds from {MIN_SECS} to {MAX_SECS} (about 49 days)",
            hvsock::Printable::new(s)
        )),
    }
}

/// A byte count: `4096`, `64K`, `1M`, `1G` (binary units), from 1 to 1 TiB.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let shift = match unit.to_ascii_uppercase().trim_end_matches("IB").trim_end_matches('B') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => u32::MAX,
    };
    match num.parse::<u64>() {
        Ok(n)
            if shift != u32::MAX
                && n > 0
                && n.checked_shl(shift).is_some_and(|b| b >> shift == n && b <= 1 << 40) =>
        {
            Ok(n << shift)
        }
        _ => Err(format!(
            "`{}` is not a byte count from 1 to 1T (e.g. 4096, 64K, 1M, 1G)",
            hvsock::Printable::new(s)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64K"), Ok(65536));
        assert_eq!(parse_bytes("1m"), Ok(1 << 20));
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        for bad in ["", "0", "-1", "1T", "1.5M", "K", "99999999999999999999", "2048G", "1M1"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    fn parse_ok(args: &[&str]) -> Command {
        let argv = std::iter::once("hvsock").chain(args.iter().copied()).map(OsString::from);
        Cli::try_parse_from(sample_spelling(argv.collect())).unwrap().command
    }

    #[test]
    fn no_arguments_is_a_loopback_server() {
        let Command::Server(a) = parse_ok(&[]) else { panic!("not server") };
        assert_eq!(a.vm, hvsock::Vm::Loopback);
        assert_eq!(a.service, hvsock::Service::Port(19000));
    }

    #[test]
    fn sample_spelling_maps_to_commands() {
        assert!(matches!(parse_ok(&["/server", "any"]), Command::Server(a) if a.vm == hvsock::Vm::Any));
        assert!(matches!(parse_ok(&["/client", "parent"]), Command::Client(a) if a.vm == hvsock::Vm::Parent));
        assert!(matches!(parse_ok(&["/register"]), Command::Register(_)));
        let guid = "9866c7bc-0c89-4cb0-9427-5b526d1ae83b";
        let Command::Client(a) = parse_ok(&["/client", "lo", guid]) else { panic!() };
        assert_eq!(a.service.to_string(), guid);
    }

    #[test]
    fn bad_values_become_one_line() {
        let argv = ["hvsock", "client", "nowhere"].map(OsString::from);
        let e = Cli::try_parse_from(argv).unwrap_err();
        let line = one_line(&e.render().to_string());
        assert!(!line.contains('\n'));
        assert!(line.contains("`nowhere` is not a VM"), "{line}");
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_secs("0.5").unwrap(), Duration::from_millis(500));
        for bad in ["0", "-1", "abc", "inf", "NaN", "1e20", "1e-300", "0.0009", "4294968", "1e17"] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_secs("0.001").unwrap(), Duration::from_millis(1));
        assert_eq!(parse_secs("4294967.295").unwrap(), Duration::from_millis(u32::MAX as u64));
    }
}
