//! Datasources: where user-data and meta-data come from, probed in parallel.
//!
//! Every datasource in `berth.cloud_init.datasources` is tried at once, each retrying with
//! a short exponential back-off until the time budget runs out; the first to answer wins and
//! the others are stopped. A source that is known absent (no volume with its label, no
//! `cloud-config-url=` on the command line, no such file) stops at once, so absent sources
//! cost nothing. Network sources wait for a default route (DHCP may still be running) unless
//! they point at this machine.

mod configdrive;
mod ec2;
mod file;
mod nocloud;
mod routes;
mod url;

pub use routes::RouteTable;

use crate::blockdev::{BlockDevice, BlockScan};
use crate::http::{HttpClient, TrustAnchors};
use crate::metadata::MetaData;
use crate::report::{ProbeRecord, ProbeStatus};
use crate::volume::{Mounter, SystemMounter};
use berth_config::KernelCmdline;
use berth_config::schema::values::Datasource;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// The default time budget for all datasources together.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(30);
/// The EC2 metadata service.
pub const EC2_ENDPOINT: &str = "http://169.254.169.254";

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const MAX_REQUEST_TIME: Duration = Duration::from_secs(5);

/// What a datasource delivered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fetched {
    /// The datasource as configured (`nocloud`, `url:http://...`).
    pub datasource: String,
    /// Where exactly: the device, the URL that answered, the file.
    pub origin: String,
    /// The user-data as delivered (maybe gzip or MIME); `None` when the source has none.
    pub user_data: Option<Vec<u8>>,
    /// The meta-data as delivered (NoCloud YAML, config-drive JSON, EC2 as JSON).
    pub meta_data_raw: Option<Vec<u8>>,
    pub meta_data: MetaData,
    /// Network configuration for the network service (NoCloud `network-config` v1/v2, or
    /// the config drive's `network_data.json`).
    pub network_config: Option<NetworkConfigFile>,
    /// Problems with what was delivered (a bad meta-data key, say).
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkConfigFile {
    /// `network-config` or `network_data.json`: the name it is saved under.
    pub file_name: &'static str,
    pub bytes: Vec<u8>,
}

/// One try of one datasource.
#[derive(Debug)]
pub(crate) enum Attempt {
    Found(Box<Fetched>),
    /// Known not to be there: do not retry.
    Absent(String),
    /// Not (yet) answering: retry while time is left.
    Retry(String),
    /// There, but unusable: do not retry.
    Failed(String),
}

/// What the probes need from the machine. [`ProbeEnv::under`] gives the real one for a
/// root directory (`/` on a running system); tests swap the mounter and the budget.
pub struct ProbeEnv {
    /// For `file:` sources.
    pub root: PathBuf,
    /// For `cmdline` (`cloud-config-url=`).
    pub cmdline: KernelCmdline,
    pub blocks: BlockScan,
    pub mounter: Arc<dyn Mounter>,
    pub routes: RouteTable,
    /// `http://169.254.169.254` unless a test says otherwise.
    pub ec2_endpoint: String,
    /// Where volumes are mounted for reading.
    pub scratch: PathBuf,
    /// All datasources together give up after this long.
    pub budget: Duration,
    pub(crate) http: HttpClient,
}

impl ProbeEnv {
    /// The machine under `root`: its `/sys/class/block`, `/dev`, `/proc/net`, trusted
    /// certificates ([`TrustAnchors::under`]), and `mount(2)`.
    pub fn under(root: &Path, cmdline: KernelCmdline) -> Self {
        ProbeEnv {
            root: root.to_path_buf(),
            cmdline,
            blocks: BlockScan::under(root),
            mounter: Arc::new(SystemMounter),
            routes: RouteTable::under(root),
            ec2_endpoint: EC2_ENDPOINT.to_string(),
            scratch: std::env::temp_dir(),
            budget: DEFAULT_BUDGET,
            http: HttpClient::new(TrustAnchors::under(root)),
        }
    }
}

