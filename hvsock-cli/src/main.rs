//! `hvsock`: the command line. Each command lives in its own module under `cmd/`.

mod args;
mod bench;
mod cmd;
mod diagnose;
mod flags;
mod logging;
mod output;
mod values;
mod vms;

use std::process::ExitCode;

fn main() -> ExitCode {
    // In a lab guest this process is init; it never returns from there.
    hvsock_lab::init_if_guest();
    hvsock_relay::activation::take_at_start();
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
