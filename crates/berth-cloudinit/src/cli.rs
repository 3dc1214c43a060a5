//! `berth cloud-init`: the one-shot system service. Probe the datasources, save what
//! answered, apply the host items, write the report. Only argument parsing and logging
//! set-up live here; the work is in the library.

use crate::datasource::{
    EC2_ENDPOINT, ProbeEnv, effective_datasources, parse_datasource_list, probe_datasources,
};
use crate::host::{HostContext, HostOps, MountRequest, SystemHost, apply_host, plan_host};
use crate::http::{HttpClient, Proxies, TrustAnchors};
use crate::report::{DatasourceUsed, OfflineUse, Report};
use crate::save::{StateDirs, load_saved, save_fetched};
use berth_config::KernelCmdline;
use berth_config::schema::values::ModuleSpec;
use clap::Parser;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Probe the datasources, save the user-data and meta-data for offline boots, and apply the
/// host items of the configuration (modules, sysctl, hostname, timezone, bootcmd, mounts).
#[derive(Debug, Parser)]
#[command(name = "berth cloud-init", version)]
struct Args {
    /// The root of the system to work on (tests and images); host changes (host name,
    /// modules, mounts) are only made when it is `/`.
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// Datasources to probe instead of berth.cloud_init.datasources, comma-separated
    /// (nocloud, configdrive, cmdline, ec2, url:URL, file:PATH).
    #[arg(long, value_name = "LIST")]
    datasources: Option<String>,
    /// The kernel command line to use instead of /proc/cmdline.
    #[arg(long, value_name = "TEXT")]
    cmdline: Option<String>,
    /// Give up on datasources that have not answered after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = crate::datasource::DEFAULT_BUDGET.as_secs_f64())]
    timeout: f64,
    /// Probe and save, but apply nothing.
    #[arg(long)]
    no_apply: bool,
    /// Probe and show what would be saved and applied; write nothing.
    #[arg(long, conflicts_with = "no_apply")]
    dry_run: bool,
    /// Where to write the JSON report (default: ROOT/run/berth/cloud-init.json).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// The EC2 metadata service (for tests).
    #[arg(long, value_name = "URL", default_value = EC2_ENDPOINT, hide = true)]
    ec2_endpoint: String,
}

/// The `berth cloud-init` applet. `args` are the arguments after `cloud-init`. Returns the
/// exit code: 0 when the run completed (failed items are in the report and the log, and
/// never fail the service: a bad cloud-config must not keep the console from starting),
/// 2 for a usage error.
pub fn main_cloud_init(args: &[String]) -> i32 {
    let argv = std::iter::once("berth cloud-init".to_string()).chain(args.iter().cloned());
    let args = match Args::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let _log = init_logging(&args.root, args.dry_run);
    run(&args);
    0
}

/// Logs to stderr and `ROOT/var/log/boot/cloud-init.log` (`BERTH_LOG` sets the level).
fn init_logging(root: &Path, dry_run: bool) -> Option<tracing::subscriber::DefaultGuard> {
    use tracing_subscriber::prelude::*;
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let file = (!dry_run)
        .then(|| {
            let dir = root.join("var/log/boot");
            crate::fsutil::ensure_dir(&dir, 0o755).ok()?;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("cloud-init.log"))
                .ok()
        })
        .flatten();
    let subscriber = || {
        tracing_subscriber::registry()
            .with(filter())
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false),
            )
            .with(file.as_ref().and_then(|f| f.try_clone().ok()).map(|f| {
                tracing_subscriber::fmt::layer()
                    .with_writer(std::sync::Mutex::new(f))
                    .with_ansi(false)
                    .with_target(false)
            }))
    };
    if tracing::subscriber::set_global_default(subscriber()).is_ok() {
        return None;
    }
    // The caller set up logging already: add ours for this thread (the probes run on it).
    Some(tracing::subscriber::set_default(subscriber()))
}

