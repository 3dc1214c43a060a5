//! berth-cloudinit: user-data, datasource meta-data, the console's account files and
//! `authorized_keys`, mountinfo.

use crate::mutate::{pick, word, yaml_scalar};
use crate::{split_parts, text};
use berth_cloudinit::metadata::{
    MetaData, ec2_meta_data, parse_ec2_public_key_index, parse_nocloud_meta_data, parse_openstack_meta_data,
};
use berth_cloudinit::userdata::{MAX_USER_DATA, parse_user_data};
use berth_config::schema::values::{Hostname, SshPublicKey};
use fastrand::Rng;
use std::io::Write as _;

pub const USER_DATA_DICT: &[&str] = &[
    "#cloud-config\n",
    "#!/bin/sh\n",
    "Content-Type: multipart/mixed; boundary=\"B\"\n",
    "MIME-Version: 1.0\n",
    "\n--B\n",
    "\n--B--\n",
    "Content-Type: text/cloud-config\n",
    "Content-Type: text/x-shellscript\n",
    "Content-Type: application/x-gzip\n",
    "Content-Transfer-Encoding: base64\n",
    "Content-Disposition: attachment; filename=\"a.sh\"\n",
    "#include\n",
    "#cloud-boothook\n",
    "\r\n",
    "\u{feff}",
];

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn gen_part(rng: &mut Rng, depth: u8) -> (String, Vec<u8>) {
    match rng.u8(..if depth > 1 { 3 } else { 6 }) {
        0 => (
            "text/cloud-config".into(),
            format!("#cloud-config\nhostname: {}\n", word(rng)).into_bytes(),
        ),
        1 => (
            "text/x-shellscript".into(),
            format!("#!/bin/sh\necho {}\n", word(rng)).into_bytes(),
        ),
        2 => (
            "text/plain".into(),
            format!("#cloud-config\nruncmd: [{}]\n", yaml_scalar(rng)).into_bytes(),
        ),
        3 => {
            let (_, inner) = gen_part(rng, depth + 1);
            ("application/x-gzip".into(), gzip(&inner))
        }
        4 => (
            "multipart/mixed; boundary=\"inner\"".into(),
            gen_mime(rng, depth + 1, "inner"),
        ),
        _ => {
            // A gzip bomb: little to read, a lot to inflate.
            let size = rng.usize(1..5) * 1024 * 1024;
            ("application/x-gzip".into(), gzip(&vec![b'#'; size]))
        }
    }
}

fn gen_mime(rng: &mut Rng, depth: u8, boundary: &str) -> Vec<u8> {
    let mut out =
        format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\nMIME-Version: 1.0\n\n").into_bytes();
    for i in 0..rng.usize(1..5) {
        let (kind, body) = gen_part(rng, depth);
        out.extend_from_slice(format!("--{boundary}\nContent-Type: {kind}\n").as_bytes());
        if rng.bool() {
            out.extend_from_slice(
                format!(
                    "Content-Disposition: attachment; filename=\"part{i}.{}\"\n",
                    word(rng)
                )
                .as_bytes(),
            );
        }
        if rng.bool() || kind.starts_with("application") {
            out.extend_from_slice(b"Content-Transfer-Encoding: base64\n\n");
            out.extend_from_slice(base64(&body).as_bytes());
        } else {
            out.push(b'\n');
            out.extend_from_slice(&body);
        }
        out.push(b'\n');
    }
    out.extend_from_slice(format!("--{boundary}--\n").as_bytes());
    out
}

/// User-data as datasources deliver it: cloud-config, scripts, gzip, nested MIME.
pub fn gen_user_data(rng: &mut Rng) -> Vec<u8> {
    match rng.u8(..4) {
        0 => {
            let boundary = pick(rng, &["B", "==x==", "a b"]);
            gen_mime(rng, 0, boundary)
        }
        1 => gzip(&gen_mime(rng, 1, "B")),
        2 => gen_part(rng, 0).1,
        _ => super::config::gen_yaml(rng),
    }
}

/// What the user-data parts keep, in bytes: text of the cloud-configs and scripts.
pub fn kept_bytes(data: &berth_cloudinit::userdata::UserData) -> usize {
    data.cloud_configs.iter().map(|c| c.text.len()).sum::<usize>()
        + data.scripts.iter().map(|s| s.content.len()).sum::<usize>()
}

/// User-data: never panics; all the parts together keep no more than the decompression
/// budget; script names are safe file names.
pub fn check_user_data(input: &[u8]) -> Result<(), String> {
    let data = parse_user_data(input);
    let kept = kept_bytes(&data);
    if kept > MAX_USER_DATA {
        return Err(format!(
            "{kept} bytes kept from {} bytes of input: more than the {MAX_USER_DATA}-byte budget",
            input.len()
        ));
    }
    for script in &data.scripts {
        let safe = !script.name.is_empty()
            && script.name != "."
            && script.name != ".."
            && script
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !safe {
            return Err(format!("script name {:?} is not a safe file name", script.name));
        }
    }
    Ok(())
}

