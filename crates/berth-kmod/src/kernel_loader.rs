//! [`KernelModuleLoader`]: `finit_module(2)`, `delete_module(2)` and `/proc/modules`.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::kmod::{DeleteModuleFlags, ModuleInitFlags, delete_module, finit_module};

use crate::KmodError;
use crate::loader::ModuleLoader;
use crate::name::{module_name_from_path, normalize_name};

/// Where the kernel lists loaded modules.
pub const PROC_MODULES: &str = "/proc/modules";

/// `MODULE_INIT_COMPRESSED_FILE` (Linux 6.2): the kernel decompresses the file itself.
/// Neither nix nor libc names it yet.
const MODULE_INIT_COMPRESSED_FILE: u32 = 4;

/// The running kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct KernelModuleLoader;

/// The module names in `/proc/modules` text (first word of each line), normalised.
pub fn parse_proc_modules(text: &str) -> HashSet<String> {
    text.lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(normalize_name)
        .collect()
}

/// Whether `path` names a compressed module the kernel must decompress.
fn is_compressed(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("xz" | "zst" | "gz")
    )
}

impl ModuleLoader for KernelModuleLoader {
    fn loaded(&self) -> Result<HashSet<String>, KmodError> {
        let text = fs::read_to_string(PROC_MODULES).map_err(|source| KmodError::ReadLoaded {
            path: PathBuf::from(PROC_MODULES),
            source,
        })?;
        Ok(parse_proc_modules(&text))
    }

    fn insert(&mut self, path: &Path, params: &str) -> Result<(), KmodError> {
        let module = module_name_from_path(&path.to_string_lossy()).unwrap_or_default();
        let params_c = CString::new(params).map_err(|_| KmodError::InvalidParams {
            module: module.clone(),
            params: params.to_owned(),
        })?;
        let file = File::open(path).map_err(|source| KmodError::OpenModule {
            module: module.clone(),
            path: path.to_owned(),
            source,
        })?;
        let flags = if is_compressed(path) {
            ModuleInitFlags::from_bits_retain(MODULE_INIT_COMPRESSED_FILE)
        } else {
            ModuleInitFlags::empty()
        };
        match finit_module(&file, &params_c, flags) {
            Ok(()) | Err(Errno::EEXIST) => Ok(()),
            Err(errno) => Err(KmodError::Insert {
                module,
                path: path.to_owned(),
                errno,
            }),
        }
    }

    fn remove(&mut self, name: &str) -> Result<(), KmodError> {
        let module = normalize_name(name);
        let name_c = CString::new(module.as_str()).map_err(|_| KmodError::Remove {
            module: module.clone(),
            errno: Errno::EINVAL,
        })?;
        delete_module(&name_c, DeleteModuleFlags::O_NONBLOCK)
            .map_err(|errno| KmodError::Remove { module, errno })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_modules() {
        let loaded = parse_proc_modules(
            "nft_chain_nat 12288 1 - Live 0x0000000000000000\n\
             nf_nat 61440 1 nft_chain_nat, Live 0x0000000000000000\n\
             \n\
             loading-one 100 0 - Loading 0x0\n",
        );
        let mut names: Vec<_> = loaded.into_iter().collect();
        names.sort();
        assert_eq!(names, ["loading_one", "nf_nat", "nft_chain_nat"]);
    }

    #[test]
    fn compression_by_extension() {
        assert!(is_compressed(Path::new("/lib/modules/x/vfat.ko.xz")));
        assert!(is_compressed(Path::new("a.ko.zst")));
        assert!(!is_compressed(Path::new("a.ko")));
    }

    #[test]
    fn missing_file_is_reported_without_touching_the_kernel() {
        let err = KernelModuleLoader
            .insert(Path::new("/nonexistent/berth-test.ko.xz"), "")
            .err();
        assert!(matches!(err, Some(KmodError::OpenModule { ref module, .. }) if module == "berth_test"));
        let err = KernelModuleLoader
            .insert(Path::new("/nonexistent/x.ko"), "a\0b")
            .err();
        assert!(matches!(err, Some(KmodError::InvalidParams { .. })));
    }
}
