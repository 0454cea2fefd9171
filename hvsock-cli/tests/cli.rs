//! The command line outside the lab: nothing here connects a socket.

mod common;
use common::{hvsock, stderr, stdout};

#[test]
fn guid_converts_both_ways() {
    let o = hvsock(&["guid", "19000"]);
    assert_eq!(stdout(&o), "00004a38-facb-11e6-bd58-64006a7986d3\n");
    let o = hvsock(&["guid", "{00004A38-FACB-11E6-BD58-64006A7986D3}"]);
    assert_eq!(stdout(&o), "19000\n");
    let o = hvsock(&["guid", "0x7fffffff"]);
    assert_eq!(stdout(&o), "7fffffff-facb-11e6-bd58-64006a7986d3\n");
    // hv_sock's ephemeral ports (connecting sockets) are template GUIDs too.
    let o = hvsock(&["guid", "2147483648"]);
    assert_eq!(stdout(&o), "80000000-facb-11e6-bd58-64006a7986d3\n");
    let o = hvsock(&["guid", "80001234-facb-11e6-bd58-64006a7986d3"]);
    assert_eq!(stdout(&o), "2147488308\n");
}

#[test]
fn guid_rejects_what_it_cannot_convert() {
    for (arg, msg) in [
        ("9866c7bc-0c89-4cb0-9427-5b526d1ae83b", "not a VSOCK template GUID"),
        ("4294967296", "`4294967296` is not a service"),
        ("ssh", "`ssh` is not a service"),
    ] {
        let o = hvsock(&["guid", arg]);
        assert!(!o.status.success(), "{arg}");
        let err = stderr(&o);
        assert!(err.contains(msg), "{arg}: {err}");
        assert_eq!(err.lines().count(), 1, "{arg}: {err}");
        assert!(stdout(&o).is_empty());
    }
}

