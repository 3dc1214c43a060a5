//! User-data as datasources deliver it, sorted into what Berth does with it.
//!
//! Accepted: `#cloud-config` (saved as the user-data configuration layer), `#!` scripts
//! (run once per instance by the console), gzip-compressed versions of either, and
//! multipart MIME combining them (`text/cloud-config`, `text/x-shellscript`, their gzip
//! variants, and `text/plain` parts recognised by their first line). Formats cloud-init has
//! but Berth does not (`#include`, `#cloud-boothook`, part handlers, ...) become warnings
//! that say why. Parsing never fails and never panics: whatever cannot be used is a finding.

use std::io::Read as _;

/// User-data larger than this is refused, and so is a document whose gzip parts together
/// decompress to more than this: one budget for the whole document, so that a MIME
/// document of many small gzip bombs cannot fill RAM either.
pub const MAX_USER_DATA: usize = 16 * 1024 * 1024;

/// How deep gzip and MIME may nest inside each other.
const MAX_NESTING: u8 = 4;

/// User-data, sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserData {
    /// Cloud-config documents, in the order given.
    pub cloud_configs: Vec<CloudConfigPart>,
    /// Scripts, in the order given (they run in that order).
    pub scripts: Vec<ScriptPart>,
    /// What was not used, and why.
    pub findings: Vec<UserDataFinding>,
}

/// A `#cloud-config` document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudConfigPart {
    /// Where it came from, for messages: `user-data`, or `user-data part 2 (config.yml)`.
    pub origin: String,
    pub text: String,
}

/// A script to run once per instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptPart {
    pub origin: String,
    /// A file name made of `[A-Za-z0-9._-]`: the MIME part's file name, else `part-N`.
    pub name: String,
    pub content: Vec<u8>,
}

/// Something in the user-data that was not used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserDataFinding {
    /// `true` when the user-data is broken (corrupt gzip or MIME, not UTF-8, YAML without
    /// `#cloud-config`); `false` for formats Berth knows but does not support.
    pub is_error: bool,
    pub origin: String,
    pub message: String,
}

impl UserData {
    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.cloud_configs.is_empty() && self.scripts.is_empty()
    }
}

/// Sort user-data. Never fails: what cannot be used is in [`UserData::findings`].
pub fn parse_user_data(bytes: &[u8]) -> UserData {
    let mut out = UserData::default();
    let mut sorter = Sorter {
        out: &mut out,
        part_count: 0,
        decompress_budget: MAX_USER_DATA,
        over_budget: false,
    };
    sorter.content(bytes, "user-data", None, 0);
    if sorter.over_budget {
        // Nothing of a document that was cut short is applied.
        return UserData {
            findings: vec![UserDataFinding {
                is_error: true,
                origin: "user-data".to_string(),
                message: format!(
                    "it decompresses to more than {} MiB (all gzip parts together); the \
                     whole user-data is refused",
                    MAX_USER_DATA / 1024 / 1024
                ),
            }],
            ..UserData::default()
        };
    }
    out
}

struct Sorter<'a> {
    out: &'a mut UserData,
    part_count: usize,
    /// Bytes that gzip may still produce, for the whole document.
    decompress_budget: usize,
    /// Set when the budget ran out: sorting stops and the document is refused.
    over_budget: bool,
}

