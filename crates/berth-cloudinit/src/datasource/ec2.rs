//! The EC2 metadata service (`http://169.254.169.254/latest/...`), also offered by
//! OpenStack and many other clouds: IMDSv2 (a session token from `PUT /latest/api/token`)
//! when the service has it, IMDSv1 otherwise.

use super::url::retryable_status;
use super::{Attempt, Fetched, Shared};
use crate::http::{FetchError, Target};
use crate::metadata::{ec2_meta_data, parse_ec2_public_key_index};

const TOKEN_TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";

pub(crate) async fn attempt(shared: &Shared) -> Attempt {
    let base = shared.env.ec2_endpoint.trim_end_matches('/').to_string();
    let target = match Target::parse(&base) {
        Ok(t) => t,
        Err(e) => return Attempt::Failed(e.to_string()),
    };
    if shared.must_wait_for_network(&target) {
        return Attempt::Retry("waiting for a default route".to_string());
    }
    match fetch(shared, &base).await {
        Ok(fetched) => Attempt::Found(Box::new(fetched)),
        Err(attempt) => attempt,
    }
}

async fn fetch(shared: &Shared, base: &str) -> Result<Fetched, Attempt> {
    let http = &shared.env.http;
    let token = match http
        .put(
            &format!("{base}/latest/api/token"),
            &[(TOKEN_TTL_HEADER, "21600")],
            shared.request_timeout(),
        )
        .await
    {
        Ok(r) if r.status == 200 => Some(String::from_utf8_lossy(&r.body).trim().to_string()),
        // No IMDSv2 (OpenStack, older services): plain GETs.
        Ok(_) => None,
        Err(e) => return Err(from_error(e)),
    };
    let headers: Vec<(&str, &str)> = token
        .as_deref()
        .map(|t| vec![(TOKEN_HEADER, t)])
        .unwrap_or_default();
    let get = |path: String| {
        let headers = headers.clone();
        async move {
            let url = format!("{base}/latest/{path}");
            match http.get(&url, &headers, shared.request_timeout()).await {
                Ok(r) if r.status == 200 => Ok(Some(r.body)),
                Ok(r) if r.status == 404 => Ok(None),
                Ok(r) if retryable_status(r.status) => {
                    Err(Attempt::Retry(format!("{url}: HTTP {}", r.status)))
                }
                Ok(r) => Err(Attempt::Failed(format!("{url}: HTTP {}", r.status))),
                Err(e) => Err(from_error(e)),
            }
        }
    };
    let Some(instance_id) = get("meta-data/instance-id".to_string()).await? else {
        return Err(Attempt::Failed(format!(
            "{base} is not an EC2 metadata service (no meta-data/instance-id)"
        )));
    };
    let hostname = get("meta-data/local-hostname".to_string()).await?;
    let mut keys = Vec::new();
    if let Some(index) = get("meta-data/public-keys/".to_string()).await? {
        for i in parse_ec2_public_key_index(&String::from_utf8_lossy(&index)) {
            if let Some(key) = get(format!("meta-data/public-keys/{i}/openssh-key")).await? {
                keys.push(String::from_utf8_lossy(&key).into_owned());
            }
        }
    }
    let user_data = get("user-data".to_string()).await?;
    let instance_id = String::from_utf8_lossy(&instance_id).into_owned();
    let hostname = hostname.map(|h| String::from_utf8_lossy(&h).into_owned());
    let (meta_data, warnings) = ec2_meta_data(Some(&instance_id), hostname.as_deref(), &keys);
    let meta_data_raw = serde_json::to_vec_pretty(&serde_json::json!({
        "instance-id": instance_id.trim(),
        "local-hostname": hostname.as_deref().map(str::trim),
        "public-keys": keys.iter().map(|k| k.trim()).collect::<Vec<_>>(),
        "imds": if token.is_some() { "v2" } else { "v1" },
    }))
    .ok();
    Ok(Fetched {
        datasource: "ec2".to_string(),
        origin: base.to_string(),
        user_data,
        meta_data_raw,
        meta_data,
        network_config: None,
        warnings: warnings.into_iter().map(|w| format!("meta-data: {w}")).collect(),
    })
}

fn from_error(e: FetchError) -> Attempt {
    match e {
        FetchError::Transient(m) => Attempt::Retry(m),
        FetchError::Permanent(m) => Attempt::Failed(m),
    }
}
