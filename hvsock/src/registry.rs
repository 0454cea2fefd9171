//! Hyper-V service registration (Windows).
//!
//! A Hyper-V host hands a guest's connection to a listener only when the service GUID is listed
//! under [`SERVICES_KEY`]; its `ElementName` is the service's display name, and hvsock also takes
//! that name wherever a service goes (like libzmq's `hvsocket://` addresses).

use std::io;

use crate::{Guid, ServiceId};

/// `HKLM\`[`SERVICES_KEY`]`\<service GUID>` holds one registered service.
pub const SERVICES_KEY: &str =
    r"SOFTWARE\Microsoft\Windows NT\CurrentVersion\Virtualization\GuestCommunicationServices";

/// One registered service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The service GUID (the key's name).
    pub id: ServiceId,
    /// Its `ElementName`, if it has one.
    pub name: Option<String>,
}

/// Registers `service` with display name `name` (needs administrator rights; an existing
/// registration gets the new name).
///
/// ```no_run
/// use hvsock::{registry, ServiceId};
/// registry::register(ServiceId::from_vsock_port(19000), "MyGcs")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn register(service: ServiceId, name: &str) -> io::Result<()> {
    let key = windows_registry::LOCAL_MACHINE.create(format!(r"{SERVICES_KEY}\{service}")).io()?;
    key.set_string("ElementName", name).io()
}

/// Removes `service`'s registration; `Ok(false)` when it was not registered.
pub fn unregister(service: ServiceId) -> io::Result<bool> {
    let Some(found) = services()?.into_iter().find(|r| r.id == service) else { return Ok(false) };
    // Remove the key under the spelling it has (braces, case), not ours.
    let parent = windows_registry::LOCAL_MACHINE.open(SERVICES_KEY).io()?;
    let spelled = parent
        .keys()
        .io()?
        .find(|k| k.parse::<Guid>().ok() == Some(found.id.guid()))
        .unwrap_or_else(|| found.id.to_string());
    let writable = windows_registry::LOCAL_MACHINE.options().read().write().open(SERVICES_KEY).io()?;
    writable.remove_tree(spelled).io()?;
    Ok(true)
}

/// Every registered service, in registry order; keys that are not GUIDs are skipped.
pub fn services() -> io::Result<Vec<Registration>> {
    let parent = match windows_registry::LOCAL_MACHINE.open(SERVICES_KEY).io() {
        Ok(key) => key,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for key_name in parent.keys().io()? {
        let Ok(guid) = key_name.parse::<Guid>() else { continue };
        let name = parent.open(&key_name).and_then(|k| k.get_string("ElementName")).ok();
        out.push(Registration { id: ServiceId::from_guid(guid), name });
    }
    Ok(out)
}

/// The service whose `ElementName` is `name` (ignoring case), if one is registered.
pub fn lookup(name: &str) -> io::Result<Option<ServiceId>> {
    Ok(services()?
        .into_iter()
        .find(|r| r.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .map(|r| r.id))
}

/// windows-registry reports HRESULTs; as Win32 codes they get std's error kinds
/// (PermissionDenied for ERROR_ACCESS_DENIED, NotFound for ERROR_FILE_NOT_FOUND).
trait ToIo<T> {
    fn io(self) -> io::Result<T>;
}

impl<T> ToIo<T> for windows_registry::Result<T> {
    fn io(self) -> io::Result<T> {
        self.map_err(|e| hresult_to_io(e.code().0))
    }
}

fn hresult_to_io(hr: i32) -> io::Error {
    let hr = hr as u32;
    if hr & 0xFFFF_0000 == 0x8007_0000 {
        io::Error::from_raw_os_error((hr & 0xFFFF) as i32)
    } else {
        io::Error::other(format!("registry error HRESULT {hr:#010x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// wine's registry is real enough: no admin rights are needed there.
    #[test]
    fn register_list_lookup_unregister() {
        let id = ServiceId::from_vsock_port(0x7fff_0001);
        let _ = unregister(id);
        register(id, "hvsock-unit-test").unwrap();
        register(id, "hvsock-unit-test-renamed").unwrap(); // again: updates, no error
        let found = services().unwrap().into_iter().find(|r| r.id == id).unwrap();
        assert_eq!(found.name.as_deref(), Some("hvsock-unit-test-renamed"));
        assert_eq!(lookup("HVSOCK-UNIT-TEST-RENAMED").unwrap(), Some(id));
        assert_eq!(lookup("hvsock-unit-test").unwrap(), None);
        assert!(unregister(id).unwrap());
        assert!(!unregister(id).unwrap(), "a second unregister finds nothing");
        assert!(!services().unwrap().iter().any(|r| r.id == id));
    }

    #[test]
    fn registry_errors_get_std_kinds() {
        assert_eq!(hresult_to_io(0x8007_0005_u32 as i32).kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(hresult_to_io(0x8007_0002_u32 as i32).kind(), io::ErrorKind::NotFound);
        assert!(hresult_to_io(0x8000_4005_u32 as i32).to_string().contains("0x80004005"));
    }
}
