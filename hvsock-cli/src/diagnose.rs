//! Socket errors told as what probably happened and what to do.

pub use hvsock_relay::error::socket_error;

/// A registry failure; missing rights get the one fix there is.
#[cfg(any(windows, test))] // the registry commands are Windows-only; its wording is tested everywhere
pub fn registry_error(action: impl std::fmt::Display, e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        anyhow::anyhow!("{action}: administrator rights are needed: run it from an elevated prompt")
    } else {
        anyhow::anyhow!("{action}: {e}")
    }
}

/// The one line for a Windows-only command run elsewhere.
#[cfg(not(windows))]
pub fn windows_only(command: &str) -> anyhow::Error {
    anyhow::anyhow!("{command} is only supported on Windows (Hyper-V lists services in the host's registry)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn missing_rights_say_elevate() {
        let e = registry_error("cannot register x", io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(
            e.to_string(),
            "cannot register x: administrator rights are needed: run it from an elevated prompt"
        );
        let e = registry_error("cannot register x", io::Error::other("disk on fire"));
        assert_eq!(e.to_string(), "cannot register x: disk on fire");
    }
}
