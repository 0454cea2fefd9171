//! `hvsock guid`: vsock port <-> Hyper-V service GUID.

use hvsock::Service;

use crate::output::outln;

/// Convert a vsock port to its Hyper-V service GUID (the VSOCK template), or back.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  hvsock guid 19000                                   # 00004a38-facb-11e6-bd58-64006a7986d3
  hvsock guid {00004A38-FACB-11E6-BD58-64006A7986D3}  # 19000")]
pub struct Args {
    /// A port number (decimal or 0x hex), or a template GUID
    #[arg(value_name = "PORT|GUID")]
    pub value: Service,
    /// Print JSON: {"port": N, "service_id": "GUID"}
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let (port, id) = (args.value.to_port()?, args.value.to_service_id());
    if args.json {
        outln!("{}", serde_json::json!({ "port": port, "service_id": id.to_string() }));
        return Ok(0);
    }
    match args.value {
        Service::Port(_) => outln!("{id}"),
        Service::Id(_) => outln!("{port}"),
    }
    Ok(0)
}
