//! Who may connect, and how many connections each may hold.
//!
//! A vsock peer's CID is set by the hypervisor, not by the guest, and a Hyper-V peer's VM ID
//! likewise: they are real identities, so a server on `vsock:any:PORT` can serve only the
//! guests it should (`--allow-from`), and cap what any one of them holds
//! (`--max-conns-per-peer`) so one guest cannot take every slot. A peer not allowed, or over
//! its cap, is closed at once, before a byte of it is read.
//!
//! ```
//! use hvsock_relay::peers::{AllowFrom, Peer};
//! let allow: AllowFrom = ["3", "10-12", "192.168.0.0/16"].iter().map(|s| s.parse()).collect::<Result<_, _>>()?;
//! assert!(allow.allows(&Peer::Cid(11)));
//! assert!(!allow.allows(&Peer::Cid(4)));
//! assert!(allow.allows(&Peer::Ip("192.168.7.1".parse()?)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use hvsock::{Guid, Printable, VmId};

/// Who a connection came from, as far as its socket can say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    /// A vsock peer: its CID.
    Cid(u32),
    /// A Hyper-V socket peer: its VM ID.
    VmId(VmId),
    /// A TCP peer: its address (not its port: one machine is one peer).
    Ip(IpAddr),
    /// A Unix socket (or hybrid vsock) peer: no address to tell it by.
    Unknown,
}

impl Peer {
    /// The peer of an accepted VM socket connection.
    pub fn of_vm(addr: &hvsock::SocketAddr) -> Peer {
        match addr {
            hvsock::SocketAddr::Vsock(a) => Peer::Cid(a.cid),
            hvsock::SocketAddr::Hv(a) => Peer::VmId(a.vm_id),
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Cid(c) => write!(f, "CID {c}"),
            Peer::VmId(id) => write!(f, "VM {id}"),
            Peer::Ip(ip) => write!(f, "{ip}"),
            Peer::Unknown => write!(f, "a Unix peer"),
        }
    }
}

/// One `--allow-from` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerSpec {
    /// vsock CIDs: `3`, or a range `3-7`.
    Cids(RangeInclusive<u32>),
    /// A Hyper-V VM ID.
    VmId(VmId),
    /// An address, or a CIDR prefix: `10.0.0.5`, `10.0.0.0/8`, `fd00::/8`.
    Net(IpAddr, u8),
}

impl FromStr for PeerSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<PeerSpec, String> {
        let shown = || Printable::new(text).limit(80).to_string();
        if let Ok(cid) = text.parse::<u32>() {
            return Ok(PeerSpec::Cids(cid..=cid));
        }
        // Before ranges: a VM ID's first group may be all digits.
        if let Ok(guid) = text.parse::<Guid>() {
            return Ok(PeerSpec::VmId(guid.into()));
        }
        if let Some((a, b)) = text.split_once('-').filter(|(a, _)| a.bytes().all(|c| c.is_ascii_digit())) {
            let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) else {
                return Err(format!("`{}`: a CID range is FIRST-LAST, two CIDs", shown()));
            };
            if a > b {
                return Err(format!("`{}`: the range's first CID is past its last", shown()));
            }
            return Ok(PeerSpec::Cids(a..=b));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(PeerSpec::Net(ip, if ip.is_ipv4() { 32 } else { 128 }));
        }
        if let Some((ip, bits)) = text.split_once('/') {
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| format!("`{}`: `{}` is not an IP address", shown(), Printable::new(ip)))?;
            let most = if ip.is_ipv4() { 32 } else { 128 };
            let bits = bits
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= most)
                .ok_or_else(|| format!("`{}`: a prefix length is 0 to {most}", shown()))?;
            return Ok(PeerSpec::Net(ip, bits));
        }
        Err(format!(
            "`{}` is not a peer: give a CID (3), a CID range (3-7), a VM ID, an IP address or a CIDR prefix (10.0.0.0/8)",
            shown()
        ))
    }
}

impl PeerSpec {
    /// Whether `peer` is one this entry names.
    pub fn matches(&self, peer: &Peer) -> bool {
        match (self, peer) {
            (PeerSpec::Cids(r), Peer::Cid(c)) => r.contains(c),
            (PeerSpec::VmId(g), Peer::VmId(p)) => g == p,
            (PeerSpec::Net(net, bits), Peer::Ip(ip)) => in_prefix(*ip, *net, *bits),
            _ => false,
        }
    }
}

/// Whether `ip` is in `net/bits` (an IPv4 peer seen as `::ffff:a.b.c.d` counts as IPv4).
fn in_prefix(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let (a, b, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    let shift = width - u32::from(bits);
    shift >= width || (a >> shift) == (b >> shift)
}

/// The peers a server takes: everyone when empty.
#[derive(Clone, Debug, Default)]
pub struct AllowFrom(Vec<PeerSpec>);

impl AllowFrom {
    /// These entries.
    pub fn new(specs: Vec<PeerSpec>) -> AllowFrom {
        AllowFrom(specs)
    }

    /// Whether any entry was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `peer` may connect.
    pub fn allows(&self, peer: &Peer) -> bool {
        self.0.is_empty() || self.0.iter().any(|s| s.matches(peer))
    }
}

impl FromIterator<PeerSpec> for AllowFrom {
    fn from_iter<I: IntoIterator<Item = PeerSpec>>(specs: I) -> AllowFrom {
        AllowFrom(specs.into_iter().collect())
    }
}

/// What a server checks of each connection it accepts, before reading from it.
#[derive(Clone, Debug, Default)]
pub struct Checks {
    /// Who may connect.
    pub allow: AllowFrom,
    /// How many each may hold at once.
    pub per_peer: Option<PerPeer>,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its peer is not on `--allow-from`.
    NotAllowed,
    /// Its peer holds its `--max-conns-per-peer` already.
    TooMany(usize),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotAllowed => write!(f, "not on --allow-from"),
            Refusal::TooMany(n) => write!(f, "already holds its {n} connections (--max-conns-per-peer)"),
        }
    }
}

