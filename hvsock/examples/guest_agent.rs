//! A guest agent: inside a VM, answers the host on vsock port 5000 (or the port given). Each
//! request is a line; the answer is one line back, then the next request. `quit` ends the
//! session. The same program serves Hyper-V sockets on Windows (`hv:any:5000`).
//!
//!   guest_agent [PORT] [--once]

use std::io::{BufRead, BufReader, Write};

use hvsock::Listener;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = args.iter().find_map(|a| a.parse::<u32>().ok()).unwrap_or(5000);
    let once = args.iter().any(|a| a == "--once");
    let listener = Listener::bind(format!("vsock:any:{port}").as_str())?;
    eprintln!("agent listening on {}", listener.local_addr()?);
    for stream in listener.incoming() {
        let stream = stream?;
        let peer = stream.peer_addr()?;
        let mut out = stream.try_clone()?;
        for line in BufReader::new(stream).lines() {
            let line = line?;
            let answer = match line.trim() {
                "quit" => break,
                "hostname" => std::fs::read_to_string("/etc/hostname").unwrap_or_default().trim().to_string(),
                "whoami" => format!("you are {peer}"),
                other => format!("unknown request `{other}` (try hostname, whoami, quit)"),
            };
            writeln!(out, "{answer}")?;
        }
        if once {
            break;
        }
    }
    Ok(())
}
