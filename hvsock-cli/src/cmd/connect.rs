//! `hvsock connect`: standard input to an endpoint, the endpoint to standard output.

use std::time::Duration;

use hvsock::Endpoint;

use hvsock_relay::{join, Conn, Counters, End, Options};

use crate::flags::{idle, stdin_is_terminal, Framing, HalfClose};
use crate::values::parse_secs;
use crate::vms::EndpointArg;

/// Connect to ENDPOINT and join it to stdin/stdout, like `ncat --vsock` / `socat - VSOCK-CONNECT`.
///
/// Standard input goes to the socket; at its end the socket's write side is closed (the peer
/// reads end-of-file) and the answer is still read. It ends, exit 0, when both directions have
/// ended (a peer's half-close does not cut off the rest of our input); when stdin is a
/// terminal, as soon as the peer closes. To hybrid vsock there is no half-close unless
/// --shutdown: real VMMs turn it into a full close towards the guest and its reply would be
/// lost; the connection ends when the guest closes.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  echo hello | hvsock connect vsock:3:5000
  hvsock connect hv:parent:19000 < request > answer
  hvsock connect vsock:lo:5000 --retries 20      # wait for the listener to come up
  hvsock connect hybrid:/run/fc/v.sock:52        # Firecracker guest port 52, from the host
  printf 'one\ntwo\n' | hvsock connect vsock-seqpacket:3:5000 --lines   # two messages
  hvsock connect vsock:2:6000 --send-only < upload   # from a guest: the host sees the end")]
pub struct Args {
    /// Where to connect: vsock:CID:PORT, hv:VMID:SERVICE, hybrid:UDS:PORT, tcp:HOST:PORT, unix:PATH,
    /// or a message endpoint: vsock-seqpacket:CID:PORT, unix-seqpacket:PATH, hybrid-seqpacket:UDS:PORT
    #[arg(value_name = "ENDPOINT", value_parser = EndpointArg::parse)]
    pub endpoint: EndpointArg,
    /// Seconds to wait for each connection attempt
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs, allow_negative_numbers = true)]
    pub timeout: Duration,
    /// Try again this many times while nothing listens yet (or the VM is still booting)
    #[arg(long, value_name = "N", default_value = "0")]
    pub retries: u32,
    /// Close the connection after SECS with no data either way (a dead VM's VMM may keep its
    /// socket open forever)
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub idle_timeout: Option<Duration>,
    #[command(flatten)]
    pub half_close: HalfClose,
    /// Only send: what the peer sends is dropped, and the end of input closes the connection
    /// (ncat's --send-only). A guest's upload to a host behind Firecracker or vhost-device-vsock
    /// needs it: they drop a guest's half-close, so the host would wait for ever
    #[arg(long, conflicts_with_all = ["shutdown", "no_shutdown", "shutdown_quiet"])]
    pub send_only: bool,
    #[command(flatten)]
    pub framing: Framing,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let endpoint = args.endpoint.endpoint();
    if *endpoint == Endpoint::Stdio {
        anyhow::bail!("connect needs somewhere to connect to, not `-`");
    }
    let framing = args.framing.check(endpoint)?;
    let rt = hvsock_relay::runtime(1)?;
    let result = rt.block_on(async {
        let conn = args.half_close.apply(hvsock_relay::connect(endpoint, args.timeout, args.retries).await?);
        let peer = conn.peer.clone();
        let io = framing.apply(Conn::stdio());
        let (io, conn) = if args.send_only { io.send_only(conn) } else { (io, conn) };
        let options = Options { idle: args.idle_timeout, stop_when_b_ends: stdin_is_terminal(), stop: None };
        match join(io, conn, options, &Counters::default()).await {
            End::Clean | End::PeerDone => Ok(0),
            End::Error(e) => Err(anyhow::anyhow!("{peer}: {e}")),
            End::Idle => Err(idle(&peer, args.idle_timeout)),
        }
    });
    // stdin may still be blocked in a read (a terminal, an idle pipe): do not wait for it.
    rt.shutdown_background();
    result
}
