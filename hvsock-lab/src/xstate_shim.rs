//! The UML xstate shim: lets Debian's UML 6.1 boot on CPUs with a large XSAVE area (AMX).
//!
//! UML 6.1 restores each guest process's FPU state through `PTRACE_SETREGSET(NT_X86_XSTATE)`
//! from a buffer of a size fixed at its build (2696 bytes). On a CPU with AMX the host kernel
//! wants exactly its full XSAVE size (about 11 KiB) and answers EFAULT, and the guest panics
//! at boot ("ptrace set fp regs failed, errno = 14"). `xstate_shim.c`, built by `build.rs`
//! and embedded here, is preloaded into `linux.uml` alone; it changes nothing but that one
//! failing request (see the C file). `HVSOCK_LAB_XSTATE_SHIM=0` leaves it out.

use std::fs;
use std::path::{Path, PathBuf};

use crate::runner::{io_err, LabError};

#[cfg(target_arch = "x86_64")]
const SHIM: Option<&[u8]> = Some(include_bytes!(concat!(env!("OUT_DIR"), "/xstate_shim.so")));
#[cfg(not(target_arch = "x86_64"))]
const SHIM: Option<&[u8]> = None;

/// Writes the shim into the lab directory `dir`; the path goes into `LD_PRELOAD` of
/// `linux.uml`. `None` where there is no shim to preload (other architectures, or turned off).
pub(crate) fn install(dir: &Path) -> Result<Option<PathBuf>, LabError> {
    let (Some(bytes), false) = (SHIM, std::env::var_os("HVSOCK_LAB_XSTATE_SHIM").is_some_and(|v| v == "0"))
    else {
        return Ok(None);
    };
    let path = dir.join("hvsock-xstate-shim.so");
    fs::write(&path, bytes).map_err(io_err(format!("cannot write {}", path.display())))?;
    Ok(Some(path))
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use std::ffi::{c_long, c_uint, c_void, CString};

    use super::*;

    type Ptrace = unsafe extern "C" fn(c_uint, ...) -> c_long;

    #[repr(C, align(64))]
    struct XState([u8; 64 * 1024]);

    const XMM0: std::ops::Range<usize> = 160..176;
    const XSTATE_BV: std::ops::Range<usize> = 512..520;
    const WHOLE: usize = 64 * 1024;
    const NT_X86_XSTATE: usize = 0x202; // elf.h

    fn regset(
        ptrace: Ptrace,
        request: c_uint,
        pid: libc::pid_t,
        buf: &mut XState,
        len: usize,
    ) -> (c_long, usize) {
        let mut iov = libc::iovec { iov_base: buf.0.as_mut_ptr().cast(), iov_len: len };
        // SAFETY: the iovec points into `buf`, which outlives the call.
        let rc = unsafe { ptrace(request, pid, NT_X86_XSTATE as *mut c_void, &mut iov) };
        (rc, iov.iov_len)
    }

    /// The shim turns a short SETREGSET that the kernel refuses into a full one that keeps
    /// UML's bytes, and passes PEEK requests through with glibc's meaning. The short write is
    /// made here, 8 bytes under this CPU's full XSAVE size (as tests/fixtures/xstate_shrink.c
    /// does for a boot), so it is short on every CPU: 832 bytes (AVX2), ~2.5 KiB (AVX-512) or
    /// ~11 KiB (AMX, where UML's own 2696 bytes are short too).
    #[test]
    fn short_setregset_is_widened_and_keeps_the_bytes() {
        let dir = std::env::temp_dir().join(format!("hvsock-shim-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let so = install(&dir).unwrap().expect("x86_64 has a shim");
        let so = CString::new(so.into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: loading our own shared object, which has no constructors.
        let lib = unsafe { libc::dlopen(so.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        assert!(!lib.is_null(), "dlopen of the shim failed");
        // SAFETY: the symbol is the shim's ptrace, whose C type is `Ptrace`.
        let shim: Ptrace = unsafe { std::mem::transmute(libc::dlsym(lib, c"ptrace".as_ptr())) };
        let libc_ptrace: Ptrace = libc::ptrace;
        fs::remove_dir_all(&dir).unwrap();

        // SAFETY: the child only calls async-signal-safe functions, then is killed.
        let child = unsafe { libc::fork() };
        if child == 0 {
            // SAFETY: in the forked child: only async-signal-safe calls, and it never returns.
            unsafe {
                libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
                libc::raise(libc::SIGSTOP);
                libc::_exit(0);
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(child, &mut status, libc::WUNTRACED) }, child);

        let mut buf = Box::new(XState([0; 64 * 1024]));
        let (rc, full) = regset(libc_ptrace, libc::PTRACE_GETREGSET, child, &mut buf, WHOLE);
        assert_eq!(rc, 0);
        // The smallest XSAVE area there is (legacy area and header) still holds what we check.
        assert!(full >= XSTATE_BV.end + 64, "GETREGSET gave {full} bytes, less than any XSAVE area");
        let short = full - 8;
        let (rc, got) = regset(libc_ptrace, libc::PTRACE_GETREGSET, child, &mut buf, short);
        assert_eq!((rc, got), (0, short), "a short GETREGSET truncates");
        buf.0[XMM0].copy_from_slice(b"hvsock shim test");
        buf.0[XSTATE_BV][0] |= 0b10; // XMM registers in use, so the kernel takes them
        let (raw, _) = regset(libc_ptrace, libc::PTRACE_SETREGSET, child, &mut buf, short);
        let (rc, _) = regset(shim, libc::PTRACE_SETREGSET, child, &mut buf, short);
        assert_eq!(rc, 0, "the shim's SETREGSET failed: {}", std::io::Error::last_os_error());

        let mut back = Box::new(XState([0; 64 * 1024]));
        let (rc, len) = regset(libc_ptrace, libc::PTRACE_GETREGSET, child, &mut back, WHOLE);
        assert_eq!((rc, len), (0, full));
        assert_eq!(&back.0[XMM0], b"hvsock shim test");

        let rip = 16 * 8; // offsetof(struct user_regs_struct, rip)
                          // SAFETY: PEEKUSER reads one word of the stopped tracee's registers.
        let (want, got) = unsafe {
            (
                libc::ptrace(libc::PTRACE_PEEKUSER, child, rip, 0),
                shim(libc::PTRACE_PEEKUSER, child, rip, 0usize),
            )
        };
        assert_eq!(want, got);
        assert_ne!(got, 0);
        // SAFETY: ending our own child.
        unsafe {
            libc::kill(child, libc::SIGKILL);
            libc::waitpid(child, &mut status, 0);
        }
        eprintln!("full XSAVE size {full}; the kernel's own answer to a {short}-byte SETREGSET: {raw}");
    }
}