/// What the first line of a text says it is.
#[derive(Debug, PartialEq, Eq)]
enum Header {
    CloudConfig,
    Script,
    Mime,
    Unsupported(&'static str),
    Unknown,
    Empty,
}

fn header_of(text: &[u8]) -> Header {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let first_line_end = text.iter().position(|&b| b == b'\n').unwrap_or(text.len());
    let first = String::from_utf8_lossy(&text[..first_line_end.min(256)]);
    let first = first.trim_end_matches('\r');
    let lower = first.to_ascii_lowercase();
    if text.iter().all(u8::is_ascii_whitespace) {
        return Header::Empty;
    }
    // Longer prefixes first: `#cloud-config-archive` is not `#cloud-config`.
    const UNSUPPORTED: &[(&str, &str)] = &[
        (
            "#cloud-config-archive",
            "#cloud-config-archive is not supported; use multipart MIME to combine parts",
        ),
        (
            "#cloud-config-jsonp",
            "#cloud-config-jsonp (JSON patch) is not supported; write a whole #cloud-config",
        ),
        (
            "#include",
            "#include is not supported: Berth does not fetch more user-data from URLs named in \
             user-data; put the content itself in the user-data (multipart MIME combines \
             several parts)",
        ),
        (
            "#cloud-boothook",
            "#cloud-boothook is not supported: boothooks run before anything else in \
             cloud-init's boot stages, which Berth does not have; use bootcmd in a \
             #cloud-config (it runs early, at every boot)",
        ),
        (
            "#part-handler",
            "#part-handler is not supported: part handlers are Python code for cloud-init",
        ),
        (
            "#upstart-job",
            "#upstart-job is not supported: Berth has no upstart; run containers as services \
             under berth.services",
        ),
        (
            "## template: jinja",
            "jinja templates are not supported; write the user-data without template syntax",
        ),
        (
            "#compose",
            "#compose (RancherOS) is not supported; put the services under berth.services in \
             a #cloud-config",
        ),
    ];
    for (prefix, why) in UNSUPPORTED {
        if lower.starts_with(prefix) {
            return Header::Unsupported(why);
        }
    }
    if lower.starts_with("#cloud-config") {
        Header::CloudConfig
    } else if first.starts_with("#!") {
        Header::Script
    } else if lower.starts_with("content-type:") || lower.starts_with("mime-version:") {
        Header::Mime
    } else {
        Header::Unknown
    }
}

fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Why gunzip gave nothing.
enum GunzipError {
    Corrupt(std::io::Error),
    /// It would produce more than the budget left.
    OverBudget,
}

/// gunzip producing at most `budget` bytes (concatenated gzip members included, as
/// `gzip -d` does).
fn gunzip(bytes: &[u8], budget: usize) -> Result<Vec<u8>, GunzipError> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .take(budget as u64 + 1)
        .read_to_end(&mut out)
        .map_err(GunzipError::Corrupt)?;
    if out.len() > budget {
        return Err(GunzipError::OverBudget);
    }
    Ok(out)
}

