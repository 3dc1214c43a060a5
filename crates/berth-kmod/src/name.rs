//! Module names and alias strings as the kernel and depmod spell them.
//!
//! The kernel treats `-` and `_` in a module name as the same character (the file
//! `amd-uncore.ko.xz` holds the module `amd_uncore`), and depmod stores aliases with `-`
//! turned into `_` outside `[...]` classes. Everything in this crate compares the
//! normalised forms produced here.

use std::path::Path;

/// The canonical form of a module name: every `-` becomes `_`.
pub fn normalize_name(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name held in a module file: the file name without `.ko` and without a
/// compression suffix (`.xz`, `.zst`, `.gz`), normalised. `None` if the path has no file name
/// or the file name is not valid UTF-8.
pub fn module_name_from_path(path: &str) -> Option<String> {
    let file = Path::new(path).file_name()?.to_str()?;
    let stem = ["xz", "zst", "gz"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext)?.strip_suffix('.'))
        .unwrap_or(file);
    let stem = stem.strip_suffix(".ko").unwrap_or(stem);
    if stem.is_empty() {
        return None;
    }
    Some(normalize_name(stem))
}

/// An alias (or alias pattern) as depmod compares it: `-` becomes `_` except inside
/// `[...]`, where it is a range. `None` for an unbalanced `]` or an unclosed `[`, which
/// depmod and libkmod reject too.
pub fn normalize_alias(alias: &str) -> Option<String> {
    let mut out = String::with_capacity(alias.len());
    let mut chars = alias.chars();
    while let Some(c) = chars.next() {
        match c {
            '-' => out.push('_'),
            ']' => return None,
            '[' => {
                out.push('[');
                loop {
                    match chars.next() {
                        Some(']') => {
                            out.push(']');
                            break;
                        }
                        Some(inner) => out.push(inner),
                        None => return None,
                    }
                }
            }
            other => out.push(other),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_paths() {
        let cases = [
            ("kernel/fs/fat/vfat.ko.xz", Some("vfat")),
            ("kernel/arch/x86/events/amd/amd-uncore.ko", Some("amd_uncore")),
            ("/abs/path/nf_tables.ko.zst", Some("nf_tables")),
            ("extra/foo.ko.gz", Some("foo")),
            ("weird", Some("weird")),
            ("", None),
            (".ko", None),
            ("dir/", Some("dir")),
        ];
        for (path, want) in cases {
            assert_eq!(module_name_from_path(path).as_deref(), want, "{path}");
        }
    }

    #[test]
    fn alias_normalisation_keeps_ranges() {
        let cases = [
            ("fs-vfat", Some("fs_vfat")),
            ("usb:v0403p6001d0[0-5]*dc*", Some("usb:v0403p6001d0[0-5]*dc*")),
            ("a-[x-y]-b", Some("a_[x-y]_b")),
            ("broken]", None),
            ("open[", None),
        ];
        for (alias, want) in cases {
            assert_eq!(normalize_alias(alias).as_deref(), want, "{alias}");
        }
    }
}
