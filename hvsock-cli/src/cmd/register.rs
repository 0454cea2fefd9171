//! `hvsock register`: lists a service GUID with the Hyper-V host (Windows).

use hvsock::Service;

#[cfg(windows)]
use crate::output::outln;

/// Register a service GUID with Hyper-V so VMs may connect to it (Windows, as administrator).
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Writes HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Virtualization\\
GuestCommunicationServices\\<GUID> with ElementName = NAME.

Examples:
  hvsock register                    # 00004a38-facb-11e6-bd58-64006a7986d3 as MyGcs
  hvsock register 22 --name ssh      # the template GUID of vsock port 22")]
pub struct Args {
    /// Port number or service GUID
    #[arg(value_name = "SERVICE", default_value = "19000")]
    pub service: Service,
    /// Display name (ElementName)
    #[arg(long, default_value = "MyGcs")]
    pub name: String,
}

#[cfg(windows)]
pub fn run(args: Args) -> anyhow::Result<u8> {
    let id = args.service.to_service_id();
    hvsock::registry::register(id, &args.name)
        .map_err(|e| crate::diagnose::registry_error(format!("cannot register {id}"), e))?;
    outln!("Registered: {id} ({})", args.name);
    Ok(0)
}

#[cfg(not(windows))]
pub fn run(args: Args) -> anyhow::Result<u8> {
    let _ = args.service;
    Err(crate::diagnose::windows_only("register"))
}
