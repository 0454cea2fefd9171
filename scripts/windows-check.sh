#!/bin/bash
# Checks the Windows build on this Debian machine: cargo check, clippy -D warnings and the tests
# for x86_64-pc-windows-gnu, the tests running under wine. rustup here has only the Linux target,
# so this uses Debian's own Rust (rustc-web) with a std built for Windows from rust-web-src,
# cached per exact rustc build. wine has no Hyper-V sockets: the tests check what can be checked
# without them (layouts, errors, the registry, the CLI).
#   scripts/windows-check.sh               # all of it
#   scripts/windows-check.sh --build-only  # only install, build and lint (scripts/test.sh does
#                                          # so while the lab tests run)
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=x86_64-pc-windows-gnu
build_only=""
case "${1:-}" in
    --build-only) build_only=1 ;;
    "") ;;
    *) echo "windows-check: unknown option $1" >&2; exit 2 ;;
esac

pkgs="rustc-web cargo-web rust-web-src rust-web-clippy gcc-mingw-w64-x86-64-win32 wine wine64"
missing=$(for p in $pkgs; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || echo "$p"; done)
if [ -n "$missing" ]; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "windows-check: installing" $missing >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# Debian's toolchain for these commands only; rustup's stays the default everywhere else.
export RUSTUP_TOOLCHAIN=/usr PATH="/usr/bin:$PATH"
unset RUSTFLAGS RUSTC
cache="${XDG_CACHE_HOME:-$HOME/.cache}/hvsock-windows"
key=$(rustc -vV | sha256sum | cut -c1-16)
sysroot="$cache/sysroot-$key"
libdir="$sysroot/lib/rustlib/$TARGET/lib"

if [ ! -f "$libdir/.complete" ]; then
    echo "windows-check: building std for $TARGET (once per rustc build)" >&2
    work="$cache/std-build"
    rm -rf "$work" "$sysroot"
    mkdir -p "$work/src" "$libdir"
    printf '[package]\nname = "stdbuild"\nversion = "0.0.0"\nedition = "2021"\n[lib]\npath = "src/lib.rs"\n[workspace]\n' >"$work/Cargo.toml"
    : >"$work/src/lib.rs"
    (cd "$work" && RUSTC_BOOTSTRAP=1 cargo build -q --release --target $TARGET \
        -Zbuild-std=std,panic_unwind,panic_abort,test,proc_macro)
    cp "$work/target/$TARGET/release/deps/"*.rlib "$libdir/"
    touch "$libdir/.complete"
    rm -rf "$work"
fi

export WINEPREFIX="$cache/wine-$key" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
if [ ! -f "$WINEPREFIX/.complete" ]; then
    echo "windows-check: preparing a wine prefix" >&2
    rm -rf "$WINEPREFIX"
    wineboot --init >/dev/null 2>&1 || true
    wineserver -w
    x86_64-w64-mingw32-gcc -O2 -shared -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
        scripts/windows/bcryptprimitives.c -ladvapi32
    touch "$WINEPREFIX/.complete"
fi

export CARGO_TARGET_DIR=target/windows
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUSTFLAGS="--sysroot=$sysroot"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
export RUSTDOCFLAGS="--sysroot=$sysroot"  # doctests build for the target only
# clippy-driver is our crates' compiler here (what `cargo clippy` runs in check mode): each of
# them is linted as it is built, and the dependencies are compiled once, for the tests,
# instead of being checked a second time. CLIPPY_ARGS is how cargo-clippy hands clippy-driver
# its `-- -D warnings`.
export RUSTC_WORKSPACE_WRAPPER=/usr/bin/clippy-driver CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
cargo build --workspace --target $TARGET --examples
# The tests that have a Windows side: the crates' own, the binary's, and cli.rs (every other
# test file is Linux's, `#![cfg(target_os = "linux")]`, and would link an empty program each).
tests="--lib --bins --test cli"
for f in hvsock-cli/tests/*.rs; do
    [ "$f" = hvsock-cli/tests/cli.rs ] || grep -q '^#!\[cfg(target_os = "linux")\]' "$f" || {
        echo "windows-check: $f has tests for Windows too: add it to \$tests" >&2
        exit 1
    }
done
if [ -n "$build_only" ]; then
    # shellcheck disable=SC2086 # a list of cargo flags
    cargo test --workspace --target $TARGET --no-run $tests
    exit 0
fi
# One wineserver for the whole run: left to itself it exits 3 s after its last client, and a
# test process starting just then fails with "wine client error:0: recvmsg: Connection reset
# by peer" (seen in a clean-clone CI run). Stopped when this script exits, however it does.
wineserver -p
trap 'wineserver -k 2>/dev/null || true' EXIT
# One test at a time: wine now and then fails a CreateProcess among many at once
# ("Internal error", 1359), which is wine's, not ours. The doc tests spend their time in
# rustdoc and the linker, on this machine: two at a time.
# Bounded: a test that hangs under wine fails this check in minutes, not CI's whole budget
# (one did: wine closes a linger-0 socket with a FIN, and a test waited for a reset).
bounded() {
    rc=0
    timeout --kill-after=10 "$1" "${@:2}" || rc=$?
    [ "$rc" != 124 ] && [ "$rc" != 137 ] || echo "windows-check: '${*:2}' still ran after $1 s (a test hangs under wine?)" >&2
    return "$rc"
}
# shellcheck disable=SC2086 # a list of cargo flags
bounded 600 cargo test --workspace --target $TARGET $tests -- --test-threads=1
bounded 600 cargo test --workspace --target $TARGET --doc -- --test-threads=2
# The Windows API's docs, built here on Linux as docs.rs builds them: no broken link.
RUSTDOCFLAGS="--sysroot=$sysroot -D warnings" cargo doc --no-deps -p hvsock -p hvsock-lab -p hvsock-relay --features hvsock/tokio --target $TARGET
