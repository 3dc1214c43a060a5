//! `/etc/hosts` naming this machine: written by PID 1 on the host and by the console in its
//! container, from the same text.

use std::path::Path;

/// The file's text for `hostname`.
pub fn render(hostname: &str) -> String {
    format!(
        "127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\t\tlocalhost ip6-localhost ip6-loopback\n\
         ff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n"
    )
}

/// Write it (a temporary file renamed over the old one: readers never see half a file).
pub fn write(path: &Path, hostname: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".berth-tmp");
    std::fs::write(&tmp, render(hostname))?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_machine_name_resolves_locally() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        super::write(&path, "node-1").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().any(|l| l == "127.0.1.1\tnode-1"), "{text}");
        assert!(text.starts_with("127.0.0.1\tlocalhost\n"));
    }
}
