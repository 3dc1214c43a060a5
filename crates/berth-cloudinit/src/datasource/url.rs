//! `url:<http(s)://...>` and `cmdline` (the `cloud-config-url=` kernel parameter): the
//! user-data is whatever the URL serves.

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
