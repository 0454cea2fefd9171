#!/bin/sh
# Every test: unit, CLI, and the lab tests that run real vsock inside a User-Mode Linux guest;
# the library's docs; the crates and the Debian package built, installed and tried; a short run
# of every fuzzer; then the Windows build checked and tested under wine. Installs what it needs
# first, and says at the end how long each step took.
set -eu
cd "$(dirname "$0")/.."
t0=$(date +%s)
last=$t0
steps=""
took() {
    now=$(date +%s)
    steps="$steps, $1 $((now - last)) s"
    last=$now
}
scripts/setup.sh
# The test runner: every test in a process of its own, all binaries' tests side by side
# (.config/nextest.toml says how many at once, and ends a hang).
command -v cargo-nextest >/dev/null 2>&1 || cargo install --quiet --locked cargo-nextest
# What later steps build is compiled in the background from the start, at the lowest
# priority, so it takes CPU mostly from idleness (a build's linking, a lab test waiting on its
# guest): the fuzzers, the Windows build, and the crates and the Debian package (built,
# installed and tried). In a session of its own: stopped with all it started if a step fails.
# A new session is also a new scheduler autogroup, which would share the CPU equally with
# ours whatever its nice value: the group itself is made nice 19 too.
mkdir -p target
# Debug builds carry line tables only (file:line in a backtrace is all a failing test needs):
# an eighth less CPU for each of the Linux, Windows and package builds, and half the disk.
export CARGO_PROFILE_DEV_DEBUG=line-tables-only
in_background() { # COMMAND LOG: its last line says how long it took
    setsid sh -c '{ echo 19 >/proc/self/autogroup; } 2>/dev/null; s=$(date +%s); nice -n 19 sh -c "$0" &&
        echo "background: took $(( $(date +%s) - s )) s"' "$1" >"$2" 2>&1 &
}
# The two builds side by side: one's compiling fills the other's linking and the lab tests' waits.
in_background "scripts/fuzz.sh --build-only" target/fuzz-build.log
fuzz_build=$!
in_background "scripts/windows-check.sh --build-only" target/windows-build.log
windows_build=$!
packaging=""
fuzzing=""
trap 'for g in $fuzz_build $windows_build $packaging $fuzzing; do kill -- "-$g" 2>/dev/null || true; done' EXIT
# Built and linted in one pass, lints as errors (among them an unsafe block without its SAFETY
# line): clippy-driver is our crates' compiler (what `cargo clippy` runs in check mode), so the
# dependencies are compiled once instead of also being checked; CLIPPY_ARGS is how
# cargo-clippy hands it `-- -D warnings`. The later cargo commands on our workspace build the
# same way (or they would build it again); nothing else does (other projects' crates, the
# fuzzers, the packages: lints are ours to keep, not theirs).
linted="env RUSTC_WORKSPACE_WRAPPER=$(rustc --print sysroot)/bin/clippy-driver CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
$linted cargo build --workspace --all-targets
# The crates and the Debian package, once the debug build is there and nothing else writes to
# it (a build writing temporary files raced its copy): the crates' verification starts from its
# dependencies (see package-check.sh).
in_background scripts/package-check.sh target/package-check.log
packaging=$!
# The VMM backend lab_vmm.rs tests against: built once per machine.
scripts/vmm-backend.sh >/dev/null
took "build and lint"
$linted cargo nextest run --workspace
# Doc tests are not nextest's: cargo's own runner for them.
$linted cargo test --workspace --doc
# The library's and the lab's docs: every public item documented, no broken link.
RUSTDOCFLAGS="-D warnings" $linted cargo doc --no-deps -p hvsock -p hvsock-lab -p hvsock-relay --features hvsock/tokio
took "tests"
waited() { # PID LOG WHAT
    wait "$1" || { cat "$2" >&2; echo "test: $3 failed; its log is above" >&2; exit 1; }
    echo "test: $3: $(tail -1 "$2")"
}
waited $fuzz_build target/fuzz-build.log "the fuzzers' build"
fuzz_build=""
waited $windows_build target/windows-build.log "the Windows build"
windows_build=""
waited $packaging target/package-check.log "the package check"
packaging=""
grep '^package-check:' target/package-check.log
took "waiting for the background build"
# The fuzzers (one core) and the Windows tests under wine (one at a time) side by side.
setsid scripts/fuzz.sh --seconds 4 >target/fuzz.log 2>&1 &
fuzzing=$!
scripts/windows-check.sh
wait $fuzzing || { cat target/fuzz.log >&2; echo "test: a fuzzer failed; its log is above" >&2; exit 1; }
fuzzing=""
cat target/fuzz.log
took "fuzzing and the Windows tests"
echo "test: all passed in $(( $(date +%s) - t0 )) s (${steps#, })"
