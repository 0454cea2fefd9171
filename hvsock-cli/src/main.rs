//! `hvsock`: the command line. Each command lives in its own module under `cmd/`.

mod activation;
mod allowlist;
mod args;
mod bench;
mod cmd;
mod delivery;
mod diagnose;
mod endpoints;
mod logging;
#[cfg(unix)]
mod messages;
mod output;
mod splice;
#[cfg(unix)]
mod stdio;
mod stopping;
mod vms;
mod wildcard;
mod zero_copy;

use std::process::ExitCode;

fn main() -> ExitCode {
    // In a lab guest this process is init; it never returns from there.
    hvsock_lab::init_if_guest();
    activation::take_at_start();
    let cli = match args::parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match cmd::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) if e.is::<output::Closed>() => ExitCode::from(141),
        Err(e) => {
            eprintln!("hvsock: {e:#}");
            ExitCode::FAILURE
        }
    }
}
