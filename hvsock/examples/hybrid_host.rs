//! The host side of a Firecracker-style VM (hybrid vsock): reach guest port PORT through the
//! VM's Unix socket, send a request line, print the answer.
//!
//!   hybrid_host UDS_PATH PORT REQUEST

#[cfg(unix)]
use std::io::{BufRead, BufReader, Write};
#[cfg(unix)]
use std::time::Duration;

#[cfg(unix)]
fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [uds, port, request] = &args[..] else {
        eprintln!("usage: hybrid_host UDS_PATH PORT REQUEST");
        std::process::exit(2);
    };
    let port: u32 = port.parse().map_err(|_| std::io::Error::other(format!("`{port}` is not a port")))?;
    // Retries while the VM boots or its agent is not up yet.
    let (mut s, host_port) = hvsock::Connector::new()
        .timeout(Duration::from_secs(5))
        .retries(50)
        .retry_wait(Duration::from_millis(100))
        .connect_hybrid(uds, port)?;
    eprintln!("connected to guest port {port} (our side is host port {host_port})");
    writeln!(s, "{request}")?;
    let mut answer = String::new();
    BufReader::new(&s).read_line(&mut answer)?;
    print!("{answer}");
    writeln!(s, "quit")?;
    Ok(())
}

/// Hybrid vsock is Unix sockets: there is nothing to reach elsewhere.
#[cfg(not(unix))]
fn main() {
    eprintln!("hybrid vsock is the host side of Linux VMMs: Unix only");
    std::process::exit(1);
}
