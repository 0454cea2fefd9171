//! Parsing the command line (its grammar is `cmd`'s), one line for a usage error, and the `/server` spelling of the C# sample it grew from.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use crate::cmd::Cli;

/// Parses the command line; on a usage error prints one line and returns the exit code.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, ExitCode> {
    let usage_error = |line: &str| {
        eprintln!("hvsock: {} (see `hvsock --help`)", hvsock::Printable::new(line).limit(400));
        ExitCode::from(2)
    };
    let mut cli = Cli::try_parse_from(sample_spelling(args.into_iter().collect())).map_err(|e| {
        use clap::error::ErrorKind::*;
        if matches!(e.kind(), DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand) {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        usage_error(&message(&e))
    })?;
    // The VM names in every endpoint, FROM and TO alike, in one look at this machine's VMs.
    let names = crate::vms::Names::default();
    for (value_name, arg) in cli.command.endpoint_args() {
        names.resolve(arg).map_err(|e| usage_error(&format!("<{value_name}>: {e}")))?;
    }
    Ok(cli)
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
    line
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::Command;

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
}
