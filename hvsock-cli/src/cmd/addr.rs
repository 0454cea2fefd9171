//! `hvsock addr`: what an endpoint means on Linux and on Windows, down to the bytes.

use std::fmt::Write as _;

use hvsock::{AddrError, Endpoint, Role};

use crate::output::out;
use crate::vms::EndpointArg;

/// Show what an endpoint resolves to on Linux (CID, port) and Windows (VM ID, service ID),
/// with the raw sockaddr bytes.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  hvsock addr hv:parent:19000
  hvsock addr vsock:any:8000")]
pub struct Args {
    /// A vsock: or hv: endpoint (a VM's name works: what it resolved to is shown)
    #[arg(value_name = "ENDPOINT", value_parser = EndpointArg::parse)]
    pub endpoint: EndpointArg,
    /// Print JSON: {"endpoint", "name": {name, reach, source} | null, "linux": {"bind", "connect"},
    /// "windows": {"bind", "connect"}}, each end {"cid", "port", "bytes"} / {"vm_id", "service_id",
    /// "bytes"} (bytes in hex), or {"error"}
    #[arg(long)]
    pub json: bool,
}

/// The JSON of `--json`.
fn as_json(ep: &Endpoint, vm: Option<&crate::vms::FoundVm>) -> serde_json::Value {
    use serde_json::json;
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let end = |role| {
        let linux = match ep.vsock_addr(role) {
            Ok(a) => json!({ "cid": a.cid, "port": a.port, "bytes": hex(&a.to_bytes()) }),
            Err(e) => json!({ "error": e.to_string() }),
        };
        let windows = match ep.hv_addr(role) {
            Ok(a) => {
                json!({ "vm_id": a.vm_id.to_string(), "service_id": a.service_id.to_string(), "bytes": hex(&a.to_bytes()) })
            }
            Err(e) => json!({ "error": e.to_string() }),
        };
        (linux, windows)
    };
    let (lb, wb) = end(Role::Bind);
    let (lc, wc) = end(Role::Connect);
    json!({
        "endpoint": ep.to_string(),
        "name": vm.map(|v| json!({ "name": v.name, "reach": v.reach.to_string(), "source": v.source })),
        "linux": { "bind": lb, "connect": lc },
        "windows": { "bind": wb, "connect": wc },
    })
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let (ep, vm) = (args.endpoint.endpoint(), args.endpoint.vm());
    if args.json && (ep.vm_service().is_some() || vm.is_some()) {
        crate::output::outln!("{}", as_json(ep, vm));
        return Ok(0);
    }
    let mut out = String::new();
    if let Some(vm) = vm {
        out += &format!("name     {} is {} ({}, from {})\n", vm.name, vm.reach, vm.hypervisor, vm.source);
    }
    if ep.vm_service().is_none() {
        if vm.is_some() {
            // A hybrid-vsock VM: its endpoint is its socket, with no address to show.
            out += &format!("endpoint {ep}\n");
            out!("{out}");
            return Ok(0);
        }
        anyhow::bail!("endpoint `{ep}`: not a VM socket (expected vsock: or hv:)");
    }
    out += &format!("endpoint {ep}\n");
    out += "linux (AF_VSOCK, struct sockaddr_vm)\n";
    for role in [Role::Bind, Role::Connect] {
        row(
            &mut out,
            role,
            ep.vsock_addr(role).map(|a| (format!("CID {}, port {}", a.cid, a.port), a.to_bytes().to_vec())),
        );
    }
    out += "windows (AF_HYPERV, SOCKADDR_HV)\n";
    for role in [Role::Bind, Role::Connect] {
        row(
            &mut out,
            role,
            ep.hv_addr(role).map(|a| {
                let vm = match a.vm_id.well_known_name() {
                    Some(name) => format!("{} ({name})", a.vm_id),
                    None => a.vm_id.to_string(),
                };
                let service = match a.service_id.vsock_port() {
                    Some(port) => format!("{} (port {port})", a.service_id),
                    None => a.service_id.to_string(),
                };
                (format!("VM ID {vm}, service {service}"), a.to_bytes().to_vec())
            }),
        );
    }
    out!("{out}");
    Ok(0)
}

fn row(out: &mut String, role: Role, resolved: Result<(String, Vec<u8>), AddrError>) {
    let role = match role {
        Role::Bind => "bind",
        Role::Connect => "connect",
    };
    match resolved {
        Ok((what, bytes)) => {
            let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let _ = writeln!(out, "  {role:<8} {what}\n  {:<8} {} bytes: {}", "", bytes.len(), hex.join(" "));
        }
        Err(e) => {
            let _ = writeln!(out, "  {role:<8} not possible: {e}");
        }
    }
}
