//! Hostile command lines: every command's arguments replaced, one at a time, by values that
//! can never be right. Each must end at once with exit 1 or 2 and exactly one line on stderr —
//! never a panic, never exit 0, never a hang. Run inside the lab guest: a mutation that still
//! names a real address would otherwise connect AF_VSOCK on this machine.
#![cfg(target_os = "linux")] // the lab is a Linux guest

mod common;
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::in_lab;

/// Valid command lines of the commands that open sockets; `@` marks each argument the fuzzer
/// replaces. These run in the lab guest.
const SOCKET_TEMPLATES: &[&[&str]] = &[
    &["server", "@lo", "@19000", "--count", "@1"],
    &["client", "@lo", "@19000", "--timeout", "@1", "--retries", "@0", "--retry-wait", "@0.2"],
    &["connect", "@vsock:1:5000", "--timeout", "@1", "--retries", "@0"],
    &["listen", "@vsock:any:5000", "--grace", "@1"],
    &["relay", "@tcp:127.0.0.1:1", "@vsock:1:5000", "--max-conns", "@4", "--timeout", "@1", "--count", "@1"],
    &["relay", "tcp:127.0.0.1:1", "@tcp:*:443", "--allow", "@example.com:443"],
];

/// The commands that open no VM socket: safe to run on this machine.
const OTHER_TEMPLATES: &[&[&str]] = &[
    &["guid", "@19000"],
    &["addr", "@hv:parent:19000"],
    &["list", "--port", "@5000"],
    &["info", "@--json"],
    &["register", "@19000", "--name", "MyGcs"],
    &["unregister", "@19000"],
    &["lab", "wait", "--timeout", "@1", "@3:5000"],
    &["lab", "run", "--timeout", "@1", "--guest", "true"],
];

/// Values no argument above accepts.
fn garbage() -> Vec<String> {
    let mut g: Vec<String> = [
        "",
        " ",
        "-1",
        "1e20",
        "1e-300",
        "NaN",
        "inf",
        "0x",
        "0xZZ",
        "99999999999",
        "4294967296",
        "18446744073709551616",
        "x\ry",
        "\u{1b}[31mred",
        "%n%s%x",
        "vsock:",
        "vsock:1",
        "vsock::",
        "hv:zz:zz",
        "tcp:[::1:80",
        "tcp::",
        "unix:",
        "hybrid::1",
        "hybrid:/x:",
        "b50f20e6-cf19-1796-ba60",
        "{b50f20e6-cf19-1796-ba60-d9cfe2d8fe29",
        "--no-such-flag",
        "-Z",
        "\u{7f}",
        "..:..",
        "*:*:*",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    g.push("9".repeat(5000));
    g.push("é".repeat(3000));
    g
}

/// Replacements that happen to be valid where they land: an allow entry is any HOST:PORT, a
/// count any positive 64-bit number.
fn valid_here(template: &[&str], at: usize, value: &str) -> bool {
    match template[at - 1] {
        "--allow" => value
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.trim().is_empty() && !h.contains('*') && p.parse::<u32>().is_ok()),
        "--count" => value.parse::<u64>().is_ok_and(|n| n > 0),
        _ => false,
    }
}

/// In the lab: each argument gets 7 of the garbage values, a different 10 for each, so that
/// every value meets several commands without a thousand slow guest process starts.
#[test]
fn hostile_arguments_to_socket_commands_never_panic_pass_or_spill() {
    in_lab("hostile_arguments_to_socket_commands_never_panic_pass_or_spill", || {
        fuzz(SOCKET_TEMPLATES, 7, 120)
    });
}

/// Here: every garbage value in every argument.
#[test]
fn hostile_arguments_to_other_commands_never_panic_pass_or_spill() {
    fuzz(OTHER_TEMPLATES, usize::MAX, 250);
}

fn fuzz(templates: &[&[&str]], per_argument: usize, at_least: usize) {
    let garbage = garbage();
    let mut runs = 0;
    let mut problems = Vec::new();
    let mut rotation = garbage.iter().cycle();
    for template in templates {
        for at in (0..template.len()).filter(|&i| template[i].starts_with('@')) {
            for bad in rotation.by_ref().take(per_argument.min(garbage.len())) {
                if valid_here(template, at, bad) {
                    continue;
                }
                let argv: Vec<String> = template
                    .iter()
                    .enumerate()
                    .map(|(i, a)| if i == at { bad.clone() } else { a.trim_start_matches('@').to_string() })
                    .collect();
                runs += 1;
                problems.extend(check(&argv));
            }
        }
        // The whole line with an unknown flag appended, and with its last argument dropped.
        let base: Vec<String> = template.iter().map(|a| a.trim_start_matches('@').to_string()).collect();
        for argv in [[base.clone(), vec!["--bogus".into()]].concat(), base[..base.len() - 1].to_vec()] {
            if argv != ["info"] {
                runs += 1;
                problems.extend(check(&argv));
            }
        }
    }
    println!("{runs} hostile command lines");
    assert!(runs >= at_least, "only {runs}");
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

/// What is wrong with how `hvsock ARGV` ended, if anything.
fn check(argv: &[String]) -> Option<String> {
    let mut child = common::hvsock_command()
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hvsock");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(10) {
            common::stop(&mut child); // a lab run among the arguments: with its guests
            return Some(format!("{argv:?}: still running after 10 s"));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let shown =
        format!("{:?}", argv.iter().map(|a| a.chars().take(40).collect::<String>()).collect::<Vec<_>>());
    match status.code() {
        Some(0) => Some(format!("{shown}: exit 0 on garbage")),
        Some(1 | 2) if err.lines().count() == 1 && err.starts_with("hvsock: ") && err.len() < 1200 => None,
        code => {
            Some(format!("{shown}: exit {code:?}, stderr {:?}", err.chars().take(300).collect::<String>()))
        }
    }
}
