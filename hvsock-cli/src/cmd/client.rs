//! `hvsock client`: the client of the Hyper-V socket wildcards article's C# sample.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use hvsock::{Connector, Role, Service, SocketAddr, Stream, ToSocketAddr, Vm};

use crate::diagnose::socket_error;
use crate::output::outln;
use crate::values::parse_secs;

/// Connect, send a text, print the answer (the client of the Hyper-V socket wildcards article's C# sample).
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  hvsock client                      # loopback, port 19000: prints `Hello: World!`
  hvsock client parent --message hi  # from a VM to its host
  hvsock client 3 22 --timeout 1     # Linux: CID 3, port 22
  hvsock client parent --retries 30  # wait for the host's service to come up
  hvsock client b50f20e6-cf19-1796-ba60-d9cfe2d8fe29   # Windows host: a VM by its ID")]
pub struct Args {
    /// VM to connect to: loopback, parent, a VM ID GUID or a CID
    #[arg(value_name = "VMID", default_value = "loopback", value_parser = crate::vms::vm)]
    pub vm: Vm,
    /// Port number or service GUID
    #[arg(value_name = "SERVICE", default_value = "19000")]
    pub service: Service,
    /// Text to send
    #[arg(long, short, default_value = "World!")]
    pub message: String,
    /// Try again this many times while nothing listens yet (or the VM is not up)
    #[arg(long, value_name = "N", default_value = "0")]
    pub retries: u32,
    /// Seconds between tries
    #[arg(long, value_name = "SECS", default_value = "0.2", value_parser = parse_secs)]
    pub retry_wait: Duration,
    /// Seconds to wait for each connection attempt, and then for the answer
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs, allow_negative_numbers = true)]
    pub timeout: Duration,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let addr = (args.vm, args.service).to_socket_addr(Role::Connect)?;
    let connector = Connector::new().timeout(args.timeout).retries(args.retries).retry_wait(args.retry_wait);
    let mut stream =
        connector.connect(addr).map_err(|e| socket_error(format!("cannot connect to {addr}"), e))?;
    match addr {
        SocketAddr::Vsock(a) => outln!("Connected to {}, {}", a.port, a.cid),
        SocketAddr::Hv(a) => outln!("Connected to {}, {}", a.service_id, a.vm_id),
    }
    let talk = |stream: &mut Stream| -> io::Result<Vec<u8>> {
        stream.write_all(args.message.as_bytes())?;
        // Our end-of-text, so a server that reads to the end answers at once.
        stream.shutdown(Shutdown::Write)?;
        stream.set_read_timeout(Some(args.timeout))?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        Ok(answer)
    };
    let answer = talk(&mut stream).map_err(|e| socket_error(format!("talking to {addr}"), e))?;
    outln!("{}", String::from_utf8_lossy(&answer));
    Ok(0)
}
