//! Values of flags: seconds and byte counts, checked with one clear line when wrong.

use std::time::Duration;

/// The longest time every platform can honour: Windows takes socket timeouts as a u32 of
/// milliseconds (about 49.7 days).
pub const MAX_SECS: f64 = u32::MAX as f64 / 1000.0;
/// The shortest: one millisecond, the unit of Windows timeouts.
pub const MIN_SECS: f64 = 0.001;

/// Seconds, fractions allowed: `5`, `0.5`; from 0.001 to about 49 days.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(secs) if (MIN_SECS..=MAX_SECS).contains(&secs) => Ok(Duration::from_secs_f64(secs)),
        _ => Err(format!(
            "`{}` is not a number of seconds from {MIN_SECS} to {MAX_SECS} (about 49 days)",
            hvsock::Printable::new(s)
        )),
    }
}

/// [`parse_secs`], or `0` for "not at all".
pub fn parse_secs_or_zero(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(0.0) => Ok(Duration::ZERO),
        _ => parse_secs(s).map_err(|_| {
            format!(
                "`{}` is not 0 nor a number of seconds from {MIN_SECS} to {MAX_SECS} (about 49 days)",
                hvsock::Printable::new(s)
            )
        }),
    }
}

/// A byte count: `4096`, `64K`, `1M`, `1G` (binary units), from 1 to 1 TiB.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let shift = match unit.to_ascii_uppercase().trim_end_matches("IB").trim_end_matches('B') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => u32::MAX,
    };
    match num.parse::<u64>() {
        Ok(n)
            if shift != u32::MAX
                && n > 0
                && n.checked_shl(shift).is_some_and(|b| b >> shift == n && b <= 1 << 40) =>
        {
            Ok(n << shift)
        }
        _ => Err(format!(
            "`{}` is not a byte count from 1 to 1T (e.g. 4096, 64K, 1M, 1G)",
            hvsock::Printable::new(s)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64K"), Ok(65536));
        assert_eq!(parse_bytes("1m"), Ok(1 << 20));
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        for bad in ["", "0", "-1", "1T", "1.5M", "K", "99999999999999999999", "2048G", "1M1"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_secs("0.5").unwrap(), Duration::from_millis(500));
        for bad in ["0", "-1", "abc", "inf", "NaN", "1e20", "1e-300", "0.0009", "4294968", "1e17"] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_secs("0.001").unwrap(), Duration::from_millis(1));
        assert_eq!(parse_secs("4294967.295").unwrap(), Duration::from_millis(u32::MAX as u64));
    }
}
