//! `hvsock matrix`: the Hyper-V socket wildcards article's experiment — which bind accepts a connection from where.

#[cfg(target_os = "linux")]
use serde_json::json;

#[cfg(target_os = "linux")]
use crate::output::out;
use crate::output::outln;

/// Run the Hyper-V socket wildcards article's experiment and print which bind accepts connections from where.
///
/// On Linux it runs for real in the lab: this machine is the host (parent, CID 2, reached
/// through hybrid sockets), guest A (CID 3) and guest B (CID 4) are child VMs. Servers on
/// guest A bind any / loopback / children / the host CID / its own CID; clients try from guest
/// A itself (by loopback and by its own CID), from the host (by guest A's CID), and from guest
/// B; guest A also tries the host's server through `parent`. O = answered, X = refused or
/// failed, `-` = a cell that cannot exist. On Windows it tries the binds with a loopback
/// client on this machine and shows the article's Hyper-V observations as reference rows.
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
const CLIENTS: [(&str, &str); 8] = [
    ("a-lo", "A by loopback"),
    ("a-own", "A by own CID"),
    ("a-parent", "A -> parent"),
    ("host-a", "hybrid host -> A"),
    ("kvm-a", "KVM host -> A"),
    ("b-a", "B -> A"),
    ("h-lo", "host by loopback"),
    ("h-own", "host by own CID"),
];

/// One row: where the server runs, its bind, the `server` argument, and its port.
#[cfg(target_os = "linux")]
struct Row {
    server: &'static str,
    bind: &'static str,
    vm: &'static str,
    port: u32,
}

#[cfg(target_os = "linux")]
const GUEST_ROWS: [Row; 5] = [
    Row { server: "guest A", bind: "any", vm: "any", port: 8100 },
    Row { server: "guest A", bind: "loopback", vm: "lo", port: 8101 },
    Row { server: "guest A", bind: "children", vm: "children", port: 8102 },
    Row { server: "guest A", bind: "host CID (2)", vm: "2", port: 8103 },
    Row { server: "guest A", bind: "own CID (3)", vm: "3", port: 8104 },
];

/// A hybrid-vsock host has no AF_VSOCK: its server is the Unix socket where guest A's
/// connections to CID 2 arrive.
#[cfg(target_os = "linux")]
const HYBRID_ROW: Row = Row { server: "hybrid host", bind: "hybrid vm3.sock_P", vm: "", port: 8300 };

/// The KVM-style host (the lab's VM host, CID 2).
#[cfg(target_os = "linux")]
const KVM_ROWS: [Row; 4] = [
    Row { server: "KVM host", bind: "any", vm: "any", port: 8400 },
    Row { server: "KVM host", bind: "loopback", vm: "lo", port: 8401 },
    Row { server: "KVM host", bind: "children (= 2)", vm: "children", port: 8402 },
    Row { server: "KVM host", bind: "own CID (2)", vm: "2", port: 8403 },
];

/// Which clients a row can have at all.
#[cfg(target_os = "linux")]
fn applies(row: &Row, client: &str) -> bool {
    match row.server {
        "guest A" => matches!(client, "a-lo" | "a-own" | "host-a" | "kvm-a" | "b-a"),
        "hybrid host" => client == "a-parent",
        _ => matches!(client, "a-parent" | "h-lo" | "h-own"),
    }
}

/// Servers of `rows` in the background, with `bindfail PORT` for the binds that fail.
#[cfg(target_os = "linux")]
fn servers(h: &str, rows: &[Row]) -> String {
    rows.iter()
        .map(|r| format!("({h} server {} {} >/dev/null 2>&1 || echo bindfail {}) &\n", r.vm, r.port, r.port))
        .collect()
}

/// Guest A's rows, tried by `client` connecting to `target`.
#[cfg(target_os = "linux")]
fn tries(h: &str, rows: &[Row], target: &str, client: &str) -> String {
    rows.iter()
        .map(|r| cell(&format!("{h} client {target} {} --timeout 2", r.port), r.port, client))
        .collect()
}

