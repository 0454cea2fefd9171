//! `hvsock server`: the echo server of the Hyper-V socket wildcards article's C# sample.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::thread;
use std::time::Duration;

use anyhow::Context;
use hvsock::{Listener, Role, Service, Stream, ToSocketAddr, Vm};

use crate::diagnose::socket_error;

/// How long a client may take to send its first byte before the server gives up on it.
const FIRST_BYTE_WAIT: Duration = Duration::from_secs(10);
/// A client that keeps its side open (like the article's own) is answered after this much quiet.
const QUIET: Duration = Duration::from_millis(100);
/// Texts longer than this are answered by their start.
const MAX_TEXT: usize = 64 * 1024;

/// Listen, and answer each connection's text with `Hello: <text>` (the article's sample server).
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Prints `connected: <peer>` and the text for each connection on stdout, and
`listening on <address>` on stderr once it is ready.

Examples:
  hvsock server                      # loopback, port 19000 (the article's default)
  hvsock server any --count 1        # any VM, one connection, then exit
  hvsock server children 00004a38-facb-11e6-bd58-64006a7986d3
  systemd-socket-activate -l vsock:1:19000 hvsock server --systemd   # socket activation")]
pub struct Args {
    /// VM to bind: any, loopback, parent, children, a VM ID GUID or a CID
    #[arg(value_name = "VMID", default_value = "loopback", value_parser = crate::vms::vm)]
    pub vm: Vm,
    /// Port number or service GUID
    #[arg(value_name = "SERVICE", default_value = "19000")]
    pub service: Service,
    /// Exit after serving N connections
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    #[command(flatten)]
    pub backlog: crate::flags::Backlog,
    #[command(flatten)]
    pub peers: crate::flags::Peers,
    /// Serve the listening vsock socket a service manager handed over (systemd socket
    /// activation) instead of binding VMID and SERVICE; NAME picks one of several
    #[cfg(target_os = "linux")]
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
    pub systemd: Option<String>,
}

/// The listener: bound here, or handed over.
fn listener(args: &Args) -> anyhow::Result<Listener> {
    #[cfg(target_os = "linux")]
    if let Some(name) = &args.systemd {
        let fd = hvsock_relay::activation::pick(Some(name.as_str()).filter(|n| !n.is_empty()), &"--systemd")?;
        return Listener::adopt(fd).map_err(|e| anyhow::anyhow!("--systemd: {e}"));
    }
    let addr = (args.vm, args.service).to_socket_addr(Role::Bind)?;
    Listener::bind(addr).map_err(|e| socket_error(format!("cannot listen on {addr}"), e))
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let ceiling = hvsock_relay::descriptors::Ceiling::raise();
    let listener = listener(&args)?;
    args.backlog.apply(|n| socket2::SockRef::from(&listener).listen(i32::try_from(n).unwrap_or(i32::MAX)))?;
    let local = listener.local_addr().context("cannot read the listening address")?;
    eprintln!("listening on {local}");
    // At the descriptor ceiling it stops accepting: new clients wait in the listen queue.
    let room = hvsock_relay::descriptors::Room::new(ceiling.conns);
    let checks = args.peers.checks();
    let mut served = 0u64;
    thread::scope(|scope| {
        while args.count.is_none_or(|n| served < n) {
            let place = room.enter();
            match listener.accept() {
                Ok((stream, peer)) => {
                    let peer_place = match checks.admit(hvsock_relay::peers::Peer::of_vm(&peer)) {
                        Ok(place) => place,
                        Err(why) => {
                            eprintln!("hvsock: {peer}: refused: {why}");
                            continue;
                        }
                    };
                    served += 1;
                    let place = (place, peer_place);
                    scope.spawn(move || {
                        answer(stream, peer);
                        drop(place);
                    });
                }
                Err(e) => {
                    eprintln!("hvsock: accept failed: {e}");
                    thread::sleep(Duration::from_millis(50)); // e.g. out of fds: do not spin
                }
            }
        }
    });
    Ok(0)
}

/// One connection; whatever the client does, only this connection ends.
fn answer(stream: Stream, peer: hvsock::SocketAddr) {
    let text = match read_text(&stream) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            eprintln!("hvsock: {peer}: {e}");
            return;
        }
    };
    {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "connected: {peer}\n{text}");
        let _ = out.flush();
    }
    let _ = (&stream).write_all(format!("Hello: {text}").as_bytes());
    let _ = stream.shutdown(Shutdown::Both);
}

/// Reads until the client half-closes, or goes quiet after sending something (the article's
/// client sends once and waits for the answer with its side open).
fn read_text(mut stream: &Stream) -> io::Result<Vec<u8>> {
    stream.set_read_timeout(Some(FIRST_BYTE_WAIT))?;
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    while text.len() < MAX_TEXT {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                text.extend_from_slice(&buf[..n]);
                stream.set_read_timeout(Some(QUIET))?;
            }
            Err(e) if is_timeout(&e) && !text.is_empty() => break,
            Err(e) if is_timeout(&e) => {
                return Err(io::Error::new(e.kind(), "sent nothing in time; closed"));
            }
            Err(e) => return Err(e),
        }
    }
    text.truncate(MAX_TEXT);
    Ok(text)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}
