use crate::ServiceId;

/// What was wrong with an address, a name or an endpoint string.
///
/// Every message names the part that was wrong and, where it helps, what would be right, so a
/// command-line tool can print it as its one line of error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddrError {
    /// Text that is not a GUID.
    #[error(
        "`{0}` is not a GUID (expected 8-4-4-4-12 hex digits, e.g. a42e7cda-d03f-480c-9cc2-a4de20abb878)"
    )]
    BadGuid(String),
    /// Text that is neither a VM name, a GUID nor a CID.
    #[error("`{0}` is not a VM: expected any, loopback, parent, children, broadcast, a VM ID GUID or a CID number")]
    BadVm(String),
    /// Text that is neither a port nor a service GUID.
    #[error("`{0}` is not a service: expected a port number (0-4294967295), a service GUID, or on Windows a registered service's name")]
    BadService(String),
    /// A port too large for the VSOCK template GUID.
    #[error("port {0} has no Hyper-V service GUID: the VSOCK template holds ports 0-2147483647")]
    PortTooLarge(u32),
    /// A service GUID that does not follow the VSOCK template, used where a port is needed.
    #[error("service {0} is not a VSOCK template GUID (xxxxxxxx-facb-11e6-bd58-64006a7986d3), so it has no vsock port")]
    NotTemplate(ServiceId),
    /// A name that exists but means nothing for this platform or this end of the connection.
    #[error("{name}: {why}")]
    NoMapping {
        /// The name as the user would write it.
        name: String,
        /// Why it cannot be used, and what to use instead.
        why: &'static str,
    },
    /// An endpoint string with a bad part.
    #[error("endpoint `{endpoint}`: {problem}")]
    BadEndpoint {
        /// The whole endpoint string.
        endpoint: String,
        /// The part that was wrong, and why.
        problem: String,
    },
    /// Raw socket-address bytes that do not decode.
    #[error("{0}")]
    BadBytes(String),
}

impl From<AddrError> for std::io::Error {
    fn from(e: AddrError) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e)
    }
}
