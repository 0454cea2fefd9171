//! Hyper-V service registration (Windows).
//!
//! A Hyper-V host hands a guest's connection to a listener only when the service GUID is listed
//! under [`SERVICES_KEY`]; its `ElementName` is the service's display name.

use std::io;

use crate::ServiceId;

/// `HKLM\`[`SERVICES_KEY`]`\<service GUID>` holds one registered service.
pub const SERVICES_KEY: &str =
    r"SOFTWARE\Microsoft\Windows NT\CurrentVersion\Virtualization\GuestCommunicationServices";

/// Registers `service` with display name `name` (needs administrator rights; an existing
/// registration is updated).
///
/// ```no_run
/// use hvsock::{registry, ServiceId};
/// registry::register(ServiceId::from_vsock_port(19000)?, "MyGcs")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn register(service: ServiceId, name: &str) -> io::Result<()> {
    let key = windows_registry::LOCAL_MACHINE.create(format!(r"{SERVICES_KEY}\{service}"))?;
    key.set_string("ElementName", name)?;
    Ok(())
}
