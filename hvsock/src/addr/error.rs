use crate::{Printable, ServiceId};

/// What was wrong with an address, a name or an endpoint string.
///
/// Every message names the part that was wrong and, where it helps, what would be right, so a
/// command-line tool can print it as its one line of error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddrError {
    /// Text that is not a GUID.
    #[error(
        "`{}` is not a GUID (expected 8-4-4-4-12 hex digits, e.g. a42e7cda-d03f-480c-9cc2-a4de20abb878)",
        Printable::new(.0)
    )]
    BadGuid(String),
    /// Text that is neither a VM name, a GUID nor a CID.
    #[error("`{}` is not a VM: expected any, loopback, parent, children, broadcast, a VM ID GUID or a CID number", Printable::new(.0))]
    BadVm(String),
    /// Text that is neither a port nor a service GUID.
    #[error("`{}` is not a service: expected a port number (0-4294967295), a service GUID, or on Windows a registered service's name", Printable::new(.0))]
    BadService(String),
    /// A service GUID that does not follow the VSOCK template, used where a port is needed.
    #[error("service {0} is not a VSOCK template GUID (xxxxxxxx-facb-11e6-bd58-64006a7986d3), so it has no vsock port")]
    NotTemplate(ServiceId),
    /// A name that exists but means nothing for this platform or this end of the connection.
    #[error("{}: {why}", Printable::new(.name))]
    NoMapping {
        /// The name as the user would write it.
        name: String,
        /// Why it cannot be used, and what to use instead.
        why: &'static str,
    },
    /// An endpoint string with a bad part.
    #[error("endpoint `{}`: {}", Printable::new(.endpoint), Printable::new(.problem).limit(200))]
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
