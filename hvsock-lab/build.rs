//! Builds the UML xstate shim (src/xstate_shim.c) as a shared object that the lab embeds and
//! preloads into `linux.uml`; see that file for why. Only x86_64 Linux needs it.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/xstate_shim.c");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if os != "linux" || arch != "x86_64" {
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let so = out.join("xstate_shim.so");
    let compiler = cc::Build::new().opt_level(2).pic(true).warnings(true).get_compiler();
    let status = compiler
        .to_command()
        .args(["-shared", "-Wl,-soname,hvsock-xstate-shim.so", "-o"])
        .arg(&so)
        .arg("src/xstate_shim.c")
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {:?}: {e}", compiler.path()));
    assert!(status.success(), "the C compiler failed on src/xstate_shim.c");
}