fn run(args: &Args) {
    let started = Instant::now();
    let root = args.root.as_path();
    tracing::info!("cloud-init: start");
    let mut report = Report::new("cloud-init");
    let cmdline = match &args.cmdline {
        Some(text) => KernelCmdline::parse(text),
        None => KernelCmdline::read().unwrap_or_else(|e| {
            tracing::warn!("cannot read /proc/cmdline: {e}");
            KernelCmdline::default()
        }),
    };
    let dirs = StateDirs::under(root);
    let loaded = berth_config::load(&dirs.paths, &cmdline);
    let configured = match &args.datasources {
        Some(list) => {
            let (sources, warnings) = parse_datasource_list(list);
            for w in warnings {
                report.warning("--datasources", "", w);
            }
            sources
        }
        None => loaded.config.berth.cloud_init.datasources.clone(),
    };
    let sources = effective_datasources(&configured, &cmdline);
    let names: Vec<String> = sources.iter().map(ToString::to_string).collect();
    tracing::info!(
        "datasources: {}",
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    );

    let mut env = ProbeEnv::under(root, cmdline.clone());
    env.budget = Duration::from_secs_f64(args.timeout.clamp(0.0, 3600.0));
    env.ec2_endpoint = args.ec2_endpoint.clone();
    env.http = HttpClient::new(TrustAnchors::under(root))
        .with_proxies(Proxies::from_config(&loaded.config.berth.network));
    let outcome = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => {
            let outcome = runtime.block_on(probe_datasources(&sources, env));
            // A read of a stuck device may still be running on a blocking thread: do not
            // wait for it (dropping the runtime would).
            runtime.shutdown_background();
            outcome
        }
        Err(e) => {
            report.failed("datasources", format!("cannot start the async runtime: {e}"));
            Default::default()
        }
    };
    report.probes = outcome.records;

    if args.dry_run {
        dry_run(outcome.found.as_ref(), &loaded.config, &dirs);
        return;
    }
    let saved = match &outcome.found {
        Some(fetched) => {
            report.datasource = Some(DatasourceUsed {
                name: fetched.datasource.clone(),
                origin: fetched.origin.clone(),
            });
            Some(save_fetched(fetched, &dirs, &mut report))
        }
        None => {
            let previous = load_saved(&dirs);
            match &previous {
                Some(p) => tracing::info!(
                    "no datasource answered: using what {} ({}) delivered at {}",
                    p.datasource,
                    p.origin,
                    p.saved_at
                ),
                None if sources.is_empty() => {
                    tracing::info!("no datasource configured: the configuration on disk applies")
                }
                None => tracing::info!(
                    "no datasource answered and none ever did: the configuration on disk applies"
                ),
            }
            report.offline = Some(OfflineUse {
                saved_from: previous.as_ref().map(|p| DatasourceUsed {
                    name: p.datasource.clone(),
                    origin: p.origin.clone(),
                }),
                saved_at: previous.as_ref().map(|p| p.saved_at.clone()),
            });
            previous
        }
    };
    report.instance_id = saved.as_ref().map(|s| s.instance_id.clone());

    let loaded = berth_config::load(&dirs.paths, &cmdline);
    let user_data = dirs.paths.user_data().display().to_string();
    for d in loaded.diagnostics.iter().filter(|d| d.source == user_data) {
        report.add_diagnostic(d.clone());
    }
    if args.no_apply {
        tracing::info!("--no-apply: nothing applied");
    } else {
        let plan = plan_host(&loaded.config, saved.as_ref().map(|s| &s.meta_data));
        tracing::debug!("host plan: {plan:#?}");
        let mut ctx = HostContext::under(root);
        ctx.instance_id = report.instance_id.clone();
        if root == Path::new("/") {
            apply_host(&plan, &SystemHost::default(), &ctx, &mut report);
        } else {
            apply_host(&plan, &NotThisHost, &ctx, &mut report);
        }
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    let report_path = args
        .report
        .clone()
        .unwrap_or_else(|| root.join("run/berth/cloud-init.json"));
    if let Err(e) = report.write(&report_path) {
        tracing::error!("cannot write the report: {e}");
    }
    let errors = report.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = report.diagnostics.len() - errors;
    tracing::info!(
        "cloud-init: done in {:.3} s: {errors} errors, {warnings} warnings (report: {})",
        started.elapsed().as_secs_f64(),
        report_path.display()
    );
}

fn dry_run(found: Option<&crate::datasource::Fetched>, config: &berth_config::Config, dirs: &StateDirs) {
    match found {
        Some(f) => {
            println!("datasource: {} ({})", f.datasource, f.origin);
            let user_data = crate::userdata::parse_user_data(f.user_data.as_deref().unwrap_or_default());
            println!(
                "user-data: {} cloud-config part(s), {} script(s)",
                user_data.cloud_configs.len(),
                user_data.scripts.len()
            );
            for finding in &user_data.findings {
                println!("  {}: {}", finding.origin, finding.message);
            }
            for part in &user_data.cloud_configs {
                for d in berth_config::validate_text_in(&dirs.paths, &part.text, &part.origin) {
                    println!("  {d}");
                }
            }
            println!("meta-data: {:?}", f.meta_data);
        }
        None => println!("datasource: none answered"),
    }
    println!(
        "host plan (from the configuration on disk): {:#?}",
        plan_host(config, found.map(|f| &f.meta_data))
    );
}

/// Under `--root` other than `/`, the running host is not changed: host name, modules and
/// mounts are only logged.
struct NotThisHost;

impl HostOps for NotThisHost {
    fn set_hostname(&self, name: &str) -> Result<(), String> {
        tracing::info!("not on the running system: would set the host name to {name}");
        Ok(())
    }
    fn load_module(&self, module: &ModuleSpec) -> Result<(), String> {
        tracing::info!("not on the running system: would load {module}");
        Ok(())
    }
    fn host_mounts(&self, requests: &[MountRequest]) -> Vec<Result<String, String>> {
        requests
            .iter()
            .map(|r| Ok(format!("not on the running system: would do {r:?}")))
            .collect()
    }
}
