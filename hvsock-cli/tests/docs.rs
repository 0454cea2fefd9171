#![cfg(target_os = "linux")]
//! The README and the guide (`docs/`) cannot drift from the program: every console block in
//! them is run and its output compared, every relative link must lead to a file, the CI
//! workflow example is checked against GitHub's schema and its test step is the command a
//! console block runs, and ARCHITECTURE.md names every source file.
//!
//! A console block is a fence marked `console`: lines starting `$ ` are commands (run by
//! `sh -c` from the repository's root, stderr with stdout, `hvsock` on PATH; a command that
//! could open a socket must run inside `hvsock lab run`, where vsock stays in the guest), the
//! lines after one are its output. In the output, a line `...` stands for any number of lines
//! and `[..]` for any text within a line. An HTML comment `<!-- in DIR -->` just before a
//! block runs it in DIR instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[path = "common/markdown.rs"]
mod markdown;
use markdown::{console_blocks, links, matches, Block};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The commands a page may run on this machine itself: they open no socket (`matrix` runs its
/// own lab guests). Anything else runs inside `hvsock lab run`, where vsock stays in the guest.
const OUTSIDE_THE_LAB: &[&str] = &["guid", "addr", "matrix", "vms", "info", "man", "completions", "--help"];

fn outside_the_lab_is_safe(command: &str) -> bool {
    let mut words = command.split_whitespace();
    words.next() == Some("hvsock")
        && words.next().is_some_and(|w| w == "lab" || OUTSIDE_THE_LAB.contains(&w))
        && (!command.starts_with("hvsock lab") || command.starts_with("hvsock lab run "))
}

fn run_block(page: &str, block: &Block) -> Result<(), String> {
    let hvsock_dir = Path::new(env!("CARGO_BIN_EXE_hvsock")).parent().unwrap().to_path_buf();
    let path = std::env::var("PATH").unwrap_or_default();
    let dir = root().join(block.dir.as_deref().unwrap_or("."));
    for example in &block.commands {
        if !outside_the_lab_is_safe(&example.command) {
            return Err(format!(
                "{page}:{}: `{}` would run on this machine: wrap it in `hvsock lab run`",
                example.line, example.command
            ));
        }
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("exec 2>&1\n{}", example.command))
            .current_dir(&dir)
            // Debian's python3 first, as the lab tests have it (common::hvsock_command).
            .env("PATH", format!("{}:/usr/bin:/bin:{path}", hvsock_dir.display()))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{page}:{}: cannot run sh: {e}", example.line))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let got: Vec<&str> = text.lines().collect();
        if !matches(&example.output, &got) {
            return Err(format!(
                "{page}:{}: `{}` ({})\n--- the page says\n{}\n--- it printed\n{}",
                example.line,
                example.command,
                out.status,
                example.output.join("\n"),
                got.join("\n")
            ));
        }
    }
    Ok(())
}

