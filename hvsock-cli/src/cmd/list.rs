//! `hvsock list`: the machine's vsock sockets, like `ss -f vsock -p -la`.

#[cfg(target_os = "linux")]
use crate::output::outln;

/// List vsock sockets with their state, addresses and owning processes (Linux, vsock_diag).
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  hvsock list
  hvsock list --listening --port 19000
  hvsock list --json
  hvsock lab run -- sh -c 'hvsock server any --count 1 & sleep 0.5; hvsock list'")]
pub struct Args {
    /// Only listening sockets
    #[arg(long, short = 'l')]
    pub listening: bool,
    /// Only sockets with this local or peer port
    #[arg(long, value_name = "N")]
    pub port: Option<u32>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[cfg(target_os = "linux")]
pub fn run(args: Args) -> anyhow::Result<u8> {
    use hvsock::VsockAddr;
    use serde_json::json;

    let all = hvsock::diag::sockets().map_err(|e| anyhow::anyhow!("cannot list vsock sockets: {e}"))?;
    let shown: Vec<_> = all
        .into_iter()
        .filter(|s| !args.listening || s.state == "LISTEN")
        .filter(|s| args.port.is_none_or(|p| s.local.port == p || s.peer.port == p))
        .collect();
    let part = |v: u32| if v == u32::MAX { "*".to_string() } else { v.to_string() };
    let addr = |a: &VsockAddr| format!("{}:{}", part(a.cid), part(a.port));
    if args.json {
        let rows: Vec<_> = shown
            .iter()
            .map(|s| {
                json!({
                    "type": s.kind, "state": s.state,
                    "local": {"cid": s.local.cid, "port": s.local.port},
                    "peer": {"cid": s.peer.cid, "port": s.peer.port},
                    "inode": s.inode,
                    "processes": s.owners.iter().map(|o| json!({"pid": o.pid, "name": o.name, "fd": o.fd})).collect::<Vec<_>>(),
                })
            })
            .collect();
        outln!("{}", serde_json::Value::Array(rows));
        return Ok(0);
    }
    outln!("{:<9} {:<9} {:<22} {:<22} {:>8}  PROCESS", "STATE", "TYPE", "LOCAL", "PEER", "INODE");
    for s in &shown {
        let owners: Vec<String> =
            s.owners.iter().map(|o| format!("{}(pid={},fd={})", o.name, o.pid, o.fd)).collect();
        outln!(
            "{:<9} {:<9} {:<22} {:<22} {:>8}  {}",
            s.state,
            s.kind,
            addr(&s.local),
            addr(&s.peer),
            s.inode,
            owners.join(",")
        );
    }
    Ok(0)
}

#[cfg(not(target_os = "linux"))]
pub fn run(_: Args) -> anyhow::Result<u8> {
    anyhow::bail!("list is not supported on Windows: there is no public API that enumerates Hyper-V sockets (netstat does not show them; only ETW tracing sees them)")
}
