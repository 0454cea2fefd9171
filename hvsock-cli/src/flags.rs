//! The flags `connect`, `listen` and `relay` share, turned into the engine's settings.

use std::time::Duration;

use hvsock::Endpoint;
use hvsock_relay::{Conn, HalfClosing, Listener};

/// Whether our end-of-data half-closes a connection: at once, except to hybrid vsock, where
/// it waits for the guest's answer to pause ([`HalfCloseMode::AfterQuiet`]).
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct HalfClose {
    /// Half-close at once even to hybrid vsock (for VMMs that keep half-closes, like
    /// `hvsock lab run --keep-half-close`)
    #[arg(long, conflicts_with = "no_shutdown")]
    pub shutdown: bool,
    /// Never half-close a connection: at end-of-data keep it open until the peer closes
    /// (ncat's --no-shutdown)
    #[arg(long)]
    pub no_shutdown: bool,
    /// Hybrid vsock: half-close once the guest has sent nothing for SECS (default 1). A guest
    /// whose answer can pause longer (a loaded VM, a slow command) loses the rest of it when
    /// the VMM turns our half-close into a close: give it more
    #[arg(long, value_name = "SECS", value_parser = crate::values::parse_secs, conflicts_with_all = ["shutdown", "no_shutdown"])]
    pub shutdown_quiet: Option<Duration>,
}

impl HalfClose {
    /// The engine's settings.
    pub fn settings(self) -> HalfClosing {
        HalfClosing { now: self.shutdown, never: self.no_shutdown, quiet: self.shutdown_quiet }
    }

    /// Sets a network connection's half-close as asked.
    pub fn apply(self, conn: Conn) -> Conn {
        self.settings().apply(conn)
    }
}

/// How standard input and output (or a command's) meet a message endpoint.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct Framing {
    /// With a message endpoint (vsock-seqpacket:, unix-seqpacket:, hybrid-seqpacket:): each
    /// line is one message (newline taken off; empty lines dropped) and each message is written
    /// as a line. Without it, each read of input (at most 64 KiB) is one message and each
    /// message one write.
    #[arg(long)]
    pub lines: bool,
}

impl Framing {
    /// Checks `--lines` against the endpoint it is for (a handed-over socket is checked once
    /// it is taken: see [`Framing::check_listener`]).
    pub fn check(self, ep: &Endpoint) -> anyhow::Result<Framing> {
        if self.lines && !ep.is_seqpacket() && !matches!(ep, Endpoint::Activated(_)) {
            anyhow::bail!(
                "--lines maps lines to messages: {ep} is a byte stream (use vsock-seqpacket:, unix-seqpacket: or hybrid-seqpacket:)"
            );
        }
        Ok(self)
    }

    /// Checks `--lines` against what a listener turned out to be.
    pub fn check_listener(self, listener: &Listener, ep: &Endpoint) -> anyhow::Result<Framing> {
        if self.lines && !listener.carries_messages() {
            anyhow::bail!("--lines maps lines to messages: {ep} is a byte stream socket");
        }
        Ok(self)
    }

    /// The local side (stdio, a command) framed as asked.
    pub fn apply(self, conn: Conn) -> Conn {
        #[cfg(unix)]
        if self.lines {
            return conn.lines();
        }
        conn
    }
}

/// The error for a connection that went quiet for the idle limit.
pub fn idle(peer: &str, limit: Option<Duration>) -> anyhow::Error {
    anyhow::anyhow!(
        "{peer}: no data either way for {} s; closed (is the VM behind it still running?)",
        limit.unwrap_or_default().as_secs_f64()
    )
}

/// An interactive stdin may never end: then the peer's end ends a session.
pub fn stdin_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}

/// How many connections may wait in a listener's queue.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct Backlog {
    /// Queue at most N connections not yet accepted (default: as many as the system allows,
    /// net.core.somaxconn on Linux). Past it a vsock or Unix client is refused at once and a
    /// TCP client's SYN is dropped (it retries after 1 s)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub backlog: Option<u32>,
}

impl Backlog {
    /// Applies `--backlog` to a listener the engine bound (`set` listens again with it).
    pub fn apply(self, set: impl FnOnce(u32) -> std::io::Result<()>) -> anyhow::Result<()> {
        match self.backlog {
            Some(n) => set(n).map_err(|e| anyhow::anyhow!("--backlog {n}: {e}")),
            None => Ok(()),
        }
    }
}

/// Which peers a server takes, and how many connections each may hold.
#[derive(clap::Args, Debug, Clone)]
pub struct Peers {
    /// Take connections only from these peers (repeatable): a CID (3), a CID range (3-7), a VM
    /// name from `hvsock vms`, a Hyper-V VM ID, an IP address or a CIDR prefix (10.0.0.0/8).
    /// Others are closed at once, unread, logged and counted as refused
    #[arg(long, value_name = "PEER", value_parser = peer_spec)]
    pub allow_from: Vec<hvsock_relay::peers::PeerSpec>,
    /// At most N connections at once from any one peer (a guest's CID, a VM ID, an IP
    /// address); more are closed at once and counted as refused, so one guest cannot take
    /// every slot
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_conns_per_peer: Option<u32>,
}

impl Peers {
    /// The engine's checks.
    pub fn checks(&self) -> hvsock_relay::peers::Checks {
        hvsock_relay::peers::Checks {
            allow: self.allow_from.iter().cloned().collect(),
            per_peer: self.max_conns_per_peer.map(|n| hvsock_relay::peers::PerPeer::new(n as usize)),
        }
    }
}

impl Peers {
    /// Refuses `--allow-from` where a listener's peers have no address to tell them by.
    pub fn check_for(&self, listening: &hvsock::Endpoint) -> anyhow::Result<()> {
        use hvsock::Endpoint as E;
        let unnamed =
            matches!(listening, E::Unix(_) | E::UnixSeqpacket(_) | E::Hybrid(..) | E::HybridSeqpacket(..));
        if unnamed && !self.allow_from.is_empty() {
            anyhow::bail!(
                "--allow-from: {listening}'s peers are Unix sockets, which have no address to allow (the socket file's permissions say who may connect)"
            );
        }
        Ok(())
    }
}

/// clap's parser for `--allow-from`: a peer as written, or a VM's name (resolved at start to
/// its CID or VM ID).
fn peer_spec(text: &str) -> Result<hvsock_relay::peers::PeerSpec, String> {
    use hvsock_relay::peers::PeerSpec;
    let not_a_peer = match text.parse::<PeerSpec>() {
        Ok(spec) => return Ok(spec),
        Err(e) => e,
    };
    match crate::vms::vm(text) {
        Ok(hvsock::Vm::Cid(cid)) => Ok(PeerSpec::Cids(cid..=cid)),
        // A guest's server taking the host's connections; a machine's own.
        Ok(hvsock::Vm::Parent) => Ok(PeerSpec::Cids(2..=2)),
        Ok(hvsock::Vm::Loopback) => Ok(PeerSpec::Cids(1..=1)),
        Ok(hvsock::Vm::Id(id)) => Ok(PeerSpec::VmId(id)),
        _ => Err(format!("{not_a_peer}, or the name of a VM `hvsock vms` lists")),
    }
}
