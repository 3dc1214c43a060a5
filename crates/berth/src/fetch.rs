//! Large downloads for the CLI (upgrade bundles, console images): the HTTP client cloud-init
//! uses (the machine's trust anchors and proxies), streaming to a file with progress.

use berth_cloudinit::http::{FetchError, HttpClient, Proxies, TrustAnchors};
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

/// How long to wait for the server each time (its answer, every chunk), not for the whole.
const IDLE: Duration = Duration::from_secs(60);
const MIB: u64 = 1 << 20;

/// Whether `source` names an http(s) URL rather than a file.
pub fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// The client with the machine's proxies (`berth.network.*_proxy`) and trust anchors.
pub fn client() -> HttpClient {
    let cmdline =
        berth_config::KernelCmdline::read().unwrap_or_else(|_| berth_config::KernelCmdline::parse(""));
    let loaded = berth_config::load(&berth_config::ConfigPaths::system(), &cmdline);
    HttpClient::new(TrustAnchors::under(Path::new("/")))
        .with_proxies(Proxies::from_config(&loaded.config.berth.network))
}

/// Download `url` into `dest` (at most `max` bytes), showing progress on stderr.
pub async fn download(client: &HttpClient, url: &str, dest: &Path, max: u64) -> Result<u64, String> {
    let tty = std::io::stderr().is_terminal();
    let mut shown = 0u64;
    let mut progress = |done: u64, total: Option<u64>| {
        let step = if tty { MIB } else { 16 * MIB };
        if done / step != shown / step || Some(done) == total {
            let of = total.map(|t| format!(" of {} MiB", t / MIB)).unwrap_or_default();
            if tty {
                eprint!("\rDownloading {url}: {} MiB{of}   ", done / MIB);
            } else {
                eprintln!("Downloading {url}: {} MiB{of}", done / MIB);
            }
            shown = done;
        }
    };
    let result = client.download(url, dest, max, IDLE, &mut progress).await;
    if tty && shown > 0 {
        eprintln!();
    }
    result.map_err(|e: FetchError| e.to_string())
}

/// Download `url` into `dest` and its signature `url.minisig` into `signature` (first: an
/// unsigned file is not fetched at all). `what` names the file in messages ("bundle").
pub fn download_signed(url: &str, dest: &Path, signature: &Path, max: u64, what: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let client = client();
    runtime.block_on(async {
        download(&client, &format!("{url}.minisig"), signature, 64 * 1024)
            .await
            .map_err(|e| format!("fetching the signature: {e} (an unsigned {what} is refused)"))?;
        download(&client, url, dest, max)
            .await
            .map_err(|e| format!("fetching the {what}: {e}"))
    })?;
    Ok(())
}
