//! What a Windows machine shows: its own VM ID (a Hyper-V guest's registry) and the Winsock
//! catalog's AF_HYPERV providers.

use std::io;

use windows_sys::Win32::Networking::WinSock::{
    WSACleanup, WSAEnumProtocolsW, WSAGetLastError, WSAStartup, SOCKET_ERROR, WSADATA, WSAENOBUFS,
    WSAPROTOCOL_INFOW,
};

use super::Provider;
use crate::{Guid, HvAddr, VmId};

/// `AF_HYPERV`.
const AF_HYPERV: i32 = HvAddr::FAMILY as i32;
/// Where a Hyper-V guest with integration services finds its own VM ID.
const GUEST_PARAMETERS_KEY: &str = r"SOFTWARE\Microsoft\Virtual Machine\Guest\Parameters";

/// This VM's own ID when it is a Hyper-V guest with integration services, `None` otherwise.
pub fn vm_id() -> io::Result<Option<VmId>> {
    let Ok(key) = windows_registry::LOCAL_MACHINE.open(GUEST_PARAMETERS_KEY) else { return Ok(None) };
    let Ok(text) = key.get_string("VirtualMachineId") else { return Ok(None) };
    text.trim()
        .parse::<VmId>()
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("VirtualMachineId: {e}")))
}

/// The Winsock catalog's AF_HYPERV providers (empty where Hyper-V sockets are missing).
pub fn providers() -> io::Result<Vec<Provider>> {
    let _winsock = Winsock::start()?;
    let mut len: u32 = 0;
    // SAFETY: a null buffer asks for the size needed.
    let rc = unsafe { WSAEnumProtocolsW(std::ptr::null(), std::ptr::null_mut(), &mut len) };
    // SAFETY: plain call.
    if rc != SOCKET_ERROR || unsafe { WSAGetLastError() } != WSAENOBUFS {
        return Ok(Vec::new());
    }
    let entry = std::mem::size_of::<WSAPROTOCOL_INFOW>();
    let mut buf: Vec<WSAPROTOCOL_INFOW> = Vec::with_capacity((len as usize).div_ceil(entry));
    // SAFETY: the buffer holds `len` bytes; Winsock fills `rc` entries.
    let rc = unsafe { WSAEnumProtocolsW(std::ptr::null(), buf.as_mut_ptr(), &mut len) };
    if rc == SOCKET_ERROR {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: Winsock initialised `rc` entries.
    unsafe { buf.set_len(rc as usize) };
    Ok(buf
        .iter()
        .filter(|p| p.iAddressFamily == AF_HYPERV)
        .map(|p| {
            let end = p.szProtocol.iter().position(|&c| c == 0).unwrap_or(p.szProtocol.len());
            let g = p.ProviderId;
            Provider {
                name: String::from_utf16_lossy(&p.szProtocol[..end]),
                provider_id: Guid::from_fields(g.data1, g.data2, g.data3, g.data4),
                address_family: p.iAddressFamily,
                min_address_length: p.iMinSockAddr,
                max_address_length: p.iMaxSockAddr,
                socket_type: p.iSocketType,
                protocol: p.iProtocol,
                service_flags: p.dwServiceFlags1,
            }
        })
        .collect())
}

/// WSAStartup/WSACleanup around a Winsock call that needs no socket.
struct Winsock;

impl Winsock {
    fn start() -> io::Result<Winsock> {
        let mut data = std::mem::MaybeUninit::<WSADATA>::zeroed();
        // SAFETY: WSAStartup fills `data`.
        match unsafe { WSAStartup(0x0202, data.as_mut_ptr()) } {
            0 => Ok(Winsock),
            code => Err(io::Error::from_raw_os_error(code)),
        }
    }
}

impl Drop for Winsock {
    fn drop(&mut self) {
        // SAFETY: paired with a successful WSAStartup.
        unsafe { WSACleanup() };
    }
}
