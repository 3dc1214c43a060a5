//! OpenStack config drive: a volume labelled `config-2` with `openstack/latest/user_data`,
//! `meta_data.json` and `network_data.json`.

use super::{Attempt, Fetched, NetworkConfigFile, Shared, read_labelled_volume, volume_origin};
use crate::metadata::parse_openstack_meta_data;

const USER_DATA: &str = "openstack/latest/user_data";
const META_DATA: &str = "openstack/latest/meta_data.json";
const NETWORK_DATA: &str = "openstack/latest/network_data.json";

pub(crate) async fn attempt(shared: &Shared) -> Attempt {
    match read_labelled_volume(shared, "config-2", &[USER_DATA, META_DATA, NETWORK_DATA]).await {
        Ok(None) => Attempt::Absent("no volume labelled config-2".to_string()),
        Err(e) => Attempt::Failed(e),
        Ok(Some((device, mut files))) => {
            let Some(meta_data_raw) = files.remove(META_DATA) else {
                return Attempt::Failed(format!(
                    "{} has no {META_DATA}: not an OpenStack config drive",
                    volume_origin(&device)
                ));
            };
            let (meta_data, warnings) = parse_openstack_meta_data(&meta_data_raw);
            Attempt::Found(Box::new(Fetched {
                datasource: "configdrive".to_string(),
                origin: volume_origin(&device),
                user_data: files.remove(USER_DATA),
                meta_data_raw: Some(meta_data_raw),
                meta_data,
                network_config: files.remove(NETWORK_DATA).map(|bytes| NetworkConfigFile {
                    file_name: "network_data.json",
                    bytes,
                }),
                warnings: warnings
                    .into_iter()
                    .map(|w| format!("meta_data.json: {w}"))
                    .collect(),
            }))
        }
    }
}