/// What every meta-data parser must give: a host name that is valid, keys that are valid
/// one-line keys.
fn check_meta(meta: &MetaData) -> Result<(), String> {
    if let Some(h) = &meta.local_hostname
        && h.as_str().parse::<Hostname>().is_err()
    {
        return Err(format!("meta-data host name {h:?} is not a valid host name"));
    }
    for key in &meta.public_keys {
        if key.as_str().contains(['\n', '\r', '\0']) || key.as_str().parse::<SshPublicKey>().is_err() {
            return Err(format!(
                "meta-data key {:?} is not one valid key line",
                key.as_str()
            ));
        }
    }
    Ok(())
}

pub const META_DICT: &[&str] = &[
    "instance-id: ",
    "local-hostname: ",
    "hostname: ",
    "public-keys:",
    "public_keys",
    "\n  - ",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAb",
    "ssh-rsa AAAAB3NzaC1yc2E",
    "{\"uuid\": ",
    "\"hostname\": ",
    "\"public_keys\": {",
    "\"keys\": [{\"type\": \"ssh\", \"data\": ",
    "}",
    "]",
    "0=my-key\n",
    "\\n",
    "\n",
    "\"",
];

/// NoCloud `meta-data` YAML.
pub fn gen_nocloud(rng: &mut Rng) -> Vec<u8> {
    format!(
        "instance-id: {}\nlocal-hostname: {}\npublic-keys:\n  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{} {}\n",
        word(rng),
        yaml_scalar(rng),
        word(rng),
        word(rng)
    )
    .into_bytes()
}

pub fn check_nocloud(input: &[u8]) -> Result<(), String> {
    check_meta(&parse_nocloud_meta_data(input).0)
}

/// A config drive's `meta_data.json`.
pub fn gen_openstack(rng: &mut Rng) -> Vec<u8> {
    format!(
        "{{\"uuid\": \"{}\", \"hostname\": \"{}\", \"public_keys\": {{\"k\": \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{}\\n\"}}, \"keys\": [{{\"type\": \"ssh\", \"data\": \"{}\"}}]}}",
        word(rng),
        word(rng),
        word(rng),
        word(rng)
    )
    .into_bytes()
}

pub fn check_openstack(input: &[u8]) -> Result<(), String> {
    check_meta(&parse_openstack_meta_data(input).0)
}

/// EC2's answers, NUL-separated: `public-keys/` listing, instance-id, local-hostname, one key.
pub fn gen_ec2(rng: &mut Rng) -> Vec<u8> {
    format!(
        "0={}\n1={}\n\0i-{}\0ip-{}.ec2.internal {}\0ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{} {}\n",
        word(rng),
        word(rng),
        word(rng),
        rng.u16(..),
        word(rng),
        word(rng),
        word(rng)
    )
    .into_bytes()
}

pub fn check_ec2(input: &[u8]) -> Result<(), String> {
    let parts = split_parts(input, 4);
    let index = parse_ec2_public_key_index(&text(parts[0]));
    if index.len() > 100
        || index
            .iter()
            .any(|i| i.is_empty() || !i.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "key index {index:?} is not a list of at most 100 numbers"
        ));
    }
    let keys = vec![text(parts[3])];
    let (meta, _) = ec2_meta_data(Some(&text(parts[1])), Some(&text(parts[2])), &keys);
    check_meta(&meta)
}

/// How the kernel writes a path into mountinfo: space, tab, newline and backslash as
/// three-digit octal escapes.
fn mountinfo_escape(path: &str) -> String {
    let mut out = String::new();
    for c in path.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

pub const MOUNTINFO_DICT: &[&str] = &[
    " ", "\t", "\n", "\\", "\\040", "\\011", "\\012", "\\134", "\\1", "\\777", "/",
];

pub fn gen_mountinfo(rng: &mut Rng) -> Vec<u8> {
    let mut path = String::from("/");
    for _ in 0..rng.usize(1..5) {
        path.push_str(&word(rng));
        path.push_str(pick(rng, &[" ", "\\", "\t", "/", "\\040", "\n"]));
    }
    path.into_bytes()
}

/// A mount point as the kernel escapes it reads back as itself through the one mountinfo
/// reader (PID 1, its shutdown and cloud-init share it), so a mount at a path with a space is
/// seen as mounted and is unmounted at shutdown.
pub fn check_mountinfo(input: &[u8]) -> Result<(), String> {
    let path = text(input);
    let escaped = mountinfo_escape(&path);
    let read = berth_runtime::mountinfo::unescape(&escaped);
    if read != path {
        return Err(format!("{escaped:?} reads as {read:?}, not {path:?}"));
    }
    let line = format!("36 25 0:32 / {escaped} rw,relatime - ext4 /dev/vda1 rw");
    let points = berth_runtime::mountinfo::mount_points(&line);
    if points != [path.clone()] {
        return Err(format!("the line {line:?} gives the mount points {points:?}"));
    }
    // Any field at all (the kernel never writes some of these) must not panic either.
    let _ = berth_runtime::mountinfo::unescape(&path);
    let _ = berth_runtime::mountinfo::mount_points(&path);
    Ok(())
}