/// The outcome of probing: what was found (if anything) and one record per datasource.
#[derive(Debug, Default)]
pub struct ProbeOutcome {
    pub found: Option<Fetched>,
    pub records: Vec<ProbeRecord>,
}

/// Shared between the probes: the block devices, scanned once.
struct Shared {
    env: ProbeEnv,
    devices: OnceCell<Arc<Vec<BlockDevice>>>,
    deadline: Instant,
}

impl Shared {
    async fn devices(&self) -> Arc<Vec<BlockDevice>> {
        self.devices
            .get_or_init(|| async {
                let scan = self.env.blocks.clone();
                let devices = tokio::task::spawn_blocking(move || scan.scan())
                    .await
                    .unwrap_or_default();
                Arc::new(devices)
            })
            .await
            .clone()
    }

    /// The time one request may take: what is left, at most a few seconds.
    fn request_timeout(&self) -> Duration {
        self.deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(50), MAX_REQUEST_TIME)
    }

    /// Whether a network source must wait: no default route yet, and not local.
    fn must_wait_for_network(&self, target: &crate::http::Target) -> bool {
        !target.is_loopback() && !self.env.routes.has_default_route()
    }
}

/// A labelled volume's files, or why not: `Ok(None)` when no volume has the label.
async fn read_labelled_volume(
    shared: &Shared,
    label: &str,
    files: &'static [&'static str],
) -> Result<Option<(BlockDevice, BTreeMap<String, Vec<u8>>)>, String> {
    let devices = shared.devices().await;
    let Some(device) = crate::blockdev::find_by_label(&devices, label).cloned() else {
        return Ok(None);
    };
    let mounter = shared.env.mounter.clone();
    let scratch = shared.env.scratch.clone();
    let node = device.node.clone();
    let fstype = device.fs.fstype;
    let read = tokio::task::spawn_blocking(move || {
        crate::volume::read_files(mounter.as_ref(), &node, fstype, &scratch, files)
    })
    .await;
    match read {
        Ok(Ok(contents)) => Ok(Some((device, contents))),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("reading {} failed: {e}", device.node.display())),
    }
}

/// How a found volume is described: `/dev/sr0 (iso9660, label cidata)`.
fn volume_origin(device: &BlockDevice) -> String {
    format!(
        "{} ({}, label {})",
        device.node.display(),
        device.fs.fstype,
        device.fs.label.as_deref().unwrap_or("")
    )
}

