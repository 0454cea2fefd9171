use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::{AddrError, HvAddr, Role, Service, SocketAddr, Vm, VsockAddr};

/// One end of a connection, written socat-style: `vsock:CID|NAME:PORT`, `hv:VMID|NAME:SERVICE`,
/// `tcp:HOST:PORT`, `unix:PATH`, `hybrid:UDS_PATH:PORT` or `-` (standard input and output);
/// and the message (SOCK_SEQPACKET) forms `vsock-seqpacket:CID|NAME:PORT`,
/// `unix-seqpacket:PATH`, `hybrid-seqpacket:UDS_PATH:PORT`; and `systemd:[NAME]`, a listening
/// socket handed over by a service manager.
///
/// `vsock:` and `hv:` take the same names and map by the names table, so `hv:parent:19000`
/// works on Linux (CID 2, port 19000) and `vsock:lo:19000` on Windows.
///
/// ```
/// use hvsock::{Endpoint, Role, VsockAddr};
/// let ep: Endpoint = "hv:parent:19000".parse().unwrap();
/// assert_eq!(ep.vsock_addr(Role::Connect).unwrap(), VsockAddr::new(2, 19000));
/// assert_eq!(ep.to_string(), "hv:parent:19000");
/// let err = "vsock:lo:http".parse::<Endpoint>().unwrap_err();
/// assert!(err.to_string().contains("`http` is not a service"));
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Endpoint {
    /// `vsock:CID|NAME:PORT`.
    Vsock(Vm, Service),
    /// `hv:VMID|NAME:SERVICE`.
    Hv(Vm, Service),
    /// `tcp:HOST:PORT`; an IPv6 host is written in brackets.
    Tcp(String, u16),
    /// `unix:PATH`.
    Unix(PathBuf),
    /// `hybrid:UDS_PATH:PORT`: guest port PORT behind a Firecracker-style VM's Unix socket.
    Hybrid(PathBuf, u32),
    /// `vsock-seqpacket:CID|NAME:PORT`: vsock SOCK_SEQPACKET (Linux; Hyper-V sockets are
    /// stream only).
    VsockSeqpacket(Vm, Service),
    /// `unix-seqpacket:PATH`: a Unix SOCK_SEQPACKET socket.
    UnixSeqpacket(PathBuf),
    /// `hybrid-seqpacket:UDS_PATH:PORT`: a hybrid VM whose socket takes SOCK_SEQPACKET
    /// connections (`CONNECT` and `OK` as messages of their own).
    HybridSeqpacket(PathBuf, u32),
    /// `-`: standard input and output.
    Stdio,
    /// `systemd:[NAME]`: a listening socket a service manager handed over (socket activation),
    /// the one named NAME (`FileDescriptorName=`) or the only one.
    Activated(Option<String>),
}

const KINDS: &str =
    "expected vsock:, hv:, hybrid:, tcp:, unix:, vsock-seqpacket:, unix-seqpacket:, hybrid-seqpacket:, systemd: or -";

impl Endpoint {
    /// The VM and service of a `vsock:` or `hv:` endpoint.
    pub fn vm_service(&self) -> Option<(Vm, Service)> {
        match *self {
            Endpoint::Vsock(vm, svc) | Endpoint::Hv(vm, svc) | Endpoint::VsockSeqpacket(vm, svc) => {
                Some((vm, svc))
            }
            _ => None,
        }
    }

    /// A SOCK_SEQPACKET endpoint: it carries messages, each arriving whole, not a byte stream.
    ///
    /// ```
    /// let ep: hvsock::Endpoint = "vsock-seqpacket:3:5000".parse().unwrap();
    /// assert!(ep.is_seqpacket());
    /// ```
    pub fn is_seqpacket(&self) -> bool {
        matches!(
            self,
            Endpoint::VsockSeqpacket(..) | Endpoint::UnixSeqpacket(_) | Endpoint::HybridSeqpacket(..)
        )
    }

    /// The Linux address this endpoint means at this end of a connection.
    pub fn vsock_addr(&self, role: Role) -> Result<VsockAddr, AddrError> {
        let (vm, svc) = self.vm_service().ok_or_else(|| self.not_vm())?;
        Ok(VsockAddr::new(vm.to_cid(role)?, svc.to_port()?))
    }

