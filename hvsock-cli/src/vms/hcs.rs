//! Windows' Host Compute Service: `HcsEnumerateComputeSystems` lists the Hyper-V VMs,
//! containers' utility VMs and the WSL 2 utility VM (owner `WSL`, also named `wsl` here), as
//! a JSON array of compute-system properties.

use super::{FoundVm, Reach};

/// The VMs of an `HcsEnumerateComputeSystems` answer: entries whose `SystemType` is
/// `VirtualMachine`, reached by their runtime ID (the VM ID Hyper-V sockets address).
pub fn parse(json: &str) -> Result<Vec<FoundVm>, String> {
    let list: Vec<serde_json::Value> =
        serde_json::from_str(json).map_err(|e| format!("not the HCS's JSON: {e}"))?;
    let mut vms = Vec::new();
    for v in &list {
        let s = |k: &str| v.get(k).and_then(|x| x.as_str());
        if s("SystemType") != Some("VirtualMachine") {
            continue;
        }
        let Some(id) = s("RuntimeId").or(s("Id")).and_then(|id| id.parse::<hvsock::Guid>().ok()) else {
            continue;
        };
        let owner = s("Owner").unwrap_or("");
        let name = s("Name").filter(|n| !n.is_empty()).or(s("Id")).unwrap_or("").to_string();
        let found = |name: String| FoundVm {
            name,
            reach: Reach::VmId(id),
            hypervisor: if owner.eq_ignore_ascii_case("WSL") {
                "WSL 2".into()
            } else {
                format!("Hyper-V ({owner})")
            },
            state: s("State").map(str::to_string),
            source: "HCS (HcsEnumerateComputeSystems)".into(),
        };
        if owner.eq_ignore_ascii_case("WSL") {
            vms.push(found("wsl".into()));
        }
        vms.push(found(name));
    }
    Ok(vms)
}

#[cfg(windows)]
pub fn find(d: &mut super::Discovery) {
    match enumerate().and_then(|json| parse(&json)) {
        Ok(vms) => d.vms.extend(vms),
        Err(why) => d.unavailable.push(("HCS (Hyper-V, WSL)".into(), why)),
    }
}