impl Checks {
    /// Whether a connection from `peer` is taken: its place in the peer's count if so.
    pub fn admit(&self, peer: Peer) -> Result<Option<PeerPlace>, Refusal> {
        if !self.allow.allows(&peer) {
            return Err(Refusal::NotAllowed);
        }
        match &self.per_peer {
            None => Ok(None),
            Some(p) => p.enter(peer).map(Some).ok_or(Refusal::TooMany(p.max)),
        }
    }
}

/// At most so many connections from any one peer at once.
#[derive(Clone, Debug)]
pub struct PerPeer {
    max: usize,
    held: Arc<Mutex<HashMap<Peer, usize>>>,
}

/// One connection's place in its peer's count, given back when dropped.
#[derive(Debug)]
pub struct PeerPlace {
    peer: Peer,
    held: Arc<Mutex<HashMap<Peer, usize>>>,
}

impl PerPeer {
    /// At most `max` from each peer.
    pub fn new(max: usize) -> PerPeer {
        PerPeer { max, held: Arc::default() }
    }

    /// A place for one more connection from `peer`, unless it holds its `max` already. A peer
    /// with no address (Unix) is not counted.
    pub fn enter(&self, peer: Peer) -> Option<PeerPlace> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if peer != Peer::Unknown {
            let n = held.entry(peer).or_insert(0);
            if *n >= self.max {
                return None;
            }
            *n += 1;
        }
        Some(PeerPlace { peer, held: self.held.clone() })
    }
}

impl Drop for PeerPlace {
    fn drop(&mut self) {
        if self.peer == Peer::Unknown {
            return;
        }
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> PeerSpec {
        s.parse().unwrap()
    }

    #[test]
    fn specs_name_cids_ranges_vm_ids_and_prefixes() {
        let g = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
        let guid: Guid = g.parse().unwrap();
        let ip = |s: &str| Peer::Ip(s.parse().unwrap());
        for (s, peer, yes) in [
            ("3", Peer::Cid(3), true),
            ("3", Peer::Cid(4), false),
            ("3-7", Peer::Cid(7), true),
            ("3-7", Peer::Cid(8), false),
            ("2", ip("0.0.0.2"), false),
            (g, Peer::VmId(guid.into()), true),
            (g, Peer::Cid(3), false),
            ("12345678-1234-1234-1234-123456789abc", Peer::Cid(3), false),
            ("10.0.0.0/8", ip("10.200.1.1"), true),
            ("10.0.0.0/8", ip("11.0.0.1"), false),
            ("10.0.0.0/8", ip("::ffff:10.1.2.3"), true),
            ("0.0.0.0/0", ip("203.0.113.9"), true),
            ("127.0.0.1", ip("127.0.0.1"), true),
            ("127.0.0.1", ip("127.0.0.2"), false),
            ("fd00::/8", ip("fd12::1"), true),
            ("fd00::/8", ip("fe80::1"), false),
            ("::1", ip("::1"), true),
            ("10.0.0.0/8", Peer::Unknown, false),
        ] {
            assert_eq!(spec(s).matches(&peer), yes, "{s} {peer:?}");
        }
    }

    #[test]
    fn bad_specs_say_which_part_is_wrong() {
        for (s, says) in [
            ("7-3", "first CID is past its last"),
            ("3-x", "FIRST-LAST"),
            ("10.0.0.0/33", "0 to 32"),
            ("::/129", "0 to 128"),
            ("10.0.0/8", "not an IP address"),
            ("web", "is not a peer"),
            ("", "is not a peer"),
            ("3\n4", "is not a peer"),
        ] {
            let e = s.parse::<PeerSpec>().unwrap_err();
            assert!(e.contains(says), "{s:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn an_empty_list_takes_everyone_and_a_list_only_its_own() {
        assert!(AllowFrom::default().allows(&Peer::Cid(9)));
        assert!(AllowFrom::default().allows(&Peer::Unknown));
        let only_4 = AllowFrom::new(vec![spec("4")]);
        assert!(only_4.allows(&Peer::Cid(4)));
        assert!(!only_4.allows(&Peer::Cid(5)));
        assert!(!only_4.allows(&Peer::Unknown), "a list admits no peer it cannot tell");
    }

    #[test]
    fn each_peer_holds_at_most_its_share_and_gets_it_back() {
        let per = PerPeer::new(2);
        let (a1, _a2) = (per.enter(Peer::Cid(3)).unwrap(), per.enter(Peer::Cid(3)).unwrap());
        assert!(per.enter(Peer::Cid(3)).is_none(), "a third from guest 3");
        assert!(per.enter(Peer::Cid(4)).is_some(), "another guest still gets in");
        drop(a1);
        assert!(per.enter(Peer::Cid(3)).is_some(), "a place given back");
        let unknown: Vec<_> = (0..5).map(|_| per.enter(Peer::Unknown)).collect();
        assert!(unknown.iter().all(Option::is_some), "Unix peers are not counted");
    }
}
