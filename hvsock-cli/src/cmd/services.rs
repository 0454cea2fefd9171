//! `hvsock services`: the registered Hyper-V services (Windows).

#[cfg(windows)]
use crate::output::outln;

/// List the registered Hyper-V services with their names and vsock ports (Windows).
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  hvsock services
  hvsock services --json")]
pub struct Args {
    /// Print JSON: [{\"id\", \"name\", \"vsock_port\"}]
    #[arg(long)]
    pub json: bool,
}

#[cfg(windows)]
pub fn run(args: Args) -> anyhow::Result<u8> {
    let list = hvsock::registry::services()
        .map_err(|e| crate::diagnose::registry_error("cannot list the registered services", e))?;
    if args.json {
        let rows: Vec<_> = list
            .iter()
            .map(|r| serde_json::json!({"id": r.id.to_string(), "name": r.name, "vsock_port": r.id.vsock_port()}))
            .collect();
        outln!("{}", serde_json::Value::Array(rows));
        return Ok(0);
    }
    outln!("{:<36}  {:>10}  NAME", "SERVICE", "VSOCK PORT");
    for r in &list {
        let port = r.id.vsock_port().map_or("-".to_string(), |p| p.to_string());
        outln!("{:<36}  {:>10}  {}", r.id, port, r.name.as_deref().unwrap_or("-"));
    }
    Ok(0)
}

#[cfg(not(windows))]
pub fn run(_: Args) -> anyhow::Result<u8> {
    Err(crate::diagnose::windows_only("services"))
}
