//! `hvsock unregister`: removes a service's Hyper-V registration (Windows).

use hvsock::Service;

#[cfg(windows)]
use crate::output::outln;

/// Remove a service's registration (Windows, as administrator).
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  hvsock unregister 19000
  hvsock unregister MyGcs            # by its ElementName")]
pub struct Args {
    /// Port number, service GUID or registered name
    #[arg(value_name = "SERVICE")]
    pub service: Service,
}

#[cfg(windows)]
pub fn run(args: Args) -> anyhow::Result<u8> {
    let id = args.service.to_service_id();
    let removed = hvsock::registry::unregister(id)
        .map_err(|e| crate::diagnose::registry_error(format!("cannot unregister {id}"), e))?;
    match removed {
        true => outln!("Unregistered: {id}"),
        false => outln!("Not registered: {id}"),
    }
    Ok(0)
}

#[cfg(not(windows))]
pub fn run(args: Args) -> anyhow::Result<u8> {
    let _ = args.service;
    Err(crate::diagnose::windows_only("unregister"))
}