impl Sorter<'_> {
    fn finding(&mut self, is_error: bool, origin: &str, message: impl Into<String>) {
        self.out.findings.push(UserDataFinding {
            is_error,
            origin: origin.to_string(),
            message: message.into(),
        });
    }

    /// gunzip against the document's budget; `None` (with a finding, or the document
    /// marked over budget) when there is nothing to use.
    fn gunzip(&mut self, bytes: &[u8], origin: &str) -> Option<Vec<u8>> {
        match gunzip(bytes, self.decompress_budget) {
            Ok(inner) => {
                self.decompress_budget -= inner.len();
                Some(inner)
            }
            Err(GunzipError::Corrupt(e)) => {
                self.finding(true, origin, format!("the gzip data is corrupt: {e}; ignored"));
                None
            }
            Err(GunzipError::OverBudget) => {
                self.over_budget = true;
                None
            }
        }
    }

    /// Sort one piece of content, whatever it is. `name` is the MIME file name, if any.
    fn content(&mut self, bytes: &[u8], origin: &str, name: Option<&str>, depth: u8) {
        if self.over_budget {
            return;
        }
        if bytes.len() > MAX_USER_DATA {
            self.finding(
                true,
                origin,
                format!("is larger than {} MiB; ignored", MAX_USER_DATA / 1024 / 1024),
            );
            return;
        }
        if is_gzip(bytes) {
            if depth >= MAX_NESTING {
                self.finding(true, origin, "gzip and MIME are nested too deeply; ignored");
                return;
            }
            if let Some(inner) = self.gunzip(bytes, origin) {
                self.content(&inner, origin, name, depth + 1);
            }
            return;
        }
        match header_of(bytes) {
            Header::Empty => {}
            Header::CloudConfig => self.cloud_config(bytes, origin),
            Header::Script => self.script(bytes, origin, name),
            Header::Mime => {
                if depth >= MAX_NESTING {
                    self.finding(true, origin, "gzip and MIME are nested too deeply; ignored");
                } else {
                    self.mime(bytes, origin, depth + 1);
                }
            }
            Header::Unsupported(why) => self.finding(false, origin, format!("{why}; ignored")),
            Header::Unknown if looks_like_yaml_map(bytes) => self.finding(
                true,
                origin,
                "looks like a cloud-config but does not start with the line #cloud-config, \
                 so it is not applied; add that line at the top",
            ),
            Header::Unknown => self.finding(
                false,
                origin,
                "is not a format Berth knows (#cloud-config, a #! script, gzip, or multipart \
                 MIME); ignored",
            ),
        }
    }

    fn cloud_config(&mut self, bytes: &[u8], origin: &str) {
        match std::str::from_utf8(bytes) {
            Ok(text) => self.out.cloud_configs.push(CloudConfigPart {
                origin: origin.to_string(),
                text: text.strip_prefix('\u{feff}').unwrap_or(text).to_string(),
            }),
            Err(e) => self.finding(
                true,
                origin,
                format!(
                    "the cloud-config is not UTF-8 text (invalid byte at offset {}); ignored",
                    e.valid_up_to()
                ),
            ),
        }
    }

    fn script(&mut self, bytes: &[u8], origin: &str, name: Option<&str>) {
        let index = self.out.scripts.len() + 1;
        let name = name
            .map(sanitize_file_name)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("part-{index:03}"));
        self.out.scripts.push(ScriptPart {
            origin: origin.to_string(),
            name,
            content: bytes.to_vec(),
        });
    }

    fn mime(&mut self, bytes: &[u8], origin: &str, depth: u8) {
        let mail = match mailparse::parse_mail(bytes) {
            Ok(mail) => mail,
            Err(e) => {
                self.finding(
                    true,
                    origin,
                    format!("the multipart MIME user-data cannot be parsed: {e}; ignored"),
                );
                return;
            }
        };
        self.mime_part(&mail, origin, depth);
    }

    fn mime_part(&mut self, part: &mailparse::ParsedMail<'_>, origin: &str, depth: u8) {
        if self.over_budget {
            return;
        }
        if !part.subparts.is_empty() {
            for sub in &part.subparts {
                self.mime_part(sub, origin, depth);
            }
            return;
        }
        let mimetype = part.ctype.mimetype.to_ascii_lowercase();
        if mimetype.starts_with("multipart/") {
            // A multipart without parts: nothing in it.
            return;
        }
        self.part_count += 1;
        let disposition = part.get_content_disposition();
        let file_name = disposition
            .params
            .get("filename")
            .or_else(|| part.ctype.params.get("name"))
            .cloned();
        let part_origin = match &file_name {
            Some(f) => format!("{origin} part {} ({f})", self.part_count),
            None => format!("{origin} part {} ({mimetype})", self.part_count),
        };
        let body = match part.get_body_raw() {
            Ok(body) => body,
            Err(e) => {
                self.finding(
                    true,
                    &part_origin,
                    format!("the part cannot be decoded: {e}; ignored"),
                );
                return;
            }
        };
        let body = if is_gzip(&body) {
            match self.gunzip(&body, &part_origin) {
                Some(inner) => inner,
                None => return,
            }
        } else {
            body
        };
        let file_name = file_name.as_deref();
        match mimetype.as_str() {
            "text/cloud-config" => self.cloud_config(&body, &part_origin),
            "text/x-shellscript" | "text/x-shellscript-per-instance" | "text/x-shellscript-per-once" => {
                self.script(&body, &part_origin, file_name)
            }
            "text/x-shellscript-per-boot" => self.finding(
                false,
                &part_origin,
                "per-boot scripts are not supported (scripts run once per instance); use \
                 bootcmd in a #cloud-config for commands at every boot; ignored",
            ),
            "text/cloud-boothook"
            | "text/x-include-url"
            | "text/x-include-once-url"
            | "text/part-handler"
            | "text/upstart-job"
            | "text/cloud-config-archive"
            | "text/cloud-config-jsonp"
            | "text/jinja2" => self.finding(
                true,
                &part_origin,
                format!("{mimetype} parts are not supported; ignored"),
            ),
            // text/plain, application/gzip, octet-stream, unknown: go by the content.
            _ => self.content(&body, &part_origin, file_name, depth),
        }
    }
}