/// Starts one scenario of the experiment in the lab.
#[cfg(target_os = "linux")]
fn spawn_lab(me: &std::path::Path, args: &[&str]) -> std::io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(me);
    // SAFETY: prctl in the child before exec: if the matrix dies, its labs stop (and clean up).
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    cmd.args(["lab", "run", "--timeout", "120"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
}

#[cfg(target_os = "linux")]
pub fn run(args: Args) -> anyhow::Result<u8> {
    let me = std::env::current_exe()?;
    let h = me.display().to_string();
    let h = h.as_str();
    // Which guest rows bind at all: those are the ports worth waiting for.
    let listening = "8100 8101 8104";

    // The hybrid host: guest A's servers; guest A's own clients; guest B's and the host's
    // clients; guest A against the host's Unix-socket server through `parent`.
    // Everyone else waits for guest A's servers that can bind.
    let wait_for_a = format!(
        "{h} lab wait {}\n",
        listening.split(' ').map(|p| format!("3:{p}")).collect::<Vec<_>>().join(" ")
    );
    let mut guest_a = servers(h, &GUEST_ROWS);
    guest_a += &format!("{h} lab wait {listening}\n");
    guest_a += &tries(h, &GUEST_ROWS, "lo", "a-lo");
    guest_a += &tries(h, &GUEST_ROWS, "3", "a-own");
    guest_a += &format!("{h} lab wait 2:8300\n");
    guest_a += &cell(&format!("{h} client parent 8300 --timeout 2"), 8300, "a-parent");
    let guest_b = wait_for_a.clone() + &tries(h, &GUEST_ROWS, "3", "b-a");
    let mut host = wait_for_a.clone();
    for r in &GUEST_ROWS {
        host += &cell(
            &format!("echo World! | {h} connect hybrid:$HVSOCK_LAB_VM3:{} --timeout 2", r.port),
            r.port,
            "host-a",
        );
    }
    let hybrid_server =
        format!("{h} listen hybrid:$HVSOCK_LAB_VM3:8300 --keep-open --exec 'printf \"Hello: \"; dd bs=65536 count=1 status=none'");
    let hybrid = spawn_lab(
        &me,
        &["--guest", &guest_a, "--guest", &guest_b, "--host-service", &hybrid_server, "--host", &host],
    )?;

    // The KVM host: its servers bound four ways, guest A's servers again; the host tries
    // guest A by CID and itself by loopback and by CID 2, guest A tries the host as `parent`.
    let kvm_ports = KVM_ROWS.iter().map(|r| format!("2:{}", r.port)).collect::<Vec<_>>().join(" ");
    let mut vm_host = servers(h, &KVM_ROWS);
    vm_host += &format!(
        "{h} lab wait {}\n",
        KVM_ROWS.iter().map(|r| r.port.to_string()).collect::<Vec<_>>().join(" ")
    );
    vm_host += &wait_for_a;
    vm_host += &tries(h, &GUEST_ROWS, "3", "kvm-a");
    vm_host += &tries(h, &KVM_ROWS, "lo", "h-lo");
    vm_host += &tries(h, &KVM_ROWS, "2", "h-own");
    let mut guest_k = servers(h, &GUEST_ROWS);
    guest_k += &format!("{h} lab wait {kvm_ports}\n");
    guest_k += &tries(h, &KVM_ROWS, "parent", "a-parent");
    // Guest A's servers stay up until the host has tried them all.
    guest_k += &format!("{h} lab wait 2:8499\n");
    // Then it says it is done by listening on 8499, and serves until the guest has finished.
    vm_host += &format!("{h} server any 8499 >/dev/null 2>&1\n");
    let kvm = spawn_lab(&me, &["--guest", &guest_k, "--vm-host-service", &vm_host])?;

    let (hybrid, kvm) = (hybrid.wait_with_output()?, kvm.wait_with_output()?);
    for out in [&hybrid, &kvm] {
        if !out.status.success() {
            anyhow::bail!(
                "the experiment did not finish: {}",
                String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
            );
        }
    }
    let hybrid_text = String::from_utf8_lossy(&hybrid.stdout).into_owned();
    let kvm_text = String::from_utf8_lossy(&kvm.stdout).into_owned();
    let measured = |text: &str, port: u32, client: &str| -> Option<bool> {
        let key = format!("cell {port} {client} ");
        text.lines()
            .find_map(|l| l.split_once("] ").map(|(_, rest)| rest)?.strip_prefix(&key).map(|r| r == "O"))
    };
    let mut rows = Vec::new();
    for row in GUEST_ROWS.iter().chain([&HYBRID_ROW]).chain(&KVM_ROWS) {
        let cells: Vec<Option<bool>> = CLIENTS
            .iter()
            .map(|(client, _)| {
                let text =
                    if row.server == "KVM host" || *client == "kvm-a" { &kvm_text } else { &hybrid_text };
                applies(row, client).then(|| measured(text, row.port, client).unwrap_or(false))
            })
            .collect();
        let note = if row.port == HYBRID_ROW.port {
            "the hybrid host has no AF_VSOCK binds: its server is this Unix socket"
        } else if hybrid_text.contains(&format!("bindfail {}", row.port))
            || kvm_text.contains(&format!("bindfail {}", row.port))
        {
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
        outln!("{}", json!({"platform": "linux", "measured": true, "rows": rows}));
        return Ok(0);
    }
    outln!(
        "Linux vsock, measured in the lab: guest A = CID 3, guest B = CID 4; the host as a hybrid-vsock host \
         (this machine, Unix sockets) and as a KVM host (a VM with CID 2)"
    );
    out!("{:<12} {:<18}", "server", "bind");
    for (_, title) in CLIENTS {
        out!(" {title:<17}");
    }
    outln!();
    for (r, cells, note) in &rows {
        out!("{:<12} {:<18}", r.server, r.bind);
        for c in cells {
            out!(" {:<17}", c.map_or("-", |ok| if ok { "O" } else { "X" }));
        }
        outln!(" {note}");
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
    // The article's observations on a Hyper-V host and VM (reported, not measured here).
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
        outln!("{}", json!({"platform": "windows", "measured": m, "reported_not_measured": r}));
        return Ok(0);
    }
    outln!("Measured on this machine (server and loopback client here):");
    for (b, r) in &measured {
        match r {
            Ok(ok) => outln!("  bind {b:<9} loopback client: {}", if *ok { "O" } else { "X" }),
            Err(e) => outln!("  bind {b:<9} loopback client: {e}"),
        }
    }
    outln!("Reported, not measured (the article's Hyper-V experiment):");
    for (s, b, c) in reported {
        outln!("  server on {s:<4} bind {b:<9} {c}");
    }
    Ok(0)
}
