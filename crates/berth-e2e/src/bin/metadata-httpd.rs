//! One HTTP request on stdin, its answer on stdout: QEMU's `guestfwd=...-cmd:` starts this for
//! every connection the guest opens to a forwarded address, so the end-to-end tests can serve
//! cloud-config URLs and an EC2-style metadata service from a directory without any network.
//!
//! Usage: `metadata-httpd [--tls CERT KEY] [--after TEXT] DIR`. `GET /a/b` answers the file
//! `DIR/a/b` (a directory: its entries, one per line, as EC2 lists them); `PUT
//! /latest/api/token` answers a session token (IMDSv2). Every request is appended to
//! `DIR/../requests.log`. `--tls` speaks https with that certificate chain and key (PEM); a
//! failed handshake is logged as `TLS handshake failed: ...`. `--after` holds the answer
//! until `requests.log` contains TEXT (at most a minute), so a test can order two servers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

use anyhow::{Context as _, Result, bail};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Options {
    dir: PathBuf,
    tls: Option<(PathBuf, PathBuf)>,
    after: Option<String>,
}

fn options() -> Result<Options> {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut tls = None;
    let mut after = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tls" => match (args.next(), args.next()) {
                (Some(cert), Some(key)) => tls = Some((cert.into(), key.into())),
                _ => bail!("--tls needs CERT and KEY"),
            },
            "--after" => after = Some(args.next().context("--after needs TEXT")?),
            _ => dir = Some(PathBuf::from(arg)),
        }
    }
    Ok(Options {
        dir: dir.unwrap_or_else(|| ".".into()),
        tls,
        after,
    })
}

/// Standard input and output as one stream, for TLS.
struct Stdio;

impl Read for Stdio {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        std::io::stdin().read(buf)
    }
}

impl Write for Stdio {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stdout().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

fn main() -> Result<()> {
    let options = options()?;
    let log = options.dir.parent().map(|p| p.join("requests.log"));
    match &options.tls {
        None => serve(&options, &log, &mut Stdio),
        Some((cert, key)) => {
            let config = tls_config(cert, key)?;
            let connection = rustls::ServerConnection::new(Arc::new(config))?;
            let mut stream = rustls::StreamOwned::new(connection, Stdio);
            while stream.conn.is_handshaking() {
                if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
                    append(&log, &format!("TLS handshake failed: {e}"));
                    return Ok(());
                }
            }
            serve(&options, &log, &mut stream)?;
            stream.conn.send_close_notify();
            let _ = stream.conn.complete_io(&mut stream.sock);
            Ok(())
        }
    }
}

fn tls_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("{}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("{}", key.display()))?;
    Ok(
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?,
    )
}

fn append(log: &Option<PathBuf>, line: &str) {
    if let Some(log) = log
        && let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(log)
    {
        let _ = writeln!(file, "{line}");
    }
}

fn serve(options: &Options, log: &Option<PathBuf>, stream: &mut (impl Read + Write)) -> Result<()> {
    let (method, target) = {
        let mut input = BufReader::new(&mut *stream);
        let mut line = String::new();
        if input.read_line(&mut line).is_err() {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("/").to_string();
        let mut content_length = 0usize;
        loop {
            let mut header = String::new();
            if input.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':')
                && k.trim().eq_ignore_ascii_case("content-length")
            {
                content_length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; content_length];
        let _ = input.read_exact(&mut body);
        (method, target)
    };
    append(log, &format!("{method} {target}"));
    if let (Some(text), Some(log)) = (&options.after, log) {
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until && !std::fs::read_to_string(log).is_ok_and(|l| l.contains(text.as_str()))
        {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let path = target.split('?').next().unwrap_or("/").trim_start_matches('/');
    let (status, content) = answer(&options.dir, &method, path);
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
        content.len()
    )?;
    stream.write_all(&content)?;
    stream.flush()?;
    Ok(())
}

fn answer(dir: &Path, method: &str, path: &str) -> (&'static str, Vec<u8>) {
    if method == "PUT" && path == "latest/api/token" {
        return ("200 OK", b"e2e-session-token".to_vec());
    }
    if method != "GET" || path.split('/').any(|p| p == "..") {
        return ("404 Not Found", Vec::new());
    }
    let file = dir.join(path);
    if file.is_dir() {
        let mut names: Vec<String> = std::fs::read_dir(&file)
            .map(|it| {
                it.filter_map(|e| e.ok())
                    .map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if e.path().is_dir() {
                            format!("{name}/")
                        } else {
                            name
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        return ("200 OK", names.join("\n").into_bytes());
    }
    match std::fs::read(&file) {
        Ok(bytes) => ("200 OK", bytes),
        Err(_) => ("404 Not Found", Vec::new()),
    }
}
