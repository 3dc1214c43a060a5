//! GRUB's environment block (`grub/grubenv`): the A/B boot counter's state. GRUB reads it with
//! `load_env` and rewrites it in place with `save_env`; it never changes the file's size. The
//! format: the header line, `key=value` lines, then `#` up to exactly 1024 bytes.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// The size of every environment block GRUB writes.
pub const SIZE: usize = 1024;
const HEADER: &str = "# GRUB Environment Block\n";

/// The keys of the boot counter (see grub.cfg in [`crate::grub`]).
pub const BOOT_SLOT: &str = "boot_slot";
pub const PREV_SLOT: &str = "prev_slot";
pub const BOOT_OK: &str = "boot_ok";
pub const BOOT_TRIES: &str = "boot_tries";
pub const ROLLED_BACK: &str = "rolled_back";

#[derive(Debug, thiserror::Error)]
pub enum GrubEnvError {
    #[error("{path}: not a GRUB environment block ({why})")]
    Format { path: String, why: String },
    #[error("the GRUB environment does not fit in {SIZE} bytes ({0} bytes of variables)")]
    TooLarge(usize),
    #[error("`{0}` cannot be a GRUB environment variable (name or value holds `=`, a newline or nothing)")]
    BadVariable(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The variables of one environment block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrubEnv(BTreeMap<String, String>);

impl GrubEnv {
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter's state for a freshly installed disk: slot A is the good slot.
    pub fn installed() -> Self {
        let mut env = Self::new();
        for (k, v) in [
            (BOOT_SLOT, "A"),
            (PREV_SLOT, "A"),
            (BOOT_OK, "1"),
            (BOOT_TRIES, "0"),
        ] {
            env.0.insert(k.to_string(), v.to_string());
        }
        env
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn set(&mut self, key: &str, value: &str) -> Result<(), GrubEnvError> {
        let bad = |s: &str| s.is_empty() || s.contains(['=', '\n']);
        if bad(key) || value.contains('\n') {
            return Err(GrubEnvError::BadVariable(format!("{key}={value}")));
        }
        self.0.insert(key.to_string(), value.to_string());
        Ok(())
    }

    pub fn remove(&mut self, key: &str) {
        self.0.remove(key);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Parse a block (`origin` names it in errors).
    pub fn parse(bytes: &[u8], origin: &str) -> Result<Self, GrubEnvError> {
        let format = |why: &str| GrubEnvError::Format {
            path: origin.to_string(),
            why: why.to_string(),
        };
        let text = std::str::from_utf8(bytes).map_err(|_| format("not UTF-8"))?;
        let body = text
            .strip_prefix(HEADER)
            .ok_or_else(|| format("no `# GRUB Environment Block` header"))?;
        let mut env = Self::new();
        for line in body.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| format(&format!("line `{line}` has no `=`")))?;
            env.0.insert(k.to_string(), v.to_string());
        }
        Ok(env)
    }

    /// The 1024-byte block.
    pub fn to_block(&self) -> Result<[u8; SIZE], GrubEnvError> {
        let mut text = String::from(HEADER);
        for (k, v) in &self.0 {
            text.push_str(k);
            text.push('=');
            text.push_str(v);
            text.push('\n');
        }
        if text.len() > SIZE {
            return Err(GrubEnvError::TooLarge(text.len()));
        }
        let mut block = [b'#'; SIZE];
        block[..text.len()].copy_from_slice(text.as_bytes());
        Ok(block)
    }

    /// Read the block at `path`.
    pub fn read(path: &Path) -> Result<Self, GrubEnvError> {
        let io = |source| GrubEnvError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(SIZE as u64 * 2).read_to_end(&mut bytes))
            .map_err(io)?;
        Self::parse(&bytes, &path.display().to_string())
    }

    /// Rewrite the block at `path` in place, as GRUB's `save_env` does: the file is opened
    /// without truncation, written with one 1024-byte write at offset 0 and synced, so the
    /// blocks GRUB found for it stay the same and no crash leaves a short file.
    pub fn write_in_place(&self, path: &Path) -> Result<(), GrubEnvError> {
        let block = self.to_block()?;
        let io = |source| GrubEnvError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = std::fs::OpenOptions::new().write(true).open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len != SIZE as u64 {
            return Err(GrubEnvError::Format {
                path: path.display().to_string(),
                why: format!("{len} bytes, not {SIZE}: GRUB could not save to it"),
            });
        }
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(&block).map_err(io)?;
        file.sync_all().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn round_trip_and_exact_size() {
        let mut env = GrubEnv::installed();
        env.set(ROLLED_BACK, "B").unwrap();
        let block = env.to_block().unwrap();
        assert_eq!(block.len(), SIZE);
        assert!(block.starts_with(b"# GRUB Environment Block\nboot_ok=1\n"));
        assert_eq!(block[SIZE - 1], b'#');
        assert_eq!(GrubEnv::parse(&block, "t").unwrap(), env);
    }

    #[test]
    fn bad_input_is_named() {
        let err = GrubEnv::parse(b"boot_slot=A\n", "disk:grubenv")
            .unwrap_err()
            .to_string();
        assert!(err.contains("disk:grubenv") && err.contains("header"), "{err}");
        let err = GrubEnv::parse(b"# GRUB Environment Block\nnonsense\n", "x").unwrap_err();
        assert!(err.to_string().contains("nonsense"), "{err}");
        assert!(GrubEnv::new().set("a=b", "c").is_err());
        assert!(GrubEnv::new().set("a", "c\nd").is_err());
        let mut big = GrubEnv::new();
        big.set("k", &"v".repeat(SIZE)).unwrap();
        assert!(matches!(big.to_block(), Err(GrubEnvError::TooLarge(_))));
    }

    /// GRUB's own tool reads what we write, and we read what it writes.
    #[test]
    fn grub_editenv_agrees() {
        if Command::new("grub-editenv").arg("--version").output().is_err() {
            eprintln!("grub-editenv is not installed (grub-common): skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grubenv");
        let out = Command::new("grub-editenv")
            .arg(&path)
            .arg("create")
            .status()
            .unwrap();
        assert!(out.success());
        let mut env = GrubEnv::read(&path).unwrap();
        assert_eq!(env, GrubEnv::new());
        env = GrubEnv::installed();
        env.set(BOOT_SLOT, "B").unwrap();
        env.write_in_place(&path).unwrap();
        let listed = Command::new("grub-editenv")
            .arg(&path)
            .arg("list")
            .output()
            .unwrap();
        let listed = String::from_utf8(listed.stdout).unwrap();
        assert!(
            listed.contains("boot_slot=B\n") && listed.contains("boot_ok=1\n"),
            "{listed}"
        );
        let status = Command::new("grub-editenv")
            .arg(&path)
            .args(["set", "boot_tries=2"])
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(GrubEnv::read(&path).unwrap().get(BOOT_TRIES), Some("2"));
    }

    #[test]
    fn in_place_refuses_a_file_grub_could_not_save_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grubenv");
        std::fs::write(&path, b"short").unwrap();
        let err = GrubEnv::installed().write_in_place(&path).unwrap_err();
        assert!(err.to_string().contains("5 bytes"), "{err}");
    }
}
