//! `hvsock vms`: the VMs this machine can talk to, and how.

use serde_json::json;

use crate::output::outln;
use crate::vms::{self, Reach};

/// List the VMs reachable from here: their names (which work wherever a VM goes:
/// `vsock:NAME:PORT`, `hv:NAME:SERVICE`, `hvsock client NAME`), how each is reached (CID, VM
/// ID, or hybrid socket), under which hypervisor, and where the fact came from.
///
/// Linux: lab guests, QEMU (also under libvirt), Firecracker, Cloud Hypervisor, crosvm and
/// vhost-device-vsock processes, libvirt's running domains (root). Windows: the Host Compute
/// Service's VMs, the WSL 2 utility VM as `wsl`. A source that cannot be read says why.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  hvsock vms
  hvsock vms --json
  hvsock connect vsock:web:5000        # the VM `hvsock vms` calls web
  hvsock addr vsock:web:5000           # what that name resolved to, and from where")]
pub struct Args {
    /// Print JSON: {\"vms\": [{name, reach: {cid|vm_id|hybrid}, hypervisor, state, source}], \"unavailable\": [{source, why}]}
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let d = vms::discover();
    if args.json {
        let rows: Vec<_> = d
            .vms
            .iter()
            .map(|v| {
                let reach = match &v.reach {
                    Reach::Cid(c) => json!({ "cid": c }),
                    Reach::VmId(id) => json!({ "vm_id": id.to_string() }),
                    Reach::Hybrid(p) => json!({ "hybrid": p.display().to_string() }),
                    Reach::NoCidYet => json!({ "cid": null }),
                    Reach::NotFromHere => json!({}),
                };
                json!({ "name": v.name, "reach": reach, "hypervisor": v.hypervisor, "state": v.state, "source": v.source })
            })
            .collect();
        let unavailable: Vec<_> =
            d.unavailable.iter().map(|(s, why)| json!({ "source": s, "why": why })).collect();
        outln!("{}", json!({ "vms": rows, "unavailable": unavailable }));
        return Ok(0);
    }
    if d.vms.is_empty() {
        outln!("no VMs found");
    } else {
        let width = d.vms.iter().map(|v| v.name.len()).max().unwrap_or(4).max(4);
        let reach_width = d.vms.iter().map(|v| v.reach.to_string().len()).max().unwrap_or(5).max(5);
        outln!("{:<width$}  {:<reach_width$}  {:<28}  {:<8}  SOURCE", "NAME", "REACH", "HYPERVISOR", "STATE");
        for v in &d.vms {
            outln!(
                "{:<width$}  {:<reach_width$}  {:<28}  {:<8}  {}",
                v.name,
                v.reach.to_string(),
                v.hypervisor,
                v.state.as_deref().unwrap_or("-"),
                v.source
            );
        }
    }
    for (source, why) in &d.unavailable {
        outln!("not available here: {source}: {why}");
    }
    Ok(0)
}
