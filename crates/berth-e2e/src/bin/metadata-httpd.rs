//! One HTTP request on stdin, its answer on stdout: QEMU's `guestfwd=...-cmd:` starts this for
//! every connection the guest opens to a forwarded address, so the end-to-end tests can serve
//! cloud-config URLs and an EC2-style metadata service from a directory without any network.
//!
//! Usage: `metadata-httpd DIR`. `GET /a/b` answers the file `DIR/a/b` (a directory: its
//! entries, one per line, as EC2 lists them); `PUT /latest/api/token` answers a session token
//! (IMDSv2). Every request is appended to `DIR/../requests.log`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = String::new();
    if input.read_line(&mut line).is_err() {
        return;
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
    if let Some(parent) = dir.parent()
        && let Ok(mut log) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(parent.join("requests.log"))
    {
        let _ = writeln!(log, "{method} {target}");
    }
    let path = target.split('?').next().unwrap_or("/").trim_start_matches('/');
    let (status, content) = answer(&dir, &method, path);
    let mut out = std::io::stdout().lock();
    let _ = write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
        content.len()
    );
    let _ = out.write_all(&content);
    let _ = out.flush();
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
