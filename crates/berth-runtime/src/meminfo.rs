//! `/proc/meminfo`, read by `berth status` (memory used) and init (the zram swap's size).

/// The kernel's memory figures.
pub const PATH: &str = "/proc/meminfo";

/// The value of `name` (`MemTotal`, `MemAvailable`, ...) in a `/proc/meminfo` text, in bytes
/// (the kernel writes kB); `None` when the field is missing or unreadable.
pub fn bytes(meminfo: &str, name: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix(':')?;
        let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_in_kib_and_named_exactly() {
        let text = "MemTotal:         475572 kB\nMemFree:            7300 kB\nMemAvailable: 1 kB\n";
        assert_eq!(bytes(text, "MemTotal"), Some(475_572 * 1024));
        assert_eq!(bytes(text, "MemAvailable"), Some(1024));
        // A prefix of another field's name is not that field.
        assert_eq!(bytes(text, "Mem"), None);
        assert_eq!(bytes(text, "SwapTotal"), None);
        assert_eq!(bytes("MemTotal: lots kB\n", "MemTotal"), None);
    }
}
