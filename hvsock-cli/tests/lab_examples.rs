//! The library's examples (hvsock/examples), run for real: in lab guests, with this machine as
//! the hybrid-vsock host where the example is the host's side.
#![cfg(target_os = "linux")] // the lab is a Linux guest

mod common;
use common::{assert_ok, lines_of, stdout};

/// Where cargo put the examples of this build (target/<profile>/examples).
fn example(name: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("examples").join(name);
    assert!(
        path.exists(),
        "{} missing: build the examples first (cargo build --workspace --all-targets)",
        path.display()
    );
    path.display().to_string()
}

#[test]
fn every_example_does_its_job() {
    let (agent, host, echo, retries) =
        (example("guest_agent"), example("hybrid_host"), example("async_echo"), example("connector_retries"));
    let o = common::lab_scenario_with(
        // Guest 3, serving until the others are done: the agent, and the async echo started
        // 1 s late on purpose (time is the case: the connector on guest 4 retries until it is up).
        &[
            "--guest-service",
            &format!("{agent} 5000 --once 2>/dev/null & sleep 1; exec {echo} 5001 2>/dev/null"),
        ],
        // Guest 4: the connector, to the echo on guest 3 that is not up yet.
        &[&format!("{retries} vsock:3:5001 'echo me'")],
        // This machine: the host side of guest 3, through its hybrid socket.
        &[&format!("$HVSOCK lab wait 3:5000; {host} $HVSOCK_LAB_VM3 5000 whoami")],
    );
    assert_ok(&o);
    let out = stdout(&o);
    assert_eq!(lines_of(&out, "guest 4"), ["echo me"], "{out}");
    let host_said = lines_of(&out, "host 1");
    assert!(host_said.len() == 1 && host_said[0].starts_with("you are vsock:2:"), "{out}");
}
