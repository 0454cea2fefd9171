//! Where a lab participant runs; known on every platform so that command lines can name it.

/// Where a participant runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A child VM on the switch: CIDs 3, 4, ... in the order the guests are given.
    Guest,
    /// The host as KVM/vhost-vsock hosts are: a VM whose own CID is 2, with real AF_VSOCK,
    /// vsock_loopback and vsock_diag. Guests' connections to CID 2 reach it instead of the
    /// hybrid Unix sockets. At most one.
    VmHost,
    /// A command on this machine (the hybrid-vsock host side).
    Host,
}
