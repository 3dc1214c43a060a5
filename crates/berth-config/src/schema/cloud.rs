//! The standard cloud-config keys Berth applies: users, write_files, mounts.

use super::forms::{comma_list, sudo_rules};
use super::values::{AbsolutePath, FileMode, ServiceName, SshPublicKey};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

pub use super::account::UserName;
use super::account::{Gecos, GroupName, HomeDir, LoginShell};

fn yes() -> bool {
    true
}

/// A `users:` entry. A bare string is a user with that name (`users: [default, alice]`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct UserSpec {
    pub name: UserName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gecos: Option<Gecos>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homedir: Option<HomeDir>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_group: Option<GroupName>,
    /// Supplementary groups: a list, or a comma-separated string.
    #[serde(
        default,
        deserialize_with = "comma_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub groups: Vec<GroupName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<LoginShell>,
    /// sudoers rules (`ALL=(ALL) NOPASSWD:ALL`); `false` or absent for none.
    #[serde(
        default,
        deserialize_with = "sudo_rules",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub sudo: Vec<String>,
    /// Lock the password (key-only login). Default: true.
    #[serde(default = "yes")]
    pub lock_passwd: bool,
    /// A crypt(3) password hash. Private: left out of `berth config export`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passwd: Option<String>,
    /// Same as `passwd`. Private.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashed_passwd: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_authorized_keys: Vec<SshPublicKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub system: bool,
}

/// How `write_files` content is encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum Encoding {
    #[default]
    #[serde(rename = "text/plain", alias = "text", alias = "plain")]
    Text,
    #[serde(rename = "b64", alias = "base64")]
    Base64,
    #[serde(rename = "gzip", alias = "gz")]
    Gzip,
    #[serde(
        rename = "gzip+b64",
        alias = "gz+b64",
        alias = "gz+base64",
        alias = "gzip+base64"
    )]
    GzipBase64,
}

/// A `write_files:` entry.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct WriteFile {
    pub path: AbsolutePath,
    #[serde(default)]
    pub content: String,
    #[serde(default, skip_serializing_if = "is_text")]
    pub encoding: Encoding,
    /// Default when absent: `0644`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<FileMode>,
    /// `user`, `user:group` (names or ids). Default: `root:root`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub append: bool,
    /// Write the file inside this system container instead of the console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ServiceName>,
}

fn is_text(e: &Encoding) -> bool {
    *e == Encoding::Text
}

/// Decoded content larger than this is refused (a gzip bomb would otherwise fill RAM).
pub const MAX_DECODED_CONTENT: u64 = 64 * 1024 * 1024;

impl WriteFile {
    /// The bytes to write, after base64 and gzip decoding.
    pub fn decoded_content(&self) -> Result<Vec<u8>, String> {
        use base64::Engine as _;
        use std::io::Read as _;
        let base64 = || {
            let compact: String = self.content.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact.as_bytes())
                .map_err(|e| format!("{}: the content is not valid base64: {e}", self.path))
        };
        let gunzip = |bytes: &[u8]| {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(bytes)
                .take(MAX_DECODED_CONTENT + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("{}: the content is not valid gzip: {e}", self.path))?;
            if out.len() as u64 > MAX_DECODED_CONTENT {
                return Err(format!(
                    "{}: the content decompresses to more than {MAX_DECODED_CONTENT} bytes",
                    self.path
                ));
            }
            Ok(out)
        };
        match self.encoding {
            Encoding::Text => Ok(self.content.as_bytes().to_vec()),
            Encoding::Base64 => base64(),
            Encoding::Gzip => gunzip(self.content.as_bytes()),
            Encoding::GzipBase64 => gunzip(&base64()?),
        }
    }

    /// The mode to create the file with.
    pub fn mode(&self) -> FileMode {
        self.permissions.unwrap_or(FileMode::from_bits_truncate(0o644))
    }
}

/// A `mounts:` entry, cloud-init's fstab-like list: `[device, mountpoint, fstype, options,
/// dump, pass]`; only the device and mount point are required.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    pub device: String,
    /// `None` (or `none`) for swap.
    pub mountpoint: Option<String>,
    pub fstype: Option<String>,
    pub options: Option<String>,
    pub dump: Option<String>,
    pub pass: Option<String>,
}

impl<'de> Deserialize<'de> for MountEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MountVisitor;
        impl<'de> Visitor<'de> for MountVisitor {
            type Value = MountEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list [device, mountpoint, fstype, options, dump, pass]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MountEntry, A::Error> {
                let mut fields: Vec<Option<String>> = Vec::new();
                while let Some(item) = seq.next_element::<Option<String>>()? {
                    fields.push(item);
                }
                if fields.len() < 2 || fields.len() > 6 {
                    return Err(de::Error::custom(format!(
                        "a mount entry has 2 to 6 items [device, mountpoint, fstype, options, dump, pass], got {}",
                        fields.len()
                    )));
                }
                let mut it = fields.into_iter();
                let device = it.next().flatten().filter(|d| !d.is_empty()).ok_or_else(|| {
                    de::Error::custom("the first item of a mount entry (the device) is missing")
                })?;
                let mountpoint = it.next().flatten();
                if let Some(mp) = &mountpoint
                    && mp != "none"
                    && !mp.starts_with('/')
                {
                    return Err(de::Error::custom(format!(
                        "the mount point {mp:?} must be an absolute path (or none for swap)"
                    )));
                }
                Ok(MountEntry {
                    device,
                    mountpoint,
                    fstype: it.next().flatten(),
                    options: it.next().flatten(),
                    dump: it.next().flatten(),
                    pass: it.next().flatten(),
                })
            }
        }
        d.deserialize_seq(MountVisitor)
    }
}

impl Serialize for MountEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut items = vec![
            Some(self.device.clone()),
            self.mountpoint.clone(),
            self.fstype.clone(),
            self.options.clone(),
            self.dump.clone(),
            self.pass.clone(),
        ];
        while items.len() > 2 && items.last().is_some_and(Option::is_none) {
            items.pop();
        }
        items.serialize(s)
    }
}
