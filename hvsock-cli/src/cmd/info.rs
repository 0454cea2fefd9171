//! `hvsock info`: what this machine offers for VM sockets.

use serde_json::{json, Value};

use crate::output::outln;

/// Show what this machine offers for VM sockets.
///
/// Linux: this machine's CID, the vsock transports loaded, the hypervisor it seems to run
/// under. Windows: whether this is a Hyper-V guest (and its VM ID), and the Winsock catalog's
/// Hyper-V provider. Missing pieces read "not available".
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  hvsock info
  hvsock info --json
  hvsock lab run -- hvsock info")]
pub struct Args {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let (rows, json) = facts();
    if args.json {
        outln!("{json}");
    } else {
        for (what, value) in rows {
            outln!("{what:<16}{value}");
        }
    }
    Ok(0)
}

#[cfg(target_os = "linux")]
fn facts() -> (Vec<(&'static str, String)>, Value) {
    use hvsock::{info, VsockAddr};
    let cid = hvsock::local_cid();
    let cid_text = match &cid {
        Ok(c @ VsockAddr::CID_LOCAL) => format!("{c} (loopback only: no hypervisor transport)"),
        Ok(c @ VsockAddr::CID_HOST) => format!("{c} (a host: serves guests)"),
        Ok(c @ VsockAddr::CID_ANY) => format!("{c} (no transport gives this machine a CID)"),
        Ok(c) => format!("{c} (a guest)"),
        Err(e) => format!("not available ({e})"),
    };
    let transports = info::transports();
    let seqpacket = info::seqpacket();
    let hypervisor = info::hypervisor();
    let rows = vec![
        ("platform", "linux (AF_VSOCK)".to_string()),
        ("local CID", cid_text),
        (
            "transports",
            if transports.is_empty() {
                "not available (no vsock module loaded)".into()
            } else {
                transports.join(", ")
            },
        ),
        (
            "seqpacket",
            if seqpacket.is_empty() {
                "not available (no transport loaded)".into()
            } else {
                seqpacket.join("; ")
            },
        ),
        ("hypervisor", hypervisor.clone().unwrap_or_else(|| "none detected".into())),
    ];
    let json = json!({
        "platform": "linux",
        "local_cid": cid.as_ref().ok(),
        "local_cid_error": cid.as_ref().err().map(|e| e.to_string()),
        "transports": transports,
        "seqpacket": seqpacket,
        "hypervisor": hypervisor,
    });
    (rows, json)
}

#[cfg(windows)]
fn facts() -> (Vec<(&'static str, String)>, Value) {
    use hvsock::info;
    let vm_id = info::vm_id();
    let guest = match &vm_id {
        Ok(Some(id)) => ("yes, integration services on".to_string(), id.to_string()),
        Ok(None) => {
            ("no (no VirtualMachineId in the guest parameters)".to_string(), "not available".to_string())
        }
        Err(e) => (format!("unknown ({e})"), "not available".to_string()),
    };
    let providers = info::providers().unwrap_or_default();
    let mut rows =
        vec![("platform", "windows (AF_HYPERV)".to_string()), ("Hyper-V guest", guest.0), ("VM ID", guest.1)];
    if providers.is_empty() {
        rows.push(("AF_HYPERV", "not available (no Winsock provider for address family 34)".to_string()));
    }
    for p in &providers {
        rows.push(("AF_HYPERV", format!("{} {{{}}}", p.name, p.provider_id)));
        rows.push((
            "",
            format!(
                "address family {}, address length {}-{}, socket type {}, protocol {}",
                p.address_family, p.min_address_length, p.max_address_length, p.socket_type, p.protocol
            ),
        ));
        rows.push((
            "",
            format!(
                "service flags {:#x} = {}",
                p.service_flags,
                info::service_flag_names(p.service_flags).join(" | ")
            ),
        ));
    }
    let json = json!({
        "platform": "windows",
        "hyperv_guest": matches!(vm_id, Ok(Some(_))),
        "vm_id": vm_id.as_ref().ok().and_then(|v| v.map(|id| id.to_string())),
        "providers": providers.iter().map(|p| json!({
            "name": p.name,
            "provider_id": p.provider_id.to_string(),
            "address_family": p.address_family,
            "min_address_length": p.min_address_length,
            "max_address_length": p.max_address_length,
            "socket_type": p.socket_type,
            "protocol": p.protocol,
            "service_flags": p.service_flags,
            "service_flag_names": info::service_flag_names(p.service_flags),
        })).collect::<Vec<_>>(),
    });
    (rows, json)
}
