//! `--max-memory`: sizes as people write them (`512M`, `2G`), the default budget (half the
//! machine's memory), and sizes shown back as people read them.

use std::path::Path;

/// The default's share of the machine's memory: half, so that the system and other programs
/// keep the rest.
const DEFAULT_SHARE: u64 = 2;

/// The default budget where the machine's memory cannot be read: 2 GiB.
const FALLBACK_BYTES: u64 = 2 << 30;

/// Parses a size in bytes: a number, optionally with a fraction, then an optional binary
/// suffix `K`, `M`, `G` or `T` (powers of 1024, as `sort -S` and Java's `-Xmx` read them),
/// optionally followed by `B` or `iB`, in any case: `1073741824`, `512M`, `1.5G`, `2GiB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "'{text}' is not a size: give bytes, or a number with K, M, G or T (powers of 1024), as in 512M or 2G"
        )
    };
    let trimmed = text.trim();
    let lower = trimmed.to_ascii_lowercase();
    let unit_start = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(unit_start);
    let shift = match unit.trim_start() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(bad());
    }
    let too_large = || format!("'{text}' is more bytes than a 64-bit machine addresses");
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let mut bytes = whole.checked_shl(shift).ok_or_else(too_large)?;
    if !fraction.is_empty() {
        // Exact decimal arithmetic: digits / 10^len · 2^shift, rounded down to a byte.
        let digits: u128 = fraction
            .get(..fraction.len().min(18))
            .unwrap_or("")
            .parse()
            .map_err(|_| bad())?;
        let scale = 10u128.pow(fraction.len().min(18) as u32);
        bytes += (digits << shift) / scale;
    }
    let bytes = u64::try_from(bytes).map_err(|_| too_large())?;
    if bytes == 0 {
        return Err(format!("'{text}' is no memory at all: give a size above 0"));
    }
    Ok(bytes)
}

/// The budget when `--max-memory` is not given: half the machine's memory (`MemTotal` in
/// `/proc/meminfo`), or 2 GiB where that cannot be read.
pub fn default_max_memory() -> u64 {
    total_memory(Path::new("/proc/meminfo")).map_or(FALLBACK_BYTES, |total| total / DEFAULT_SHARE)
}

/// `MemTotal` from a `/proc/meminfo`-style file, in bytes.
fn total_memory(meminfo: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(meminfo).ok()?;
    mem_total(&text)
}

/// The memory the kernel says a new program can take without swapping (`MemAvailable` in
/// `/proc/meminfo`), in bytes, where it can be read.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    meminfo_bytes(&text, "MemAvailable:")
}

fn mem_total(meminfo: &str) -> Option<u64> {
    meminfo_bytes(meminfo, "MemTotal:")
}

/// The field `key` of a `/proc/meminfo`-style text, in bytes (a positive count).
fn meminfo_bytes(meminfo: &str, key: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with(key))?;
    let mut fields = line[key.len()..].split_whitespace();
    let value: u64 = fields.next()?.parse().ok()?;
    let unit = match fields.next() {
        Some("kB") => 1024,
        None => 1,
        Some(_) => return None,
    };
    value.checked_mul(unit).filter(|&b| b > 0)
}

/// A byte count as people read it: `512 MiB`, `1.5 GiB`, `17 bytes`.
pub fn human(bytes: u128) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value >= 1024.0 {
        // Past exbibytes (a u128 can be): say it in bytes.
        return format!("{bytes} bytes");
    }
    let digits = if value < 10.0 { 1 } else { 0 };
    format!("{value:.digits$} {}", UNITS[unit])
}

/// [`human`], with the exact count after it where they differ: `28 TiB (30900142708847
/// bytes)`.
pub fn human_exact(bytes: u128) -> String {
    let short = human(bytes);
    if short.ends_with(" bytes") {
        short
    } else {
        format!("{short} ({bytes} bytes)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_people_write_them() {
        for (text, bytes) in [
            ("1073741824", 1 << 30),
            ("512M", 512 << 20),
            ("512m", 512 << 20),
            ("2G", 2 << 30),
            ("2GiB", 2 << 30),
            ("2GB", 2 << 30),
            ("1.5G", 3 << 29),
            ("0.5K", 512),
            (".5K", 512),
            ("64k", 64 << 10),
            ("1T", 1 << 40),
            ("100B", 100),
            (" 3 M ", 3 << 20),
            ("16777215T", 16_777_215 << 40),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn bad_sizes_are_refused_with_a_reason() {
        for text in [
            "", "M", "abc", "-1G", "1..5G", "1.5.5G", "2X", "2 GB B", "1e9",
        ] {
            let err = parse_size(text).unwrap_err();
            assert!(err.contains("is not a size"), "{text}: {err}");
        }
        for text in ["0", "0G", "0.0000001K"] {
            let err = parse_size(text).unwrap_err();
            assert!(err.contains("above 0"), "{text}: {err}");
        }
        for text in ["16777216T", "99999999999999999999999999999999999999999"] {
            let err = parse_size(text).unwrap_err();
            assert!(err.contains("more bytes than"), "{text}: {err}");
        }
    }

    #[test]
    fn the_machines_memory_is_read_from_meminfo() {
        let text = "MemTotal:       24576000 kB\nMemFree:  100 kB\n";
        assert_eq!(mem_total(text), Some(24_576_000 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total("MemTotal: lots\n"), None);
        assert_eq!(mem_total("MemTotal: 0 kB\n"), None);
        assert_eq!(total_memory(Path::new("/no/such/meminfo")), None);
        assert!(default_max_memory() > 0);
    }

    #[test]
    fn sizes_read_back_as_people_read_them() {
        assert_eq!(human(17), "17 bytes");
        assert_eq!(human(512 << 20), "512 MiB");
        assert_eq!(human(3 << 29), "1.5 GiB");
        assert_eq!(human(46_080_460_800), "43 GiB");
        assert_eq!(human(1 << 60), "1.0 EiB");
        assert_eq!(human(1 << 80), format!("{} bytes", 1u128 << 80));
        assert_eq!(human_exact(3 << 29), "1.5 GiB (1610612736 bytes)");
        assert_eq!(human_exact(1 << 80), format!("{} bytes", 1u128 << 80));
    }
}
