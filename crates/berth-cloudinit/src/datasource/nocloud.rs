//! NoCloud: a volume labelled `cidata` (vfat or iso9660) with `user-data`, `meta-data` and
//! optionally `network-config`, as `cloud-localds` and most hypervisors' "cloud-init
//! drives" make it.

use super::{Attempt, Fetched, NetworkConfigFile, Shared, read_labelled_volume, volume_origin};
use crate::metadata::parse_nocloud_meta_data;

pub(crate) const FILES: &[&str] = &["user-data", "meta-data", "network-config"];

pub(crate) async fn attempt(shared: &Shared) -> Attempt {
    match read_labelled_volume(shared, "cidata", FILES).await {
        Ok(None) => Attempt::Absent("no volume labelled cidata".to_string()),
        Err(e) => Attempt::Failed(e),
        Ok(Some((device, mut files))) => {
            if files.is_empty() {
                return Attempt::Failed(format!(
                    "{} has neither user-data nor meta-data",
                    volume_origin(&device)
                ));
            }
            Attempt::Found(Box::new(from_files(
                "nocloud",
                volume_origin(&device),
                &mut files,
            )))
        }
    }
}

/// A NoCloud seed (the files of the volume, or of a seed directory).
pub(crate) fn from_files(
    datasource: &str,
    origin: String,
    files: &mut std::collections::BTreeMap<String, Vec<u8>>,
) -> Fetched {
    let meta_data_raw = files.remove("meta-data");
    let (meta_data, warnings) = meta_data_raw
        .as_deref()
        .map(parse_nocloud_meta_data)
        .unwrap_or_default();
    Fetched {
        datasource: datasource.to_string(),
        origin,
        user_data: files.remove("user-data"),
        meta_data_raw,
        meta_data,
        network_config: files.remove("network-config").map(|bytes| NetworkConfigFile {
            file_name: "network-config",
            bytes,
        }),
        warnings: warnings.into_iter().map(|w| format!("meta-data: {w}")).collect(),
    }
}