/// Runs every console block of PAGE, and says every one that differs.
fn run_page(page: &str) {
    let text = std::fs::read_to_string(root().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
    let failures: Vec<String> = console_blocks(&text)
        .unwrap_or_else(|e| panic!("{page}: {e}"))
        .iter()
        .filter_map(|b| run_block(page, b).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// One test per page, and PAGES, every page of the guide (`every_page_is_tested` keeps it whole).
macro_rules! pages {
    ($($test:ident: $page:literal,)*) => {
        $(#[test] fn $test() { run_page($page) })*
        const PAGES: &[&str] = &[$($page),*];
    };
}

pages! {
    readme: "README.md",
    guide_index: "docs/README.md",
    guide_names: "docs/names.md",
    guide_commands: "docs/commands.md",
    guide_connect_listen: "docs/connect-listen.md",
    guide_relay: "docs/relay.md",
    guide_forward: "docs/forward.md",
    guide_hybrid: "docs/hybrid.md",
    guide_systemd: "docs/systemd.md",
    guide_seqpacket: "docs/seqpacket.md",
    guide_lab: "docs/lab.md",
    guide_lab_in_ci: "docs/lab-in-ci.md",
    guide_matrix: "docs/matrix.md",
    guide_library: "docs/library.md",
    guide_windows: "docs/windows.md",
    guide_benchmarks: "docs/benchmarks.md",
    guide_testing: "docs/testing.md",
    guide_json: "docs/json.md",
    guide_known_faults: "docs/known-faults.md",
    architecture: "ARCHITECTURE.md",
}

#[test]
fn every_page_is_tested() {
    let mut on_disk: Vec<String> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    on_disk.extend(["README.md".to_string(), "ARCHITECTURE.md".to_string()]);
    on_disk.sort();
    let mut tested: Vec<String> = PAGES.iter().map(|p| p.to_string()).collect();
    tested.sort();
    assert_eq!(on_disk, tested, "a page without its test (or a test of no page)");
}

#[test]
fn every_relative_link_leads_to_a_file() {
    let mut broken = Vec::new();
    for page in PAGES {
        let text = std::fs::read_to_string(root().join(page)).unwrap();
        let base = root().join(page).parent().unwrap().to_path_buf();
        for (line, target) in links(&text) {
            let file = target.split('#').next().unwrap();
            if file.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            if !base.join(file).exists() {
                broken.push(format!("{page}:{line}: {target}"));
            }
        }
    }
    assert!(broken.is_empty(), "links to nothing:\n{}", broken.join("\n"));
}

const WORKFLOW: &str = "docs/examples/ci-project/.github/workflows/vsock.yml";

/// The example workflow is a valid GitHub Actions workflow, and its test step is the very
/// command docs/lab-in-ci.md's console block runs in the example project.
#[test]
fn the_ci_workflow_is_valid_and_its_step_is_run() {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"));
    let out = Command::new(cache.join("hvsock-tools/venv/bin/check-jsonschema"))
        .args(["--builtin-schema", "vendor.github-workflows", WORKFLOW])
        .current_dir(root())
        .output()
        .expect("check-jsonschema (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let workflow = std::fs::read_to_string(root().join(WORKFLOW)).unwrap();
    let step = workflow
        .lines()
        .filter_map(|l| l.trim().strip_prefix("run: "))
        .find(|r| r.starts_with("hvsock lab run"))
        .expect("a step that runs hvsock lab run");
    let page = std::fs::read_to_string(root().join("docs/lab-in-ci.md")).unwrap();
    let blocks = console_blocks(&page).unwrap();
    let run = blocks
        .iter()
        .find(|b| b.dir.as_deref() == Some("docs/examples/ci-project"))
        .expect("a console block run in the example project");
    assert_eq!(run.commands[0].command, step, "the page runs another command than the workflow");
}

/// Every source file (the crates' src/, tests, benches, scripts, fuzz targets) has its line in
/// ARCHITECTURE.md, by its path from the repository's root.
#[test]
fn architecture_names_every_source_file() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let mut missing = Vec::new();
    let mut files = Vec::new();
    for dir in [
        "hvsock/src",
        "hvsock/examples",
        "hvsock-lab/src",
        "hvsock-relay/src",
        "hvsock-cli/src",
        "hvsock-cli/tests",
        "bench",
        "scripts",
        "fuzz/fuzz_targets",
    ] {
        collect(&root().join(dir), &mut files);
    }
    for f in files {
        let rel = f.strip_prefix(root()).unwrap().to_string_lossy().into_owned();
        if !map.contains(&format!("`{rel}`")) {
            missing.push(rel);
        }
    }
    assert!(missing.is_empty(), "ARCHITECTURE.md does not name:\n{}", missing.join("\n"));
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() {
            // Build outputs and a benchmark's own workspace lock are not sources.
            if name != "target" {
                collect(&path, out);
            }
        } else if !name.ends_with(".lock") {
            out.push(path);
        }
    }
}

#[test]
fn only_socketless_commands_run_outside_the_lab() {
    for (command, safe) in [
        ("hvsock guid 19000", true),
        ("hvsock matrix", true),
        ("hvsock lab run -- hvsock client lo", true),
        ("hvsock lab run --guest 'x' --host 'y'", true),
        ("hvsock client any", false),
        ("hvsock connect vsock:1:5000", false),
        ("hvsock lab wait 5000", false),
        ("echo x | hvsock connect vsock:2:22", false),
        ("python3 -m unittest", false),
    ] {
        assert_eq!(outside_the_lab_is_safe(command), safe, "{command}");
    }
}
