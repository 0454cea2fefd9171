//! GUID, VM and service text (`{…}`, `parent`, `children`, `vsock-5000`, service GUIDs): parsing
//! never panics, and what parses prints as text that parses back to the same.
#![no_main]

use std::fmt::Display;
use std::str::FromStr;

use hvsock::{Guid, Service, ServiceId, Vm, VmId};
use libfuzzer_sys::fuzz_target;

fn round_trip<T: FromStr + Display + PartialEq + std::fmt::Debug>(text: &str)
where
    T::Err: Display,
{
    if let Ok(v) = text.parse::<T>() {
        let shown = v.to_string();
        let again = shown.parse::<T>().unwrap_or_else(|e| panic!("{shown:?} from {text:?}: {e}"));
        assert_eq!(again, v, "{text:?} -> {shown:?}");
    }
}

fuzz_target!(|text: &str| {
    round_trip::<Guid>(text);
    round_trip::<VmId>(text);
    round_trip::<ServiceId>(text);
    round_trip::<Vm>(text);
    round_trip::<Service>(text);
});