/// A loose test for "someone wrote YAML and forgot `#cloud-config`": a first
/// non-comment line like `key:`.
fn looks_like_yaml_map(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
    text.lines()
        .map(str::trim_end)
        .find(|l| !l.is_empty() && !l.starts_with('#') && l != &"---")
        .is_some_and(|l| {
            l.split_once(':').is_some_and(|(k, rest)| {
                !k.is_empty()
                    && !k.starts_with(' ')
                    && (rest.is_empty() || rest.starts_with(' '))
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.+".contains(&b))
            })
        })
}

/// A file name made safe: `[A-Za-z0-9._-]` kept, the rest `_`, no leading dot, at most 64.
pub(crate) fn sanitize_file_name(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    cleaned.trim_start_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn b64(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    const CC: &str = "#cloud-config\nhostname: node1\n";
    const SCRIPT: &str = "#!/bin/sh\necho hello\n";

    fn multipart(parts: &[(&str, Option<&str>, Option<&str>, &str)]) -> String {
        // (content type, file name, transfer encoding, body)
        let mut s =
            String::from("Content-Type: multipart/mixed; boundary=\"===BOUNDARY==\"\nMIME-Version: 1.0\n\n");
        for (ctype, name, encoding, body) in parts {
            s.push_str("--===BOUNDARY==\n");
            s.push_str(&format!("Content-Type: {ctype}; charset=\"us-ascii\"\n"));
            s.push_str("MIME-Version: 1.0\n");
            if let Some(enc) = encoding {
                s.push_str(&format!("Content-Transfer-Encoding: {enc}\n"));
            }
            if let Some(name) = name {
                s.push_str(&format!("Content-Disposition: attachment; filename=\"{name}\"\n"));
            }
            s.push('\n');
            s.push_str(body);
            s.push('\n');
        }
        s.push_str("--===BOUNDARY==--\n");
        s
    }

    #[test]
    fn plain_cloud_config() {
        let ud = parse_user_data(CC.as_bytes());
        assert_eq!(ud.cloud_configs.len(), 1);
        assert_eq!(ud.cloud_configs[0].text, CC);
        assert_eq!(ud.cloud_configs[0].origin, "user-data");
        assert!(ud.scripts.is_empty() && ud.findings.is_empty());
    }

    #[test]
    fn cloud_config_with_bom_and_crlf() {
        let text = "\u{feff}#cloud-config\r\nhostname: a\r\n";
        let ud = parse_user_data(text.as_bytes());
        assert_eq!(ud.cloud_configs.len(), 1);
        assert!(ud.cloud_configs[0].text.starts_with("#cloud-config"));
    }

    #[test]
    fn script() {
        let ud = parse_user_data(SCRIPT.as_bytes());
        assert_eq!(ud.scripts.len(), 1);
        assert_eq!(ud.scripts[0].name, "part-001");
        assert_eq!(ud.scripts[0].content, SCRIPT.as_bytes());
    }

    #[test]
    fn gzip_of_each() {
        let ud = parse_user_data(&gzip(CC.as_bytes()));
        assert_eq!(ud.cloud_configs[0].text, CC);
        let ud = parse_user_data(&gzip(SCRIPT.as_bytes()));
        assert_eq!(ud.scripts[0].content, SCRIPT.as_bytes());
        // gzip of gzip
        let ud = parse_user_data(&gzip(&gzip(CC.as_bytes())));
        assert_eq!(ud.cloud_configs.len(), 1);
    }

    #[test]
    fn corrupt_gzip_is_an_error_finding() {
        let mut bad = gzip(CC.as_bytes());
        bad.truncate(12);
        let ud = parse_user_data(&bad);
        assert!(ud.is_empty());
        assert!(ud.findings[0].is_error);
        assert!(ud.findings[0].message.contains("gzip"), "{:?}", ud.findings);
    }

    #[test]
    fn multipart_mime_every_part_type() {
        let gz_cc = b64(&gzip(b"#cloud-config\nruncmd: [date]\n"));
        let gz_script = b64(&gzip(b"#!/bin/bash\necho gz\n"));
        let mime = multipart(&[
            ("text/cloud-config", Some("base.yml"), None, CC),
            ("text/x-shellscript", Some("setup.sh"), None, SCRIPT),
            ("application/x-gzip", Some("more.yml.gz"), Some("base64"), &gz_cc),
            (
                "text/x-shellscript",
                Some("../../evil name.sh"),
                Some("base64"),
                &gz_script,
            ),
            ("text/plain", None, None, "#!/usr/bin/env python3\nprint(1)\n"),
            ("text/cloud-boothook", None, None, "#cloud-boothook\necho x\n"),
            ("text/x-include-url", None, None, "http://example.invalid/x\n"),
            ("text/plain", Some("notes.txt"), None, "just some words\n"),
        ]);
        let ud = parse_user_data(mime.as_bytes());
        let origins: Vec<&str> = ud.cloud_configs.iter().map(|c| c.origin.as_str()).collect();
        assert_eq!(
            origins,
            ["user-data part 1 (base.yml)", "user-data part 3 (more.yml.gz)"]
        );
        assert_eq!(ud.cloud_configs[0].text.trim_end(), CC.trim_end());
        assert_eq!(ud.cloud_configs[1].text, "#cloud-config\nruncmd: [date]\n");
        let names: Vec<&str> = ud.scripts.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["setup.sh", "evil_name.sh", "part-003"]);
        assert_eq!(ud.scripts[1].content, b"#!/bin/bash\necho gz\n");
        let messages: Vec<String> = ud
            .findings
            .iter()
            .map(|f| format!("{}: {}", f.origin, f.message))
            .collect();
        assert_eq!(messages.len(), 3, "{messages:#?}");
        assert!(messages[0].contains("text/cloud-boothook parts are not supported"));
        assert!(messages[1].contains("text/x-include-url"));
        assert!(messages[2].starts_with("user-data part 8 (notes.txt): is not a format"));
    }

    #[test]
    fn gzip_of_multipart() {
        let mime = multipart(&[
            ("text/cloud-config", None, None, CC),
            ("text/x-shellscript", Some("a.sh"), None, SCRIPT),
        ]);
        let ud = parse_user_data(&gzip(mime.as_bytes()));
        assert_eq!(ud.cloud_configs.len(), 1);
        assert_eq!(ud.scripts.len(), 1);
        assert!(ud.findings.is_empty(), "{:?}", ud.findings);
    }

    #[test]
    fn nested_multipart() {
        let inner = multipart(&[("text/x-shellscript", Some("inner.sh"), None, SCRIPT)]);
        let inner_body = inner.replace("===BOUNDARY==", "===INNER==");
        let (inner_headers, inner_rest) = inner_body.split_once("\n\n").unwrap();
        let outer = format!(
            "Content-Type: multipart/mixed; boundary=\"OUTER\"\nMIME-Version: 1.0\n\n--OUTER\n\
             {inner_headers}\n\n{inner_rest}\n--OUTER\nContent-Type: text/cloud-config\n\n{CC}\n--OUTER--\n"
        );
        let ud = parse_user_data(outer.as_bytes());
        assert_eq!(ud.scripts.len(), 1, "{ud:?}");
        assert_eq!(ud.scripts[0].name, "inner.sh");
        assert_eq!(ud.cloud_configs.len(), 1);
    }

    #[test]
    fn unsupported_formats_say_why() {
        for (text, needle) in [
            ("#include\nhttp://x/y\n", "#include is not supported"),
            ("#include-once\nhttp://x/y\n", "#include is not supported"),
            ("#cloud-boothook\necho\n", "use bootcmd"),
            ("#part-handler\n", "Python"),
            ("#upstart-job\n", "upstart"),
            ("#cloud-config-archive\n- a\n", "archive"),
            ("## template: jinja\n#cloud-config\n", "jinja"),
            ("#compose\nsvc:\n  image: x\n", "berth.services"),
        ] {
            let ud = parse_user_data(text.as_bytes());
            assert!(ud.is_empty(), "{text}");
            assert_eq!(ud.findings.len(), 1, "{text}");
            assert!(!ud.findings[0].is_error, "a warning: {text}");
            assert!(ud.findings[0].message.contains(needle), "{:?}", ud.findings);
        }
    }

    #[test]
    fn yaml_without_header_is_explained() {
        let ud = parse_user_data(b"hostname: x\nssh_authorized_keys: []\n");
        assert!(ud.is_empty());
        assert!(ud.findings[0].message.contains("add that line"));
        assert!(ud.findings[0].is_error);
        let ud = parse_user_data(b"hello world\n");
        assert!(ud.findings[0].message.contains("not a format"));
        assert!(!ud.findings[0].is_error);
    }

    #[test]
    fn empty_user_data() {
        for text in ["", "\n\n  \n"] {
            let ud = parse_user_data(text.as_bytes());
            assert!(ud.is_empty() && ud.findings.is_empty());
        }
    }

    #[test]
    fn non_utf8_cloud_config() {
        let ud = parse_user_data(b"#cloud-config\nhostname: \xff\xfe\n");
        assert!(ud.cloud_configs.is_empty());
        assert!(ud.findings[0].message.contains("not UTF-8"));
    }

    #[test]
    fn gzip_bomb_is_refused() {
        let big = vec![b'a'; MAX_USER_DATA + 10];
        let ud = parse_user_data(&gzip(&big));
        assert!(ud.is_empty());
        assert!(ud.findings[0].message.contains("refused"), "{:?}", ud.findings);
    }

    /// Three gzip parts of 6 MiB each: every part is within the limit, the document is not.
    #[test]
    fn mime_parts_together_over_the_budget_are_refused() {
        let part = |n: usize| {
            let mut text = format!("#cloud-config\n# part {n}\n").into_bytes();
            text.resize(6 * 1024 * 1024, b'#');
            b64(&gzip(&text))
        };
        let (p1, p2, p3) = (part(1), part(2), part(3));
        let mime = multipart(&[
            ("text/x-shellscript", Some("first.sh"), None, SCRIPT),
            ("application/gzip", Some("a.gz"), Some("base64"), &p1),
            ("application/gzip", Some("b.gz"), Some("base64"), &p2),
            ("application/gzip", Some("c.gz"), Some("base64"), &p3),
        ]);
        assert!(mime.len() < 1024 * 1024, "the document itself is small");
        let ud = parse_user_data(mime.as_bytes());
        assert!(ud.is_empty(), "nothing of it is applied: {:?}", ud.scripts);
        assert_eq!(ud.findings.len(), 1, "{:?}", ud.findings);
        assert!(ud.findings[0].is_error);
        assert!(
            ud.findings[0]
                .message
                .contains("decompresses to more than 16 MiB (all gzip parts together)"),
            "{:?}",
            ud.findings
        );
        // Two of them fit.
        let mime = multipart(&[
            ("application/gzip", Some("a.gz"), Some("base64"), &p1),
            ("application/gzip", Some("b.gz"), Some("base64"), &p2),
        ]);
        let ud = parse_user_data(mime.as_bytes());
        assert_eq!(ud.cloud_configs.len(), 2, "{:?}", ud.findings);
    }

    #[test]
    fn sanitized_names() {
        assert_eq!(sanitize_file_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_file_name(".hidden"), "hidden");
        assert_eq!(sanitize_file_name("a b$c.sh"), "a_b_c.sh");
        assert_eq!(sanitize_file_name(""), "");
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_bytes(data in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let _ = parse_user_data(&data);
        }

        #[test]
        fn never_panics_on_mime_like_text(parts in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just("Content-Type: multipart/mixed; boundary=\"B\"\n".to_string()),
                proptest::strategy::Just("Content-Type: text/x-shellscript\n".to_string()),
                proptest::strategy::Just("Content-Type: application/gzip\n".to_string()),
                proptest::strategy::Just("Content-Transfer-Encoding: base64\n".to_string()),
                proptest::strategy::Just("Content-Transfer-Encoding: quoted-printable\n".to_string()),
                proptest::strategy::Just("MIME-Version: 1.0\n".to_string()),
                proptest::strategy::Just("--B\n".to_string()),
                proptest::strategy::Just("--B--\n".to_string()),
                proptest::strategy::Just("\n".to_string()),
                proptest::strategy::Just("#cloud-config\n".to_string()),
                proptest::strategy::Just("#!/bin/sh\n".to_string()),
                proptest::strategy::Just("H4sI=\n".to_string()),
                "[ -~]{0,20}\n",
            ],
            0..30,
        )) {
            let text = parts.concat();
            let _ = parse_user_data(text.as_bytes());
            let _ = parse_user_data(&gzip(text.as_bytes()));
        }
    }
}
