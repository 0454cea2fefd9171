//! Endpoint strings (`vsock:any:5000`, `hv:{GUID}:{GUID}`, `hybrid:/path:5000`, `tcp:[::1]:80`):
//! parsing never panics, and what parses prints as text that parses back to the same.
#![no_main]

use hvsock::Endpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(ep) = text.parse::<Endpoint>() {
        let shown = ep.to_string();
        let again: Endpoint = shown.parse().unwrap_or_else(|e| panic!("{shown:?} from {text:?}: {e}"));
        assert_eq!(again, ep, "{text:?} -> {shown:?}");
    }
});
