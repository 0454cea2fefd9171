//! Why a guest died, read from its kernel console: the fatal lines and what to do about them.

/// Known fatal lines and the advice that goes with them.
const ADVICE: [(&str, &str); 5] = [
    (
        "ptrace set fp regs failed",
        "this CPU's XSAVE state (AMX: see `grep -o amx_tile /proc/cpuinfo`) is larger than this UML \
         kernel handles; the lab's xstate shim repairs that unless HVSOCK_LAB_XSTATE_SHIM=0 is set",
    ),
    ("Out of memory", "the guest ran out of memory: give it more (Lab::memory_mib) or use less"),
    ("Unable to mount root", "the guest could not mount this machine's / through hostfs"),
    (
        "Attempted to kill init",
        "the guest's init crashed: it must be a binary that calls hvsock_lab::init_if_guest() first",
    ),
    ("PROT_EXEC mmap in /dev/shm...failed", "UML needs /dev/shm mounted without noexec"),
];

/// One line: the console's fatal lines, quoted, then what to do.
pub(crate) fn why_died(console: &str) -> String {
    let lines: Vec<&str> = console.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect();
    let panic = lines.iter().position(|l| l.starts_with("Kernel panic"));
    let fatal: Vec<&str> = match panic {
        // The line before a panic usually says what went wrong, unless it is init starting.
        Some(i) if i > 0 && !lines[i - 1].starts_with("Run ") => vec![lines[i - 1], lines[i]],
        Some(i) => vec![lines[i]],
        None => lines.last().copied().into_iter().collect(),
    };
    if fatal.is_empty() {
        return "it printed nothing: it could not start".into();
    }
    let quoted: Vec<String> = fatal.iter().map(|l| format!("`{l}`")).collect();
    let advice = ADVICE
        .iter()
        .find(|(needle, _)| fatal.iter().any(|l| l.contains(needle)))
        .map_or("see the kernel console", |(_, advice)| advice);
    format!("{}: {advice}", quoted.join(", then "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_fatal_lines_and_the_fix() {
        let console = "VFS: Mounted root (hostfs filesystem) on device 0:15.\n\
                       Run /usr/bin/hvsock as init process\n\
                       userspace - ptrace set fp regs failed, errno = 14\n\
                       Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b\n\
                       CPU: 0 PID: 1 Comm: hvsock Not tainted 6.1.176 #1\n";
        let why = why_died(console);
        assert!(
            why.starts_with("`userspace - ptrace set fp regs failed, errno = 14`, then `Kernel panic"),
            "{why}"
        );
        assert!(why.contains("AMX") && why.contains("HVSOCK_LAB_XSTATE_SHIM"), "{why}");
        assert!(!why.contains('\n'));
    }

    #[test]
    fn an_init_crash_and_an_unknown_end() {
        let why = why_died("Run /x as init process\nKernel panic - not syncing: Attempted to kill init!\n");
        assert!(
            why.starts_with("`Kernel panic - not syncing: Attempted to kill init!`: the guest's init"),
            "{why}"
        );
        assert_eq!(why_died("booting\nsomething odd\n"), "`something odd`: see the kernel console");
        assert_eq!(why_died(""), "it printed nothing: it could not start");
    }
}
