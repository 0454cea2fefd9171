//! GUIDs as Hyper-V uses them.
//!
//! Text is the usual `8-4-4-4-12` hex form (any case, braces allowed); in memory Windows stores
//! a GUID "mixed-endian": the first three fields little-endian, the last eight bytes as they are.
//! That layout is what goes on the wire in a `SOCKADDR_HV`, so it is the one we encode.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::AddrError;

/// A GUID, shown in lowercase `8-4-4-4-12` form.
///
/// ```
/// use hvsock::Guid;
/// let g: Guid = "{E0E16197-DD56-4A10-9195-5EE7A155A838}".parse().unwrap();
/// assert_eq!(g.to_string(), "e0e16197-dd56-4a10-9195-5ee7a155a838");
/// assert_eq!(g.to_windows_bytes()[..4], [0x97, 0x61, 0xe1, 0xe0]);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Guid(Uuid);

impl Guid {
    /// The all-zero GUID.
    pub const ZERO: Guid = Guid(Uuid::nil());

    /// Builds a GUID from its four fields, as written in C (`{d1, d2, d3, {d4...}}`).
    pub const fn from_fields(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Guid {
        Guid(Uuid::from_fields(d1, d2, d3, &d4))
    }

    /// Builds a GUID from the number its text spells, e.g. `0xe0e16197_dd56_4a10_9195_5ee7a155a838`.
    pub const fn from_u128(v: u128) -> Guid {
        Guid(Uuid::from_u128(v))
    }

    /// The four fields: `Data1`, `Data2`, `Data3`, `Data4`.
    pub fn fields(&self) -> (u32, u16, u16, [u8; 8]) {
        let (d1, d2, d3, d4) = self.0.as_fields();
        (d1, d2, d3, *d4)
    }

    /// The 16 bytes as Windows keeps a `GUID` in memory (Data1..3 little-endian).
    pub fn to_windows_bytes(&self) -> [u8; 16] {
        self.0.to_bytes_le()
    }

    /// Reads the 16 bytes of a Windows in-memory `GUID`.
    pub fn from_windows_bytes(bytes: [u8; 16]) -> Guid {
        Guid(Uuid::from_bytes_le(bytes))
    }

    /// The same value as a [`uuid::Uuid`].
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl From<Uuid> for Guid {
    fn from(u: Uuid) -> Guid {
        Guid(u)
    }
}

impl From<Guid> for Uuid {
    fn from(g: Guid) -> Uuid {
        g.0
    }
}

impl FromStr for Guid {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Guid, AddrError> {
        // uuid also takes the 32-digit "simple" and urn: forms; a GUID on a Windows command line
        // is always hyphenated, and accepting bare hex would make `12345678...` ambiguous with
        // a number, so only the hyphenated form, with or without braces, is a GUID here.
        let inner = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')).unwrap_or(s);
        if inner.len() != 36 {
            return Err(AddrError::BadGuid(s.to_string()));
        }
        Uuid::try_parse(inner).map(Guid).map_err(|_| AddrError::BadGuid(s.to_string()))
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_any_case_with_or_without_braces() {
        let want = Guid::from_u128(0x90db8b89_0d35_4f79_8ce9_49ea0ac8b7cd);
        for s in [
            "90db8b89-0d35-4f79-8ce9-49ea0ac8b7cd",
            "90DB8B89-0D35-4F79-8CE9-49EA0AC8B7CD",
            "{90db8b89-0d35-4f79-8ce9-49ea0ac8b7cd}",
            "{90DB8b89-0d35-4f79-8ce9-49ea0ac8B7CD}",
        ] {
            assert_eq!(s.parse::<Guid>().unwrap(), want, "{s}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_hyphenated_guid() {
        for s in [
            "",
            "90db8b890d354f798ce949ea0ac8b7cd",
            "{90db8b89-0d35-4f79-8ce9-49ea0ac8b7cd",
            "90db8b89-0d35-4f79-8ce9-49ea0ac8b7cz",
            "90db8b89-0d35-4f79-8ce9-49ea0ac8b7cd0",
            "urn:uuid:90db8b89-0d35-4f79-8ce9-49ea0ac8",
        ] {
            let err = s.parse::<Guid>().unwrap_err();
            assert!(err.to_string().contains("is not a GUID"), "{s}: {err}");
        }
    }

    #[test]
    fn windows_layout_is_mixed_endian() {
        let g: Guid = "00004a38-facb-11e6-bd58-64006a7986d3".parse().unwrap();
        assert_eq!(
            g.to_windows_bytes(),
            [0x38, 0x4a, 0x00, 0x00, 0xcb, 0xfa, 0xe6, 0x11, 0xbd, 0x58, 0x64, 0x00, 0x6a, 0x79, 0x86, 0xd3]
        );
        assert_eq!(Guid::from_windows_bytes(g.to_windows_bytes()), g);
        assert_eq!(g.fields(), (0x4a38, 0xfacb, 0x11e6, [0xbd, 0x58, 0x64, 0x00, 0x6a, 0x79, 0x86, 0xd3]));
    }

    #[test]
    fn display_round_trips() {
        let g =
            Guid::from_fields(0xa42e7cda, 0xd03f, 0x480c, [0x9c, 0xc2, 0xa4, 0xde, 0x20, 0xab, 0xb8, 0x78]);
        assert_eq!(g.to_string(), "a42e7cda-d03f-480c-9cc2-a4de20abb878");
        assert_eq!(g.to_string().parse::<Guid>().unwrap(), g);
    }
}