    /// The Windows address this endpoint means at this end of a connection.
    pub fn hv_addr(&self, role: Role) -> Result<HvAddr, AddrError> {
        let (vm, svc) = self.vm_service().ok_or_else(|| self.not_vm())?;
        Ok(HvAddr::new(vm.to_vm_id(role)?, svc.to_service_id()))
    }

    /// The address this endpoint means on this platform.
    pub fn socket_addr(&self, role: Role) -> Result<SocketAddr, AddrError> {
        let (vm, svc) = self.vm_service().ok_or_else(|| self.not_vm())?;
        crate::sys::resolve(vm, svc, role)
    }

    fn not_vm(&self) -> AddrError {
        AddrError::BadEndpoint {
            endpoint: self.to_string(),
            problem: "not a VM socket (expected vsock: or hv:)".into(),
        }
    }
}

impl FromStr for Endpoint {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Endpoint, AddrError> {
        let bad = |problem: String| AddrError::BadEndpoint { endpoint: s.to_string(), problem };
        if s == "-" {
            return Ok(Endpoint::Stdio);
        }
        let (kind, rest) = s.split_once(':').ok_or_else(|| bad(format!("no kind: {KINDS}")))?;
        match kind.to_ascii_lowercase().as_str() {
            kind @ ("vsock" | "hv" | "vsock-seqpacket") => {
                let shape = match kind {
                    "vsock" => "vsock:CID|NAME:PORT",
                    "hv" => "hv:VMID|NAME:SERVICE",
                    _ => "vsock-seqpacket:CID|NAME:PORT",
                };
                let (vm, svc) = rest.rsplit_once(':').ok_or_else(|| {
                    bad(format!(
                        "missing the {} (expected {shape})",
                        if kind == "hv" { "service" } else { "port" }
                    ))
                })?;
                let vm: Vm = vm.parse().map_err(|e: AddrError| bad(e.to_string()))?;
                let svc: Service = svc.parse().map_err(|e: AddrError| bad(e.to_string()))?;
                Ok(match kind {
                    "vsock" => Endpoint::Vsock(vm, svc),
                    "hv" => Endpoint::Hv(vm, svc),
                    _ => Endpoint::VsockSeqpacket(vm, svc),
                })
            }
            "hv-seqpacket" => {
                Err(bad("Hyper-V sockets are stream only (vsock-seqpacket: is Linux vsock)".into()))
            }
            "systemd" => Ok(Endpoint::Activated((!rest.is_empty()).then(|| rest.to_string()))),
            "tcp" => {
                let (host, port) = rest
                    .rsplit_once(':')
                    .ok_or_else(|| bad("missing the port (expected tcp:HOST:PORT)".into()))?;
                let host = match host.strip_prefix('[') {
                    Some(inner) => match inner.strip_suffix(']') {
                        Some(v6) if v6.contains(':') && !v6.contains(['[', ']']) => v6,
                        _ => {
                            return Err(bad(format!(
                                "`{host}` is not a bracketed IPv6 address (expected tcp:[::1]:PORT)"
                            )))
                        }
                    },
                    None if host.contains([':', '[', ']']) => {
                        return Err(bad(format!(
                            "`{host}`: an IPv6 address goes in brackets (tcp:[::1]:PORT)"
                        )))
                    }
                    None => host,
                };
                if host.is_empty() {
                    return Err(bad("missing the host (expected tcp:HOST:PORT)".into()));
                }
                let port = port.parse().map_err(|_| bad(format!("`{port}` is not a TCP port (0-65535)")))?;
                Ok(Endpoint::Tcp(host.to_string(), port))
            }
            kind @ ("unix" | "unix-seqpacket") if rest.is_empty() => {
                Err(bad(format!("missing the path (expected {kind}:PATH)")))
            }
            "unix" => Ok(Endpoint::Unix(PathBuf::from(rest))),
            "unix-seqpacket" => Ok(Endpoint::UnixSeqpacket(PathBuf::from(rest))),
            kind @ ("hybrid" | "hybrid-seqpacket") => {
                let (path, port) = rest
                    .rsplit_once(':')
                    .ok_or_else(|| bad(format!("missing the port (expected {kind}:UDS_PATH:PORT)")))?;
                if path.is_empty() {
                    return Err(bad(format!("missing the Unix socket path (expected {kind}:UDS_PATH:PORT)")));
                }
                let port = port.parse().map_err(|_| bad(format!("`{port}` is not a vsock port")))?;
                Ok(if kind == "hybrid" {
                    Endpoint::Hybrid(PathBuf::from(path), port)
                } else {
                    Endpoint::HybridSeqpacket(PathBuf::from(path), port)
                })
            }
            other => Err(bad(format!("unknown kind `{other}:` ({KINDS})"))),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Vsock(vm, svc) => write!(f, "vsock:{vm}:{svc}"),
            Endpoint::Hv(vm, svc) => write!(f, "hv:{vm}:{svc}"),
            Endpoint::Tcp(host, port) if host.contains(':') => write!(f, "tcp:[{host}]:{port}"),
            Endpoint::Tcp(host, port) => write!(f, "tcp:{host}:{port}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
            Endpoint::Hybrid(path, port) => write!(f, "hybrid:{}:{port}", path.display()),
            Endpoint::VsockSeqpacket(vm, svc) => write!(f, "vsock-seqpacket:{vm}:{svc}"),
            Endpoint::UnixSeqpacket(path) => write!(f, "unix-seqpacket:{}", path.display()),
            Endpoint::HybridSeqpacket(path, port) => write!(f, "hybrid-seqpacket:{}:{port}", path.display()),
            Endpoint::Stdio => f.write_str("-"),
            Endpoint::Activated(None) => f.write_str("systemd:"),
            Endpoint::Activated(Some(name)) => write!(f, "systemd:{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ServiceId, VmId};

    fn ep(s: &str) -> Endpoint {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        s.parse::<Endpoint>().unwrap_err().to_string()
    }

    #[test]
    fn tcp_hosts_bracket_ipv6_and_nothing_else() {
        assert_eq!(ep("tcp:[::1]:80"), Endpoint::Tcp("::1".into(), 80));
        assert_eq!(ep("tcp:[::1]:80").to_string(), "tcp:[::1]:80");
        for bad in ["tcp:[::1:80", "tcp:::1:80", "tcp:[127.0.0.1]:80", "tcp:a]:80", "tcp:[[::1]]:80"] {
            assert!(err(bad).contains("IPv6"), "{bad}: {}", err(bad));
        }
    }

    #[test]
    fn parses_every_kind() {
        assert_eq!(ep("vsock:3:22"), Endpoint::Vsock(Vm::Cid(3), Service::Port(22)));
        assert_eq!(ep("VSOCK:any:8000"), Endpoint::Vsock(Vm::Any, Service::Port(8000)));
        assert_eq!(ep("hv:parent:19000"), Endpoint::Hv(Vm::Parent, Service::Port(19000)));
        let guid = "b50f20e6-cf19-1796-ba60-d9cfe2d8fe29";
        let svc = "9866c7bc-0c89-4cb0-9427-5b526d1ae83b";
        assert_eq!(
            ep(&format!("hv:{{{guid}}}:{svc}")),
            Endpoint::Hv(Vm::Id(guid.parse().unwrap()), Service::Id(svc.parse().unwrap()))
        );
        assert_eq!(ep("tcp:127.0.0.1:80"), Endpoint::Tcp("127.0.0.1".into(), 80));
        assert_eq!(ep("tcp:[::1]:2222"), Endpoint::Tcp("::1".into(), 2222));
        assert_eq!(ep("tcp:localhost:0"), Endpoint::Tcp("localhost".into(), 0));
        assert_eq!(ep("unix:/run/a:b.sock"), Endpoint::Unix("/run/a:b.sock".into()));
        assert_eq!(ep("-"), Endpoint::Stdio);
        assert_eq!(ep("hybrid:/run/fc/v.sock:52"), Endpoint::Hybrid("/run/fc/v.sock".into(), 52));
        assert_eq!(
            ep("vsock-seqpacket:lo:5000"),
            Endpoint::VsockSeqpacket(Vm::Loopback, Service::Port(5000))
        );
        assert_eq!(ep("UNIX-SEQPACKET:/tmp/s"), Endpoint::UnixSeqpacket("/tmp/s".into()));
        assert_eq!(
            ep("hybrid-seqpacket:/run/v.sock:52"),
            Endpoint::HybridSeqpacket("/run/v.sock".into(), 52)
        );
        assert!(ep("vsock-seqpacket:3:1").is_seqpacket() && !ep("vsock:3:1").is_seqpacket());
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "vsock:3:22",
            "vsock:any:8000",
            "vsock:loopback:19000",
            "hv:parent:19000",
            "hv:children:00004a38-facb-11e6-bd58-64006a7986d3",
            "hv:b50f20e6-cf19-1796-ba60-d9cfe2d8fe29:9866c7bc-0c89-4cb0-9427-5b526d1ae83b",
            "tcp:127.0.0.1:80",
            "tcp:[::1]:2222",
            "unix:/tmp/x.sock",
            "hybrid:/run/fc/v.sock:52",
            "vsock-seqpacket:3:5000",
            "unix-seqpacket:/tmp/s.sock",
            "hybrid-seqpacket:/run/fc/v.sock:52",
            "systemd:",
            "systemd:agent",
            "-",
        ] {
            assert_eq!(ep(s).to_string(), s);
            assert_eq!(ep(&ep(s).to_string()), ep(s));
        }
        assert_eq!(ep("vsock:lo:1").to_string(), "vsock:loopback:1");
    }

    #[test]
    fn errors_name_the_bad_part() {
        assert_eq!(err("vsock"), format!("endpoint `vsock`: no kind: {KINDS}"));
        assert!(
            err("vsock-seqpacket:3").contains("missing the port (expected vsock-seqpacket:CID|NAME:PORT)")
        );
        assert!(err("hv-seqpacket:parent:1").contains("Hyper-V sockets are stream only"));
        assert!(err("unix-seqpacket:").contains("missing the path (expected unix-seqpacket:PATH)"));
        assert!(err("hybrid-seqpacket:/v:x").contains("`x` is not a vsock port"));
        assert!(err("vsok:1:2").contains("unknown kind `vsok:`"));
        assert!(err("vsock:1").contains("missing the port (expected vsock:CID|NAME:PORT)"));
        assert!(err("hv:parent").contains("missing the service (expected hv:VMID|NAME:SERVICE)"));
        assert!(err("vsock:nowhere:22").contains("`nowhere` is not a VM"));
        assert!(err("vsock:3:ssh").contains("`ssh` is not a service"));
        assert!(err("tcp:host:99999").contains("`99999` is not a TCP port"));
        assert!(err("tcp::80").contains("missing the host"));
        assert!(err("tcp:80").contains("missing the port"));
        assert!(err("unix:").contains("missing the path"));
        assert!(err("hybrid:/tmp/v.sock").contains("missing the port (expected hybrid:UDS_PATH:PORT)"));
        assert!(err("hybrid:/tmp/v.sock:x").contains("`x` is not a vsock port"));
        assert!(err("hybrid::52").contains("missing the Unix socket path"));
        assert!(err("vsock:3:ssh").starts_with("endpoint `vsock:3:ssh`: "));
    }

    #[test]
    fn maps_to_both_platforms() {
        let e = ep("hv:parent:19000");
        assert_eq!(e.vsock_addr(Role::Connect).unwrap(), VsockAddr::new(2, 19000));
        assert_eq!(
            e.hv_addr(Role::Connect).unwrap(),
            HvAddr::new(VmId::PARENT, ServiceId::from_vsock_port(19000))
        );
        let any = ep("vsock:any:19000");
        assert_eq!(any.vsock_addr(Role::Bind).unwrap(), VsockAddr::new(u32::MAX, 19000));
        assert!(any.vsock_addr(Role::Connect).is_err());
        assert_eq!(any.hv_addr(Role::Bind).unwrap().vm_id, VmId::WILDCARD);
        let cid = ep("vsock:3:22");
        assert!(cid.hv_addr(Role::Connect).unwrap_err().to_string().contains("not by CID"));
        let tcp = ep("tcp:127.0.0.1:80");
        assert!(tcp.vsock_addr(Role::Connect).unwrap_err().to_string().contains("not a VM socket"));
    }
}
