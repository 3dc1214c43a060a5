//! Reading `/proc/self/mountinfo`: one decoder of its octal escapes (`\040` space, `\011`
//! tab, `\012` newline, `\134` backslash) for PID 1, its shutdown and cloud-init.

use std::path::Path;

/// Decode a mountinfo field. Anything that is not a valid escape is kept as it is.
pub fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(digits) = bytes.get(i + 1..i + 4)
            && digits.iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let code = digits.iter().fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            if let Ok(byte) = u8::try_from(code) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount points of a mountinfo text, in its order (parents before children).
pub fn mount_points(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .collect()
}

/// This process's mount points (none if mountinfo cannot be read).
pub fn current() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| mount_points(&t))
        .unwrap_or_default()
}

/// Whether something is mounted exactly at `path`.
pub fn is_mountpoint(path: &Path) -> bool {
    let want = path.to_string_lossy();
    current().iter().any(|p| *p == want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_escape_is_decoded_once() {
        assert_eq!(unescape(r"/mnt/a\040b\011c\012d\134e"), "/mnt/a b\tc\nd\\e");
        // `\134040` is a backslash followed by the text 040, not a space.
        assert_eq!(unescape(r"/x\134040"), r"/x\040");
        // Not an escape: kept.
        assert_eq!(unescape(r"/x\9\04"), r"/x\9\04");
        assert_eq!(unescape(r"/x\777"), r"/x\777");
    }

    #[test]
    fn mount_points_come_from_the_fifth_field() {
        let text = "22 1 0:21 / / rw - rootfs rootfs rw\n\
                    30 22 0:25 / /var/lib/my\\040data rw,relatime - ext4 /dev/vda1 rw\n";
        assert_eq!(mount_points(text), ["/", "/var/lib/my data"]);
    }
}
