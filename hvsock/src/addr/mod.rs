//! Addresses: GUIDs' roles (VM and service IDs), the two native socket addresses, the
//! platform-neutral names and the endpoint strings built from them.

mod endpoint;
mod error;
mod hv;
mod names;
mod service_id;
mod socket_addr;
mod vm_id;
mod vsock;

pub use endpoint::Endpoint;
pub use error::AddrError;
pub use hv::HvAddr;
pub use names::{Role, Service, Vm};
pub use service_id::ServiceId;
pub use socket_addr::{SocketAddr, ToSocketAddr};
pub use vm_id::VmId;
pub use vsock::VsockAddr;
