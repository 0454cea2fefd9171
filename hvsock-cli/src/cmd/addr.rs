//! `hvsock addr`: what an endpoint means on Linux and on Windows, down to the bytes.

use std::fmt::Write as _;

use hvsock::{AddrError, Endpoint, Role};

use crate::output::out;

/// Show what an endpoint resolves to on Linux (CID, port) and Windows (VM ID, service ID),
/// with the raw sockaddr bytes.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  hvsock addr hv:parent:19000
  hvsock addr vsock:any:8000")]
pub struct Args {
    /// A vsock: or hv: endpoint
    #[arg(value_name = "ENDPOINT")]
    pub endpoint: Endpoint,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let ep = &args.endpoint;
    if ep.vm_service().is_none() {
        anyhow::bail!("endpoint `{ep}`: not a VM socket (expected vsock: or hv:)");
    }
    let mut out = format!("endpoint {ep}\n");
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
