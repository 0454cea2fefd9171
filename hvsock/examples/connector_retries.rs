//! A client that waits for its server: the connector tries again while nothing listens yet
//! (a VM still booting, a service still starting), like go-winio's HvsockDialer, then sends a
//! text and prints the answer.
//!
//!   connector_retries ENDPOINT TEXT

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [endpoint, text] = &args[..] else {
        eprintln!("usage: connector_retries ENDPOINT TEXT");
        std::process::exit(2);
    };
    let mut s = hvsock::Connector::new()
        .timeout(Duration::from_secs(2))
        .retries(100)
        .retry_wait(Duration::from_millis(100))
        .connect(endpoint.as_str())?;
    s.write_all(text.as_bytes())?;
    s.shutdown(Shutdown::Write)?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    println!("{answer}");
    Ok(())
}
