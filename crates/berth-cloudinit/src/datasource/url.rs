//! `url:<http(s)://...>` and `cmdline` (the `cloud-config-url=` kernel parameter): the
//! user-data is whatever the URL serves. A plain `http://` URL works but is warned about:
//! anyone on the way can read the user-data (it may hold secrets) or change it (it runs
//! commands as root).

use super::{Attempt, Fetched, Shared};
use crate::http::{FetchError, Target};

pub(crate) async fn attempt(shared: &Shared, datasource: &str, url: &str) -> Attempt {
    let target = match Target::parse(url) {
        Ok(t) => t,
        Err(e) => return Attempt::Failed(e.to_string()),
    };
    if shared.must_wait_for_network(&target) {
        return Attempt::Retry("waiting for a default route".to_string());
    }
    match shared.env.http.get(url, &[], shared.request_timeout()).await {
        Ok(r) if r.status == 200 => Attempt::Found(Box::new(Fetched {
            datasource: datasource.to_string(),
            warnings: plain_http_warning(&target).into_iter().collect(),
            origin: r.url,
            user_data: Some(r.body),
            ..Fetched::default()
        })),
        Ok(r) if retryable_status(r.status) => Attempt::Retry(format!("{}: HTTP {}", r.url, r.status)),
        Ok(r) => Attempt::Failed(format!("{}: HTTP {}", r.url, r.status)),
        Err(FetchError::Transient(m)) => Attempt::Retry(m),
        Err(FetchError::Permanent(m)) => Attempt::Failed(m),
    }
}

/// Statuses that a server gives while it is starting or busy.
pub(crate) fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429) || (500..600).contains(&status)
}

/// The warning for user-data that came over plain http (redirects from https to http are
/// refused, so the first URL decides).
fn plain_http_warning(target: &Target) -> Option<String> {
    if target.is_https() {
        return None;
    }
    let warning = format!(
        "{target}: the user-data came over plain http://, so anyone on the network path could \
         read or change it; serve it over https://"
    );
    tracing::warn!("{warning}");
    Some(warning)
}