/// Probe `sources` in parallel; the first to answer wins.
pub async fn probe_datasources(sources: &[Datasource], env: ProbeEnv) -> ProbeOutcome {
    let start = Instant::now();
    let shared = Arc::new(Shared {
        deadline: start + env.budget,
        env,
        devices: OnceCell::new(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for (index, source) in sources.iter().enumerate() {
        let shared = shared.clone();
        let source = source.clone();
        tasks.spawn(async move {
            let (record, found) = run_probe(&source, &shared, start).await;
            (index, record, found)
        });
    }
    let mut records: Vec<Option<ProbeRecord>> = vec![None; sources.len()];
    let mut found = None;
    while let Some(joined) = tasks.join_next().await {
        let Ok((index, record, fetched)) = joined else {
            continue;
        };
        tracing::info!("{record}");
        records[index] = Some(record);
        if let Some(fetched) = fetched {
            found = Some(fetched);
            break;
        }
    }
    tasks.abort_all();
    let elapsed = start.elapsed().as_millis() as u64;
    let records = records
        .into_iter()
        .zip(sources)
        .map(|(record, source)| {
            record.unwrap_or_else(|| {
                let record = ProbeRecord {
                    datasource: source.to_string(),
                    status: ProbeStatus::Cancelled,
                    detail: "another datasource answered first".to_string(),
                    elapsed_ms: elapsed,
                    attempts: 0,
                };
                tracing::info!("{record}");
                record
            })
        })
        .collect();
    ProbeOutcome { found, records }
}

/// Try one source until it answers, is known absent or failed, or time runs out.
async fn run_probe(source: &Datasource, shared: &Shared, start: Instant) -> (ProbeRecord, Option<Fetched>) {
    let mut attempts = 0;
    let mut backoff = FIRST_BACKOFF;
    let mut last_reason = String::from("no answer");
    let record = |status, detail: String, attempts| ProbeRecord {
        datasource: source.to_string(),
        status,
        detail,
        elapsed_ms: start.elapsed().as_millis() as u64,
        attempts,
    };
    loop {
        if attempts > 0 && Instant::now() >= shared.deadline {
            let detail = format!(
                "gave up after {} s: {last_reason}",
                shared.env.budget.as_secs_f32()
            );
            return (record(ProbeStatus::TimedOut, detail, attempts), None);
        }
        attempts += 1;
        match tokio::time::timeout_at(shared.deadline, attempt(source, shared)).await {
            Ok(Attempt::Found(fetched)) => {
                let detail = fetched.origin.clone();
                return (record(ProbeStatus::Found, detail, attempts), Some(*fetched));
            }
            Ok(Attempt::Absent(why)) => return (record(ProbeStatus::Absent, why, attempts), None),
            Ok(Attempt::Failed(why)) => return (record(ProbeStatus::Failed, why, attempts), None),
            Ok(Attempt::Retry(why)) => {
                tracing::debug!("datasource {source}: {why}; retrying");
                last_reason = why;
            }
            Err(_elapsed) => {}
        }
        let left = shared.deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(backoff.min(left)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn attempt(source: &Datasource, shared: &Shared) -> Attempt {
    match source {
        Datasource::NoCloud => nocloud::attempt(shared).await,
        Datasource::ConfigDrive => configdrive::attempt(shared).await,
        Datasource::Ec2 => ec2::attempt(shared).await,
        Datasource::Cmdline => match shared.env.cmdline.get("cloud-config-url") {
            Some(url) if !url.trim().is_empty() => url::attempt(shared, "cmdline", url).await,
            _ => Attempt::Absent("no cloud-config-url= on the kernel command line".to_string()),
        },
        Datasource::Url(url) => url::attempt(shared, &source.to_string(), url).await,
        Datasource::File(path) => file::attempt(shared, &source.to_string(), path).await,
    }
}

/// Parse a datasource list as `--datasources` takes it (comma or space separated), with
/// the RancherOS spellings berth-config also maps: `configdrive:/media/config-2`,
/// `ec2:...`, `*`. Unknown names are returned as warnings.
pub fn parse_datasource_list(text: &str) -> (Vec<Datasource>, Vec<String>) {
    let mut sources = Vec::new();
    let mut warnings = Vec::new();
    let mut push = |d: Datasource| {
        if !sources.contains(&d) {
            sources.push(d);
        }
    };
    for item in text.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()) {
        let (kind, _) = item.split_once(':').unwrap_or((item, ""));
        match kind {
            "configdrive" => push(Datasource::ConfigDrive),
            "ec2" => push(Datasource::Ec2),
            "*" => {
                push(Datasource::ConfigDrive);
                push(Datasource::Ec2);
            }
            _ => match Datasource::from_str(item) {
                Ok(d) => push(d),
                Err(e) => warnings.push(e),
            },
        }
    }
    (sources, warnings)
}

/// The datasources to probe: the configured ones, plus `cmdline` when the kernel command
/// line has a `cloud-config-url=` (whoever put it there wants it used).
pub fn effective_datasources(configured: &[Datasource], cmdline: &KernelCmdline) -> Vec<Datasource> {
    let mut sources = configured.to_vec();
    if cmdline
        .get("cloud-config-url")
        .is_some_and(|u| !u.trim().is_empty())
        && !sources.contains(&Datasource::Cmdline)
    {
        sources.push(Datasource::Cmdline);
    }
    sources
}

#[cfg(test)]
mod tests;