/// The HCS's answer, as text. computecore.dll is loaded when asked for, not linked: Windows
/// without the Hyper-V platform (and wine) has none, and the binary must still start there.
#[cfg(windows)]
fn enumerate() -> Result<String, String> {
    use std::ffi::c_void;
    use windows_sys::core::{PCWSTR, PWSTR};
    use windows_sys::Win32::Foundation::LocalFree;
    use windows_sys::Win32::System::HostComputeSystem::{HCS_OPERATION, HCS_OPERATION_COMPLETION};
    use windows_sys::Win32::System::LibraryLoader::{GetProcAddress, LoadLibraryW};

    type Create = unsafe extern "system" fn(*const c_void, HCS_OPERATION_COMPLETION) -> HCS_OPERATION;
    type Enumerate = unsafe extern "system" fn(PCWSTR, HCS_OPERATION) -> i32;
    type Wait = unsafe extern "system" fn(HCS_OPERATION, u32, *mut PWSTR) -> i32;
    type Close = unsafe extern "system" fn(HCS_OPERATION);

    let dll: Vec<u16> = "computecore.dll".encode_utf16().chain([0]).collect();
    // SAFETY: a NUL-terminated UTF-16 name; the module stays loaded for the process's life.
    let lib = unsafe { LoadLibraryW(dll.as_ptr()) };
    if lib.is_null() {
        return Err(
            "computecore.dll is not here: the Host Compute Service (Hyper-V, WSL 2) is not installed".into(),
        );
    }
    let find = |name: &[u8]| {
        // SAFETY: `name` is NUL-terminated; `lib` is loaded.
        unsafe { GetProcAddress(lib, name.as_ptr()) }.ok_or_else(|| {
            format!("computecore.dll has no {}", String::from_utf8_lossy(&name[..name.len() - 1]))
        })
    };
    // SAFETY: each function has the signature computecore.dll documents for it.
    let (create, enumerate, wait, close) = unsafe {
        (
            std::mem::transmute::<unsafe extern "system" fn() -> isize, Create>(find(
                b"HcsCreateOperation\0",
            )?),
            std::mem::transmute::<unsafe extern "system" fn() -> isize, Enumerate>(find(
                b"HcsEnumerateComputeSystems\0",
            )?),
            std::mem::transmute::<unsafe extern "system" fn() -> isize, Wait>(find(
                b"HcsWaitForOperationResult\0",
            )?),
            std::mem::transmute::<unsafe extern "system" fn() -> isize, Close>(find(b"HcsCloseOperation\0")?),
        )
    };
    // SAFETY: a new operation, no callback; closed below on every path.
    let op = unsafe { create(std::ptr::null(), None) };
    if op.is_null() {
        return Err("HcsCreateOperation failed (is the Hyper-V platform running?)".into());
    }
    let mut doc: PWSTR = std::ptr::null_mut();
    // SAFETY: a null query means every compute system; `op` is ours; the wait writes a string
    // the HCS allocated, which we free with LocalFree.
    let result = unsafe {
        let hr = enumerate(std::ptr::null(), op);
        let hr = if hr < 0 { hr } else { wait(op, 10_000, &mut doc) };
        close(op);
        hr
    };
    let text = if doc.is_null() {
        String::new()
    } else {
        // SAFETY: the HCS returned a NUL-terminated UTF-16 string.
        let text = unsafe {
            let len = (0..).take_while(|&i| *doc.add(i) != 0).count();
            String::from_utf16_lossy(std::slice::from_raw_parts(doc, len))
        };
        // SAFETY: the string was allocated for us with LocalAlloc.
        unsafe { LocalFree(doc.cast()) };
        text
    };
    if result < 0 {
        return Err(format!("HcsEnumerateComputeSystems failed: HRESULT {:#010x} {text}", result as u32));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped as Microsoft documents the enumeration's properties (and as `hcsdiag list`
    /// shows them): a Hyper-V VM, the WSL utility VM, a process-isolated container.
    #[test]
    fn vms_wsl_and_containers() {
        let json = r#"[
          {"Id":"8E7C6E3A-2A6E-4F1B-9C51-5B2F3C2D1A10","SystemType":"VirtualMachine","Name":"build-agent","Owner":"VMMS","RuntimeId":"8e7c6e3a-2a6e-4f1b-9c51-5b2f3c2d1a10","State":"Running"},
          {"Id":"6B1C8A2E-0D4F-4A5B-8E2C-3F9A7D6B5C41","SystemType":"VirtualMachine","Name":"","Owner":"WSL","RuntimeId":"6b1c8a2e-0d4f-4a5b-8e2c-3f9a7d6b5c41","State":"Running"},
          {"Id":"a1b2c3d4e5f6","SystemType":"Container","Name":"web","Owner":"docker","State":"Running"}
        ]"#;
        let vms = parse(json).unwrap();
        let names: Vec<_> = vms.iter().map(|v| (v.name.as_str(), v.hypervisor.as_str())).collect();
        assert_eq!(
            names,
            [
                ("build-agent", "Hyper-V (VMMS)"),
                ("wsl", "WSL 2"),
                ("6B1C8A2E-0D4F-4A5B-8E2C-3F9A7D6B5C41", "WSL 2")
            ]
        );
        assert_eq!(vms[1].reach, Reach::VmId("6b1c8a2e-0d4f-4a5b-8e2c-3f9a7d6b5c41".parse().unwrap()));
        assert_eq!(vms[0].state.as_deref(), Some("Running"));
        assert!(parse("[]").unwrap().is_empty());
        assert!(parse("{not json").unwrap_err().contains("not the HCS's JSON"));
    }
}
