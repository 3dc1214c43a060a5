//! dm-verity at build time: each squashfs image that a medium carries (the OS image, the system
//! images) gets its SHA-256 hash tree appended with `veritysetup format`, and the tree's root
//! hash goes into the slim initrd (`berth/verity.json`, read by `berth_boot::verity` at boot).

use anyhow::{Context, Result, bail};
use berth_boot::verity::{BLOCK, Image};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where [`append`] keeps an image's parameters: `os.img` → `os.img.verity.json`.
pub fn params_path(image: &Path) -> PathBuf {
    let mut name = image.as_os_str().to_owned();
    name.push(".verity.json");
    PathBuf::from(name)
}

/// Pad `image` to whole blocks (squashfs ignores what follows its data), append its hash
/// tree and write its parameters to [`params_path`]. The salt is the data's SHA-256: the same
/// image always gets the same tree.
pub fn append(image: &Path) -> Result<Image> {
    let len = std::fs::metadata(image)?.len();
    let padded = len.next_multiple_of(BLOCK);
    std::fs::OpenOptions::new()
        .write(true)
        .open(image)?
        .set_len(padded)?;
    let salt = crate::apt::sha256_file(image)?;
    let data_blocks = padded / BLOCK;
    let output = Command::new("veritysetup")
        .arg("format")
        .args(common_args(data_blocks, &salt))
        .arg(image)
        .arg(image)
        .output()
        .context("running veritysetup (apt-get install cryptsetup-bin)")?;
    if !output.status.success() {
        bail!(
            "veritysetup format {} failed: {}",
            image.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let root_hash = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .map(|h| h.trim().to_string())
        .with_context(|| format!("veritysetup printed no root hash: {stdout}"))?;
    let params = Image {
        data_blocks,
        root_hash,
        salt,
    };
    if !verify(image, &params)? {
        bail!(
            "{}: veritysetup verify refuses the tree just made",
            image.display()
        );
    }
    std::fs::write(params_path(image), serde_json::to_vec_pretty(&params)?)?;
    Ok(params)
}

/// The parameters [`append`] wrote for `image`.
pub fn read(image: &Path) -> Result<Image> {
    let path = params_path(image);
    serde_json::from_slice(&std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?)
        .with_context(|| format!("parsing {}", path.display()))
}

fn common_args(data_blocks: u64, salt: &str) -> Vec<String> {
    [
        "--no-superblock",
        "--hash=sha256",
        &format!("--data-block-size={BLOCK}"),
        &format!("--hash-block-size={BLOCK}"),
        &format!("--data-blocks={data_blocks}"),
        &format!("--hash-offset={}", data_blocks * BLOCK),
        &format!("--salt={salt}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Check `image` against its tree in user space (`veritysetup verify`): Ok(false) when a
/// block does not match.
pub fn verify(image: &Path, params: &Image) -> Result<bool> {
    let status = Command::new("veritysetup")
        .arg("verify")
        .args(common_args(params.data_blocks, &params.salt))
        .arg(image)
        .arg(image)
        .arg(&params.root_hash)
        .stderr(std::process::Stdio::null())
        .status()
        .context("running veritysetup")?;
    Ok(status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_follows_the_data_and_catches_one_flipped_bit() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("os.img");
        // Not a whole number of blocks: padded first.
        let data: Vec<u8> = (0..300_001u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&image, &data).unwrap();
        let params = append(&image).unwrap();
        assert_eq!(params.data_blocks, 74);
        assert_eq!(read(&image).unwrap(), params);
        let written = std::fs::read(&image).unwrap();
        assert_eq!(&written[..data.len()], &data[..], "the data is unchanged");
        assert!(written.len() as u64 > 74 * BLOCK, "the tree follows the data");
        assert_eq!(params.root_hash.len(), 64);
        assert!(verify(&image, &params).unwrap());

        // The same data gives the same tree (the salt is the data's digest).
        let again = dir.path().join("again.img");
        std::fs::write(&again, &data).unwrap();
        assert_eq!(append(&again).unwrap(), params);

        let mut flipped = written.clone();
        flipped[150_000] ^= 0x10;
        std::fs::write(&image, &flipped).unwrap();
        assert!(!verify(&image, &params).unwrap(), "a flipped bit went unnoticed");
    }
}
