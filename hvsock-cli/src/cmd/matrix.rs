//! `hvsock matrix`: the seed's experiment — which bind accepts a connection from where.

#[cfg(target_os = "linux")]
use serde_json::json;

/// Run the seed's experiment and print which bind accepts connections from where.
///
/// On Linux it runs for real in the lab: this machine is the host (parent, CID 2, reached
/// through hybrid sockets), guest A (CID 3) and guest B (CID 4) are child VMs. Servers on
/// guest A bind any / loopback / children / the host CID / its own CID; clients try from guest
/// A itself (by loopback and by its own CID), from the host (by guest A's CID), and from guest
/// B; guest A also tries the host's server through `parent`. O = answered, X = refused or
/// failed, `-` = a cell that cannot exist. On Windows it tries the binds with a loopback
/// client on this machine and shows the seed's Hyper-V observations as reference rows.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  hvsock matrix
  hvsock matrix --json")]
pub struct Args {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// The clients, in column order.
#[cfg(target_os = "linux")]
const CLIENTS: [(&str, &str); 5] = [
    ("a-lo", "A by loopback"),
    ("a-own", "A by own CID"),
    ("a-parent", "A -> parent"),
    ("host-a", "host -> A"),
    ("b-a", "B -> A"),
];

/// One row: where the server runs, its bind, and its port in the experiment.
#[cfg(target_os = "linux")]
struct Row {
    server: &'static str,
    bind: &'static str,
    port: u32,
}

#[cfg(target_os = "linux")]
const ROWS: [Row; 11] = [
    Row { server: "guest A", bind: "any", port: 8100 },
    Row { server: "guest A", bind: "loopback", port: 8101 },
    Row { server: "guest A", bind: "children", port: 8102 },
    Row { server: "guest A", bind: "host CID (2)", port: 8103 },
    Row { server: "guest A", bind: "own CID (3)", port: 8104 },
    // A hybrid-vsock host has no AF_VSOCK of its own: its binds cannot exist; its server is
    // the Unix socket where guest A's connections to CID 2 arrive.
    Row { server: "host", bind: "any", port: 0 },
    Row { server: "host", bind: "loopback", port: 0 },
    Row { server: "host", bind: "children", port: 0 },
    Row { server: "host", bind: "host CID (2)", port: 0 },
    Row { server: "host", bind: "own CID", port: 0 },
    Row { server: "host", bind: "hybrid vm3.sock_P", port: 8300 },
];

/// Which clients a row can have at all.
#[cfg(target_os = "linux")]
fn applies(row: &Row, client: &str) -> bool {
    match row.server {
        _ if row.port == 0 => false,
        "host" => client == "a-parent",
        _ => client != "a-parent",
    }
}

#[cfg(target_os = "linux")]
pub fn run(args: Args) -> anyhow::Result<u8> {
    let me = std::env::current_exe()?;
    let h = me.display();
    let binds = ["any", "lo", "children", "2", "3"];
    // Guest A: the servers, then its own clients, then it waits for the others to finish.
    let mut guest_a = String::from("exec 2>/dev/null\n");
    for (row, bind) in ROWS.iter().zip(binds) {
        guest_a +=
            &format!("{h} server {bind} {} >/dev/null 2>&1 || echo bindfail {} &\n", row.port, row.port);
    }
    guest_a += &format!("sleep 0.3; {h} listen vsock:any:8199 --keep-open --exec true &\n");
    for row in &ROWS[..5] {
        for (client, target) in [("a-lo", "lo"), ("a-own", "3")] {
            guest_a += &cell(&format!("{h} client {target} {} --timeout 2", row.port), row.port, client);
        }
    }
    guest_a +=
        &cell(&format!("{h} client parent 8300 --timeout 2 --retries 50 --retry-wait 0.1"), 8300, "a-parent");
    // One port per finisher: two at once on one port could meet a one-shot listener's exit.
    guest_a += &format!(
        "{h} listen vsock:any:8198 </dev/null >/dev/null; {h} listen vsock:any:8197 </dev/null >/dev/null\n"
    );
    // Guest B and the host: wait for guest A's servers, try each port, say they are done.
    let mut guest_b = format!("{h} connect vsock:3:8199 --retries 100 </dev/null >/dev/null\n");
    let mut host = format!(
        "({h} listen hybrid:$HVSOCK_LAB_VM3:8300 --exec 'printf \"Hello: \"; cat' 2>/dev/null &)\n\
         {h} connect hybrid:$HVSOCK_LAB_VM3:8199 --retries 100 </dev/null >/dev/null\n"
    );
    for row in &ROWS[..5] {
        guest_b += &cell(&format!("{h} client 3 {} --timeout 2", row.port), row.port, "b-a");
        host += &cell(
            &format!("echo World! | {h} connect hybrid:$HVSOCK_LAB_VM3:{} --timeout 2", row.port),
            row.port,
            "host-a",
        );
    }
    guest_b += &format!("{h} connect vsock:3:8197 --retries 300 </dev/null >/dev/null\n");
    host += &format!("{h} connect hybrid:$HVSOCK_LAB_VM3:8198 --retries 300 </dev/null >/dev/null\n");

    let out = std::process::Command::new(&me)
        .args(["lab", "run", "--timeout", "120", "--guest", &guest_a, "--guest", &guest_b, "--host", &host])
        .stdin(std::process::Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        anyhow::bail!(
            "the experiment did not finish: {}",
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
        );
    }
    let measured = |port: u32, client: &str| -> Option<bool> {
        let key = format!("cell {port} {client} ");
        text.lines()
            .find_map(|l| l.split_once("] ").map(|(_, rest)| rest)?.strip_prefix(&key).map(|r| r == "O"))
    };
    let bind_failed = |port: u32| text.contains(&format!("bindfail {port}"));
    let mut rows = Vec::new();
    for row in &ROWS {
        let cells: Vec<Option<bool>> =
            CLIENTS
                .iter()
                .map(|(client, _)| {
                    if applies(row, client) {
                        Some(measured(row.port, client).unwrap_or(false))
                    } else {
                        None
                    }
                })
                .collect();
        let note = if row.port == 0 {
            "cannot exist: the hybrid-vsock host has no AF_VSOCK; its server is the Unix socket below"
        } else if bind_failed(row.port) {
            "bind fails: no transport serves that CID here (EADDRNOTAVAIL)"
        } else {
            ""
        };
        rows.push((row, cells, note));
    }
    if args.json {
        let rows: Vec<_> = rows
            .iter()
            .map(|(r, cells, note)| {
                let cells: serde_json::Map<_, _> = CLIENTS
                    .iter()
                    .zip(cells)
                    .map(|((c, _), v)| (c.to_string(), v.map_or(json!(null), |ok| json!(ok))))
                    .collect();
                json!({"server": r.server, "bind": r.bind, "cells": cells, "note": note})
            })
            .collect();
        println!("{}", json!({"platform": "linux", "measured": true, "rows": rows}));
        return Ok(0);
    }
    println!(
        "Linux vsock, measured in the lab: this machine = host (CID 2), guest A = CID 3, guest B = CID 4"
    );
    print!("{:<9} {:<18}", "server", "bind");
    for (_, title) in CLIENTS {
        print!(" {title:<14}");
    }
    println!();
    for (r, cells, note) in &rows {
        print!("{:<9} {:<18}", r.server, r.bind);
        for c in cells {
            print!(" {:<14}", c.map_or("-", |ok| if ok { "O" } else { "X" }));
        }
        println!(" {note}");
    }
    Ok(0)
}

/// A shell line that tries one cell and prints `cell PORT CLIENT O|X`.
#[cfg(target_os = "linux")]
fn cell(cmd: &str, port: u32, client: &str) -> String {
    format!("if {cmd} 2>/dev/null | grep -q '^Hello: World!'; then echo 'cell {port} {client} O'; else echo 'cell {port} {client} X'; fi\n")
}

#[cfg(not(target_os = "linux"))]
pub fn run(args: Args) -> anyhow::Result<u8> {
    use serde_json::json;
    use std::io::{Read, Write};
    use std::time::Duration;

    let mut measured = Vec::new();
    for (bind, port) in [("any", 0x7ff0_0001u32), ("loopback", 0x7ff0_0002), ("children", 0x7ff0_0003)] {
        let ok = (|| -> std::io::Result<bool> {
            let l = hvsock::Listener::bind(format!("hv:{bind}:{port}"))?;
            let mut c =
                hvsock::Stream::connect_timeout(format!("hv:loopback:{port}"), Duration::from_secs(2))?;
            let (mut s, _) = l.accept()?;
            c.write_all(b"ping")?;
            let mut b = [0u8; 4];
            s.read_exact(&mut b)?;
            Ok(&b == b"ping")
        })();
        measured.push((bind, ok.map_err(|e| crate::diagnose::socket_error("not available", e).to_string())));
    }
    // The seed's observations on a Hyper-V host and VM (reported, not measured here).
    let reported = [
        ("host", "wildcard", "VM -> parent: O, same host by loopback: O"),
        ("VM", "wildcard", "host -> VM by ID: O, inside the VM by its ID: O"),
        ("host", "loopback", "VM -> parent: O (!), same host by loopback: O"),
        ("VM", "loopback", "host -> VM by ID: X, inside the VM by loopback: O"),
        ("host", "children", "VM -> parent: O, same host by loopback: O"),
        ("VM", "children", "host -> VM by ID: X, inside the VM by loopback: O"),
    ];
    if args.json {
        let m: Vec<_> = measured
            .iter()
            .map(|(b, r)| json!({"bind": b, "loopback_client": r.as_ref().ok(), "error": r.as_ref().err()}))
            .collect();
        let r: Vec<_> =
            reported.iter().map(|(s, b, c)| json!({"server": s, "bind": b, "cells": c})).collect();
        println!("{}", json!({"platform": "windows", "measured": m, "reported_not_measured": r}));
        return Ok(0);
    }
    println!("Measured on this machine (server and loopback client here):");
    for (b, r) in &measured {
        match r {
            Ok(ok) => println!("  bind {b:<9} loopback client: {}", if *ok { "O" } else { "X" }),
            Err(e) => println!("  bind {b:<9} loopback client: {e}"),
        }
    }
    println!("Reported, not measured (the seed's Hyper-V experiment):");
    for (s, b, c) in reported {
        println!("  server on {s:<4} bind {b:<9} {c}");
    }
    Ok(0)
}