#[test]
fn addr_shows_both_platforms_and_bytes() {
    let o = hvsock(&["addr", "hv:parent:19000"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.contains("CID 2, port 19000"), "{out}");
    assert!(out.contains("16 bytes: 28 00 00 00 38 4a 00 00 02 00 00 00 00 00 00 00"), "{out}");
    assert!(out.contains("VM ID a42e7cda-d03f-480c-9cc2-a4de20abb878 (parent)"), "{out}");
    assert!(
        out.contains(
            "36 bytes: 22 00 00 00 da 7c 2e a4 3f d0 0c 48 9c c2 a4 de 20 ab b8 78 38 4a 00 00 cb fa e6 11"
        ),
        "{out}"
    );
}

#[test]
fn addr_says_which_end_a_name_cannot_be() {
    let out = stdout(&hvsock(&["addr", "vsock:any:8000"]));
    assert!(out.contains("bind     CID 4294967295, port 8000"), "{out}");
    assert!(out.contains("connect  not possible: any: only a listener can bind to any"), "{out}");
    let out = stdout(&hvsock(&["addr", "vsock:7:22"]));
    assert!(out.contains("connect  CID 7, port 22"), "{out}");
    assert!(out.contains("not possible: 7: Hyper-V sockets address VMs by VM ID GUID, not by CID"), "{out}");
    let o = hvsock(&["addr", "tcp:127.0.0.1:80"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a VM socket"));
}

#[test]
fn bad_arguments_get_one_line_and_exit_2() {
    for (args, msg) in [
        (&["client", "nowhere"][..], "`nowhere` is not a VM"),
        (&["server", "lo", "http"][..], "`http` is not a service"),
        (&["client", "--timeout", "-3"][..], "`-3` is not a number of seconds"),
        (&["addr", "vsock:1"][..], "missing the port"),
        (&["addr", "hybrid:/tmp/v.sock"][..], "missing the port (expected hybrid:UDS_PATH:PORT)"),
        (&["connect", "hv-seqpacket:parent:1"][..], "Hyper-V sockets are stream only"),
        (&["listen", "vsock-seqpacket:any"][..], "missing the port (expected vsock-seqpacket:CID|NAME:PORT)"),
        (&["guid"][..], "required arguments were not provided"),
        (&["frobnicate"][..], "unrecognized subcommand"),
        (&["lab", "run"][..], "required arguments were not provided"),
        // Numbers no platform can honour, and that used to panic.
        (&["client", "--timeout", "1e20"][..], "`1e20` is not a number of seconds from 0.001 to"),
        (&["client", "--timeout", "1e-300"][..], "`1e-300` is not a number of seconds"),
        (&["client", "--timeout", "1e17"][..], "`1e17` is not a number of seconds"),
        (&["relay", "tcp:127.0.0.1:1", "tcp:127.0.0.1:2", "--timeout", "1e20"][..], "`1e20`"),
        (&["relay", "tcp:127.0.0.1:1", "tcp:127.0.0.1:2", "--max-conns", "0"][..], "0 is not in 1..=1000000"),
        (
            &["relay", "tcp:127.0.0.1:1", "tcp:127.0.0.1:2", "--max-conns", "2305843009213693952"][..],
            "--max-conns <N>",
        ),
        (&["relay", "tcp:127.0.0.1:1", "tcp:127.0.0.1:2", "--count", "0"][..], "0 is not in 1.."),
        (&["relay", "tcp:127.0.0.1:1", "tcp:127.0.0.1:2", "--threads", "0"][..], "0 is not in 1..=1024"),
        (&["server", "--count", "0"][..], "0 is not in 1.."),
        // FROM and TO alike: a bad endpoint, or a VM name that is not there, is a usage error
        // (TO's used to be found only once the relay ran, and exit 1).
        (
            &["relay", "tcp:127.0.0.1:1", "vsock:lo:http"][..],
            "<TO>: endpoint `vsock:lo:http`: `http` is not a service",
        ),
        (
            &["relay", "vsock:lo:http", "tcp:127.0.0.1:1"][..],
            "<FROM>: endpoint `vsock:lo:http`: `http` is not a service",
        ),
        (
            &["relay", "tcp:127.0.0.1:1", "vsock:nosuchvm:5"][..],
            "<TO>: endpoint `vsock:nosuchvm:5`: `nosuchvm` is not a VM name here",
        ),
        (
            &["relay", "vsock:nosuchvm:5", "tcp:127.0.0.1:1"][..],
            "<FROM>: endpoint `vsock:nosuchvm:5`: `nosuchvm` is not a VM name here",
        ),
        (
            &["connect", "vsock:nosuchvm:5"][..],
            "<ENDPOINT>: endpoint `vsock:nosuchvm:5`: `nosuchvm` is not a VM name",
        ),
        // Untrusted text is escaped and cut, not echoed raw and whole.
        (&["connect", "tcp:[::1:80"][..], "is not a bracketed IPv6 address"),
        (&["client", "a\rb"][..], "`a\\rb` is not a VM"),
    ] {
        let o = hvsock(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("hvsock: ") && err.contains(msg), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let long = "x".repeat(20_000); // Windows command lines hold 32767 characters
    let o = hvsock(&["client", &long]);
    let err = stderr(&o);
    assert_eq!((o.status.code(), err.lines().count()), (Some(2), 1), "{}", &err[..200]);
    assert!(err.len() < 400 && err.contains("… (20000 bytes)"), "{err}");
}

#[test]
#[cfg(target_os = "linux")]
fn names_that_cannot_be_connected_to_fail_before_any_socket() {
    for (vm, msg) in [
        ("any", "only a listener can bind to any"),
        ("children", "to connect to a child VM, give its CID"),
        ("broadcast", "vsock has no broadcast address"),
        ("b50f20e6-cf19-1796-ba60-d9cfe2d8fe29", "vsock addresses VMs by CID"),
    ] {
        let o = hvsock(&["client", vm]);
        assert_eq!(o.status.code(), Some(1), "{vm}");
        assert!(stderr(&o).contains(msg), "{vm}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "{vm}: it must not have connected");
    }
}

#[test]
#[cfg(not(windows))]
fn register_is_windows_only_here() {
    let o = hvsock(&["register"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "hvsock: register is only supported on Windows (Hyper-V lists services in the host's registry)\n"
    );
    let o = hvsock(&["/register"]);
    assert!(stderr(&o).contains("only supported on Windows"));
}

#[test]
fn every_command_has_help_with_an_example() {
    /// The commands `hvsock PATH --help` lists (clap's own `help` aside).
    fn subcommands(path: &[String]) -> Vec<String> {
        let args: Vec<&str> = path.iter().map(String::as_str).chain(["--help"]).collect();
        let o = hvsock(&args);
        assert!(o.status.success(), "{path:?}");
        let out = stdout(&o);
        let listed = out.lines().skip_while(|l| *l != "Commands:").skip(1).take_while(|l| !l.is_empty());
        listed
            .filter_map(|l| l.split_whitespace().next())
            .filter(|c| *c != "help")
            .map(String::from)
            .collect()
    }
    // Walked from the top, so a new command cannot be missed.
    let mut todo = vec![Vec::new()];
    let mut checked = 0;
    while let Some(path) = todo.pop() {
        let below = subcommands(&path);
        if below.is_empty() {
            let args: Vec<&str> = path.iter().map(String::as_str).chain(["--help"]).collect();
            let out = stdout(&hvsock(&args));
            assert!(out.contains("Examples:") && out.contains("hvsock "), "{path:?}: {out}");
            checked += 1;
        }
        todo.extend(below.into_iter().map(|c| [path.clone(), vec![c]].concat()));
    }
    assert!(checked >= 19, "only {checked} commands found");
}

#[test]
#[cfg(target_os = "linux")]
fn lab_without_uml_names_the_package() {
    let o = common::hvsock_command()
        .args(["lab", "run", "--", "true"])
        .env("HVSOCK_UML", "/nonexistent/linux.uml")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125));
    let err = stderr(&o);
    assert!(err.contains("apt-get install user-mode-linux"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// wine (like a Windows without Hyper-V) has no AF_HYPERV: socket() fails with WSAEAFNOSUPPORT,
/// which must read as one line saying so. On a Hyper-V host nothing listens on this service.
#[test]
#[cfg(windows)]
fn hyper_v_missing_or_nothing_listening_is_one_line() {
    let o = hvsock(&["client", "lo", "0x7ffffff0", "--timeout", "1"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("hvsock: cannot connect to hv:loopback:7ffffff0-facb-11e6-bd58-64006a7986d3: "),
        "{err}"
    );
    assert!(
        err.contains("Hyper-V sockets are not available on this system (os error 10047)")
            || err.contains("nothing is listening there"),
        "{err}"
    );
}

/// The registry under wine is real: the whole cycle, by the CLI, with a name lookup.
#[test]
#[cfg(windows)]
fn register_services_lookup_unregister_under_wine() {
    let name = "hvsock-cli-test";
    let guid = "7ffffff2-facb-11e6-bd58-64006a7986d3";
    let _ = hvsock(&["unregister", guid]);
    let o = hvsock(&["register", "0x7ffffff2", "--name", name]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("Registered: {guid} ({name})\n"));
    assert!(hvsock(&["register", "0x7ffffff2", "--name", name]).status.success(), "idempotent");

    let json = stdout(&hvsock(&["services", "--json"]));
    assert!(
        json.contains(&format!("{{\"id\":\"{guid}\",\"name\":\"{name}\",\"vsock_port\":2147483634}}")),
        "{json}"
    );
    let table = stdout(&hvsock(&["services"]));
    assert!(
        table.lines().any(|l| l.starts_with(guid) && l.contains("2147483634") && l.ends_with(name)),
        "{table}"
    );

    // The name works wherever a service goes: here it resolves to the GUID in the address.
    let o = hvsock(&["client", "lo", name, "--timeout", "1"]);
    assert!(stderr(&o).contains(&format!("hv:loopback:{guid}")), "{}", stderr(&o));
    assert!(stdout(&hvsock(&["addr", &format!("hv:parent:{name}")])).contains(guid));

    assert_eq!(stdout(&hvsock(&["unregister", name])), format!("Unregistered: {guid}\n"));
    let again = hvsock(&["unregister", guid]);
    assert!(again.status.success());
    assert_eq!(stdout(&again), format!("Not registered: {guid}\n"));
    assert!(!stdout(&hvsock(&["services"])).contains(guid));
}

/// wine is no Hyper-V guest and has no AF_HYPERV provider; with a VirtualMachineId written
/// where Hyper-V puts it, info reads it back.
#[test]
#[cfg(windows)]
fn info_under_wine() {
    const KEY: &str = r"SOFTWARE\Microsoft\Virtual Machine\Guest\Parameters";
    let _ = windows_registry::LOCAL_MACHINE.create(KEY).and_then(|k| k.remove_value("VirtualMachineId"));
    let out = stdout(&hvsock(&["info"]));
    assert!(out.contains("Hyper-V guest   no (no VirtualMachineId"), "{out}");
    assert!(out.contains("VM ID           not available"), "{out}");
    assert!(
        out.contains("AF_HYPERV       not available (no Winsock provider for address family 34)"),
        "{out}"
    );

    let vm = "b50f20e6-cf19-1796-ba60-d9cfe2d8fe29";
    let key = windows_registry::LOCAL_MACHINE.create(KEY).unwrap();
    key.set_string("VirtualMachineId", vm.to_uppercase()).unwrap();
    let json = stdout(&hvsock(&["info", "--json"]));
    key.remove_value("VirtualMachineId").unwrap();
    assert!(json.contains("\"hyperv_guest\":true"), "{json}");
    assert!(json.contains(&format!("\"vm_id\":\"{vm}\"")), "{json}");
    assert!(json.contains("\"providers\":[]"), "{json}");
}

#[test]
fn lines_is_for_message_endpoints() {
    for args in [&["connect", "tcp:127.0.0.1:1", "--lines"][..], &["listen", "vsock:any:1", "--lines"][..]] {
        let o = hvsock(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = stderr(&o);
        assert!(
            err.contains("--lines maps lines to messages") && err.lines().count() == 1,
            "{args:?}: {err}"
        );
        assert!(!err.contains("listening on"), "{args:?}: it must not have bound anything");
    }
}

#[test]
fn relay_checks_its_allowlist_before_listening() {
    for (args, msg) in [
        (
            &["relay", "tcp:127.0.0.1:1", "tcp:127.0.0.1:2", "--allow", "x:1"][..],
            "a fixed TO is its own allowlist",
        ),
        (&["relay", "tcp:127.0.0.1:1", "tcp:*:443"][..], "a wildcard TO needs --allow"),
        (
            &["relay", "tcp:127.0.0.1:1", "tcp:*:443", "--allow", "localhost"][..],
            "allow entry `localhost`: expected HOST:PORT",
        ),
        (
            &["relay", "tcp:127.0.0.1:1", "udp:*:443", "--allow", "a:1"][..],
            "wildcards work for tcp:, vsock: and hv: targets",
        ),
        // Message endpoints only with message endpoints: a stream would run messages together.
        (
            &["relay", "vsock-seqpacket:any:1", "tcp:127.0.0.1:2"][..],
            "FROM carries messages (SOCK_SEQPACKET) and TO a byte stream",
        ),
        (
            &["relay", "tcp:127.0.0.1:1", "unix-seqpacket:/tmp/x"][..],
            "TO carries messages (SOCK_SEQPACKET) and FROM",
        ),
        // What no client could ever be relayed to.
        #[cfg(target_os = "linux")]
        (&["relay", "tcp:127.0.0.1:1", "vsock:any:5"][..], "only a listener can bind to any"),
        (&["relay", "tcp:127.0.0.1:1", "-"][..], "concurrent clients would mix their data"),
        #[cfg(target_os = "linux")]
        (&["relay", "tcp:127.0.0.1:1", "vsock:broadcast:5"][..], "broadcast"),
        #[cfg(target_os = "linux")]
        (
            &["relay", "tcp:127.0.0.1:1", "hv:lo:9866c7bc-0c89-4cb0-9427-5b526d1ae83b"][..],
            "not a VSOCK template GUID",
        ),
    ] {
        let o = hvsock(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = stderr(&o);
        assert!(err.contains(msg), "{args:?}: {err}");
        assert!(!err.contains("listening on"), "{args:?}: it must not have bound anything");
    }
}

/// A netlink dump; no vsock socket is touched. Machines without vsock_diag get the advice.
#[test]
#[cfg(target_os = "linux")]
fn list_outside_the_lab_lists_or_names_the_module() {
    let o = hvsock(&["list"]);
    if o.status.success() {
        assert!(stdout(&o).starts_with("STATE"), "{}", stdout(&o));
    } else {
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(
            stderr(&o),
            "hvsock: cannot list vsock sockets: the vsock_diag kernel module is not loaded (load it: modprobe vsock_diag)\n"
        );
    }
}

/// Bytes without a newline reach stdout at once, both ways (TCP only: no VM socket here).
#[test]
fn stdout_gets_every_byte_without_waiting_for_a_newline() {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::process::Stdio;
    use std::time::Duration;

    fn first_bytes(child: &mut std::process::Child, n: usize) -> Vec<u8> {
        let mut out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; n];
            let r = out.read_exact(&mut buf).map(|()| buf);
            let _ = tx.send(r);
        });
        let got = rx.recv_timeout(Duration::from_secs(3)).expect("nothing reached stdout in 3 s").unwrap();
        let _ = child.kill();
        let _ = child.wait();
        got
    }

    // listen: the peer's "abc" with no newline, and the connection left open
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut listen = common::hvsock_command()
        .args(["listen", &format!("tcp:127.0.0.1:{port}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut peer = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    peer.write_all(b"abc").unwrap();
    assert_eq!(first_bytes(&mut listen, 3), b"abc");

    // connect: the server's "xyz" with no newline
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let mut connect = common::hvsock_command()
        .args(["connect", &format!("tcp:127.0.0.1:{port}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (mut s, _) = server.accept().unwrap();
    s.write_all(b"xyz").unwrap();
    assert_eq!(first_bytes(&mut connect, 3), b"xyz");
}

/// `listen hybrid:` says what it is (Unix sockets only: nothing here touches vsock).
#[test]
#[cfg(target_os = "linux")]
fn listen_hybrid_names_itself_hybrid() {
    use std::io::Read;
    let dir = std::env::temp_dir().join(format!("hvsock-listen-name-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let vm = dir.join("vm.sock");
    let mut child = common::hvsock_command()
        .args(["listen", &format!("hybrid:{}:5000", vm.display())])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while err.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = String::from_utf8(line).unwrap();
    assert!(line.starts_with(&format!("listening on hybrid:{}:5000 (", vm.display())), "{line}");
    assert!(line.contains("vm.sock_5000"), "{line}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Output that cannot be written is one line and exit 1 (a full disk), or a quiet exit 141
/// (the reader went away, as `| head -1` does) — never a panic.
#[test]
#[cfg(target_os = "linux")] // /dev/full
fn output_that_cannot_be_written_is_not_a_panic() {
    use std::process::Stdio;
    for args in [&["guid", "19000"][..], &["addr", "vsock:3:5000"], &["info"], &["info", "--json"]] {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let o = common::hvsock_command().args(args).stdout(full).stdin(Stdio::null()).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert_eq!(
            stderr(&o),
            "hvsock: cannot write to standard output: No space left on device (os error 28)\n",
            "{args:?}"
        );

        // A pipe whose reader is gone before the command starts (dropping it after the spawn
        // raced the command's first write).
        let mut fds = [0; 2];
        // SAFETY: pipe(2) fills the two descriptors, which we then own.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors are ours and open; each is owned once.
        let (reader, writer) = unsafe {
            use std::os::fd::FromRawFd;
            (std::os::fd::OwnedFd::from_raw_fd(fds[0]), std::os::fd::OwnedFd::from_raw_fd(fds[1]))
        };
        drop(reader);
        let o = common::hvsock_command()
            .args(args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(141), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{args:?}");
    }
}

/// `vms` answers on any machine: JSON that parses, and on Windows without the Host Compute
/// Service (wine) one line saying so, not a failure to start.
#[test]
fn vms_lists_or_says_what_it_could_not_read() {
    let o = hvsock(&["vms", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["vms"].is_array() && v["unavailable"].is_array(), "{v}");
    #[cfg(windows)]
    {
        let o = hvsock(&["vms"]);
        assert!(
            stdout(&o).contains("not available here: HCS (Hyper-V, WSL): computecore.dll is not here"),
            "{}",
            stdout(&o)
        );
        let o = hvsock(&["connect", "vsock:wsl:5000"]);
        assert_eq!(o.status.code(), Some(2));
        assert!(
            stderr(&o).contains("`wsl` is not a VM name here") && stderr(&o).contains("not looked at: HCS"),
            "{}",
            stderr(&o)
        );
    }
}

/// Completions come from the grammar: bash's loads in bash and completes commands and
/// subcommands; the other shells get their own kind of script.
#[test]
fn completions_complete_in_bash_and_exist_for_every_shell() {
    for (shell, start) in
        [("zsh", "#compdef hvsock"), ("fish", "# Print an optspec"), ("powershell", "using namespace")]
    {
        let o = hvsock(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}");
        assert!(
            stdout(&o).trim_start().starts_with(start),
            "{shell}: {}",
            &stdout(&o)[..80.min(stdout(&o).len())]
        );
    }
    let o = hvsock(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
    #[cfg(unix)]
    for (words, want) in
        [("hvsock con", "connect"), ("hvsock lab r", "run"), ("hvsock connect --ret", "--retries")]
    {
        // As bash calls a completion function: the command, the word at the cursor, the one before.
        let w: Vec<&str> = words.split(' ').collect();
        let script = format!(
            "source <({} completions bash); COMP_WORDS=({words}); COMP_CWORD={}; COMP_LINE='{words}'; COMP_POINT={}; _hvsock hvsock {} {}; echo \"${{COMPREPLY[*]}}\"",
            common::HVSOCK,
            w.len() - 1,
            words.len(),
            w[w.len() - 1],
            w[w.len() - 2],
        );
        let o = std::process::Command::new("bash").args(["-c", &script]).output().unwrap();
        assert_eq!(stdout(&o).trim(), want, "{words}: {}", stderr(&o));
    }
}

/// A man page for hvsock and for every command, each rendering with `man -l`.
#[test]
#[cfg(unix)]
fn man_pages_for_every_command_render() {
    let dir = std::env::temp_dir().join(format!("hvsock-man-test-{}", std::process::id()));
    let o = hvsock(&["man", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for want in
        ["hvsock.1", "hvsock-connect.1", "hvsock-relay.1", "hvsock-lab-run.1", "hvsock-vms.1", "hvsock-man.1"]
    {
        assert!(pages.iter().any(|p| p == want), "{want} missing from {pages:?}");
    }
    for page in &pages {
        let o = std::process::Command::new("man")
            .arg("-l")
            .arg(dir.join(page))
            .env("MANPAGER", "cat")
            .output()
            .unwrap();
        assert!(o.status.success(), "{page}: {}", stderr(&o));
        let name = page.trim_end_matches(".1");
        assert!(stdout(&o).contains("NAME") && stdout(&o).contains(name), "{page}: {}", stdout(&o));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every reporting command's --json is one JSON value with the documented keys.
#[test]
fn every_reporting_command_speaks_json() {
    let json = |args: &[&str]| -> serde_json::Value {
        let o = hvsock(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stdout(&o)))
    };
    let g = json(&["guid", "19000", "--json"]);
    assert_eq!(
        (g["port"].as_u64(), g["service_id"].as_str()),
        (Some(19000), Some("00004a38-facb-11e6-bd58-64006a7986d3"))
    );
    let a = json(&["addr", "hv:parent:19000", "--json"]);
    assert_eq!(a["linux"]["connect"]["cid"], 2);
    assert_eq!(a["windows"]["connect"]["vm_id"], "a42e7cda-d03f-480c-9cc2-a4de20abb878");
    assert_eq!(a["linux"]["bind"]["bytes"].as_str().map(str::len), Some(32));
    let a = json(&["addr", "vsock:any:1", "--json"]);
    assert!(a["linux"]["connect"]["error"].as_str().unwrap().contains("only a listener"), "{a}");
    let i = json(&["info", "--json"]);
    assert!(i["platform"].is_string());
    let v = json(&["vms", "--json"]);
    assert!(v["vms"].is_array());
}

/// A folder of this test's own, with a Unix listener at `s.sock` in it, and a TCP listener on
/// a free loopback port.
#[cfg(unix)]
fn local_listeners(
    tag: &str,
) -> (std::path::PathBuf, std::path::PathBuf, std::os::unix::net::UnixListener, std::net::TcpListener) {
    let dir = std::env::temp_dir().join(format!("hvsock-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let unix = std::os::unix::net::UnixListener::bind(&path).unwrap();
    (dir, path, unix, std::net::TcpListener::bind("127.0.0.1:0").unwrap())
}

/// `--no-shutdown` keeps our sending side open after our input ends, for every stream kind
/// (a Unix socket's dropped write half used to half-close it anyway, hybrid vsock's too), and
/// `--shutdown-quiet` holds a hybrid half-close as long as it says. The server waits a moment
/// for end-of-file, says which it got, answers and closes; the client must get the answer.
#[test]
#[cfg(unix)]
fn no_shutdown_and_shutdown_quiet_keep_connections_open_after_end_of_input() {
    use std::io::{Read, Write};
    use std::time::Duration;
    fn serve(mut c: impl Read + Write) -> String {
        let mut b = [0u8; 16];
        let seen = match c.read(&mut b) {
            Ok(0) => "eof",
            Ok(_) => "data",
            Err(_) => "open",
        };
        let _ = c.write_all(format!("{seen}\n").as_bytes());
        seen.to_string()
    }
    let (dir, path, unix, tcp) = local_listeners("no-shutdown");
    let tcp_ep = format!("tcp:{}", tcp.local_addr().unwrap());
    let unix_ep = format!("unix:{}", path.display());
    let hybrid_ep = format!("hybrid:{}:5000", path.display());
    // (endpoint, options, what the server sees within its wait)
    for (ep, opts, want) in [
        (&tcp_ep, &["--no-shutdown"][..], "open"),
        (&unix_ep, &["--no-shutdown"], "open"),
        (&hybrid_ep, &["--no-shutdown"], "open"),
        // Hybrid waits for a quiet guest as long as it is told (past the server's 2.5 s).
        (&hybrid_ep, &["--shutdown-quiet", "4"], "open"),
        (&tcp_ep, &[], "eof"),
        (&unix_ep, &[], "eof"),
        (&hybrid_ep, &[], "eof"),
    ] {
        let server = std::thread::scope(|s| {
            let server = s.spawn(|| {
                if ep.starts_with("tcp:") {
                    let (c, _) = tcp.accept().unwrap();
                    c.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
                    serve(c)
                } else {
                    let (mut c, _) = unix.accept().unwrap();
                    if ep.starts_with("hybrid:") {
                        // A VMM's side of the handshake: CONNECT 5000, then OK.
                        let mut line = Vec::new();
                        let mut b = [0u8];
                        while line.last() != Some(&b'\n') && c.read(&mut b).unwrap() == 1 {
                            line.push(b[0]);
                        }
                        assert_eq!(line, b"CONNECT 5000\n");
                        c.write_all(b"OK 1073741824\n").unwrap();
                    }
                    // Past hybrid's own wait for a quiet guest (1 s) before it half-closes.
                    c.set_read_timeout(Some(Duration::from_millis(2500))).unwrap();
                    serve(c)
                }
            });
            let o = hvsock(&[&["connect", ep.as_str()][..], opts].concat());
            let seen = server.join().unwrap();
            assert!(o.status.success(), "{ep} {opts:?}: {}", stderr(&o));
            assert_eq!(stdout(&o), format!("{seen}\n"), "{ep} {opts:?}");
            seen
        });
        assert_eq!(server, want, "{ep} {opts:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--send-only` (ncat's): the end of input closes the connection even while the peer keeps
/// its side open and sends, and nothing it sends is printed. Nothing of the upload is lost to a
/// peer that greets only after it is on its way (accepted late): closing with the greeting
/// unread was a reset, and TCP threw away the part not yet taken (and a Unix peer's greeting
/// found us gone).
#[cfg(unix)]
#[test]
fn send_only_closes_at_end_of_input_and_prints_nothing() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let (dir, path, unix, tcp) = local_listeners("send-only");
    let tcp_ep = format!("tcp:{}", tcp.local_addr().unwrap());
    let unix_ep = format!("unix:{}", path.display());
    for (ep, late) in [(&tcp_ep, false), (&unix_ep, false), (&tcp_ep, true), (&unix_ep, true)] {
        let upload = vec![7u8; if late { 3_000_000 } else { 300_000 }];
        // The server greets, reads to the end, and then holds the connection until the client
        // has ended (at most 20 s).
        fn serve(mut c: impl Read + Write, hold: std::sync::mpsc::Receiver<()>) -> std::io::Result<usize> {
            c.write_all(b"greetings\n")?;
            let mut got = Vec::new();
            c.read_to_end(&mut got)?;
            let _ = hold.recv_timeout(Duration::from_secs(20));
            Ok(got.len())
        }
        let (ended, hold) = std::sync::mpsc::channel::<()>();
        let (accept_now, accept) = std::sync::mpsc::channel::<()>();
        let (tcp, unix) = (&tcp, &unix);
        let server = std::thread::scope(|s| {
            let server = s.spawn(move || {
                // Late: once the upload is on its way, or at most 0.5 s (a Unix socket takes
                // only so much before it is accepted).
                let _ = accept.recv_timeout(Duration::from_millis(500));
                if ep.starts_with("tcp:") {
                    serve(tcp.accept().unwrap().0, hold)
                } else {
                    serve(unix.accept().unwrap().0, hold)
                }
            });
            if !late {
                let _ = accept_now.send(());
            }
            let start = Instant::now();
            let mut child = common::hvsock_command()
                .args(["connect", ep, "--send-only"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(&upload).unwrap();
            if late {
                // The whole upload has been read from our pipe and is on its way; the server
                // accepts late on purpose (time is the case tested).
                std::thread::sleep(Duration::from_millis(300));
                let _ = accept_now.send(());
            }
            let o = child.wait_with_output().unwrap();
            let _ = ended.send(());
            assert!(o.status.success(), "{ep} late {late}: {}", stderr(&o));
            assert!(start.elapsed() < Duration::from_secs(10), "{ep}: waited for the peer to close");
            assert_eq!(stdout(&o), "", "{ep}");
            server.join().unwrap().map_err(|e| e.to_string())
        });
        assert_eq!(server, Ok(upload.len()), "{ep} late {late}");
    }
    let o = hvsock(&["connect", "tcp:127.0.0.1:1", "--send-only", "--no-shutdown"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `hvsock --help` fits one screen: one line per command, the details in each command's help.
#[test]
fn the_help_fits_one_screen_with_one_line_per_command() {
    let o = hvsock(&["--help"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.lines().count() <= 45, "{} lines:\n{out}", out.lines().count());
    let long: Vec<&str> = out.lines().filter(|l| l.chars().count() > 100).collect();
    assert!(long.is_empty(), "lines past 100 columns: {long:#?}");
    let commands = out.split("Commands:\n").nth(1).expect("a list of commands").split("\n\n").next().unwrap();
    assert!(
        commands.lines().all(|l| l.starts_with("  ") && l.trim().split_once(' ').is_some()),
        "{commands}"
    );
}
