//! berth-config: the kernel command line, cloud-config YAML, the layer merge, value types.

use crate::mutate::{pick, word, yaml_scalar};
use crate::{split_parts, text};
use berth_config::{ConfigPaths, KernelCmdline, load, validate_text};
use fastrand::Rng;

pub const CMDLINE_DICT: &[&str] = &[
    "berth.",
    "rancher.",
    "cc.",
    "=",
    "\"",
    "\\\"",
    "[",
    "]",
    ",",
    " ",
    "--",
    "berth.modules=[",
    "berth.debug",
    "cloud-config-url=",
    "berth.services.ntp.image=",
    "console=ttyS0",
    "+=",
];

/// `key=value` words as a boot loader passes them, `berth.*` lists and quotes included.
pub fn gen_cmdline(rng: &mut Rng) -> Vec<u8> {
    let mut words = Vec::new();
    for _ in 0..rng.usize(..24) {
        let w = match rng.u8(..8) {
            0 => format!("berth.{}={}", word(rng), word(rng)),
            1 => format!(
                "rancher.{}.{}=\"{} {}\"",
                word(rng),
                word(rng),
                word(rng),
                word(rng)
            ),
            2 => format!("berth.modules=[{}, {}]", word(rng), word(rng)),
            3 => format!("cc.{}={}", word(rng), yaml_scalar(rng)),
            4 => format!("berth.{}", word(rng)),
            5 => "--".to_string(),
            6 => format!("{}=[", pick(rng, &["berth.a", "rancher.b", "cc.c"])),
            _ => word(rng),
        };
        words.push(w);
    }
    words.join(pick(rng, &[" ", "  ", "\t", "\n"])).into_bytes()
}

/// The kernel command line: parsed, turned into a configuration layer, and read by
/// modprobe. Every parameter reads back with `get`, and a command line rendered from the
/// parameters parses to the same parameters.
pub fn check_cmdline(input: &[u8]) -> Result<(), String> {
    let line = text(input);
    let parsed = KernelCmdline::parse(&line);
    let _ = parsed.config_layer();
    let mut modprobe = berth_kmod::ModprobeConfig::default();
    modprobe.add_kernel_cmdline(&line);
    let params: Vec<(String, Option<String>)> = parsed
        .params()
        .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
        .collect();
    // `get` scans the parameters (a command line has a few dozen): asking for every one of
    // a huge line would make this check, not the parser, quadratic.
    for (key, _) in params.iter().take(200) {
        if parsed.get(key).is_none() {
            return Err(format!("parameter {key:?} was parsed but `get` does not find it"));
        }
    }
    // Round trip, for what a command line can carry unquoted or in plain quotes.
    let renderable = params.iter().all(|(k, v)| {
        !k.is_empty()
            && !k.contains(['"', '=', '\\'])
            && !k.chars().any(char::is_whitespace)
            && !k.contains(['[', ']'])
            && v.as_deref().is_none_or(|v| !v.contains(['"', '\\', '[', ']']))
    });
    if renderable {
        let rendered: Vec<String> = params
            .iter()
            .map(|(k, v)| match v {
                None => k.clone(),
                Some(v) if v.is_empty() || v.chars().any(char::is_whitespace) => format!("{k}=\"{v}\""),
                Some(v) => format!("{k}={v}"),
            })
            .collect();
        let again = KernelCmdline::parse(&rendered.join(" "));
        let again: Vec<(String, Option<String>)> = again
            .params()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect();
        if again != params {
            return Err(format!(
                "rendered as {rendered:?}, parsed back as {again:?}, not {params:?}"
            ));
        }
    }
    Ok(())
}

pub const YAML_DICT: &[&str] = &[
    "#cloud-config\n",
    "berth:",
    "rancher:",
    "\n",
    "\n  ",
    "- ",
    ": ",
    "[",
    "]",
    "{",
    "}",
    ", ",
    "&a ",
    "*a",
    "<<: ",
    "!!binary ",
    "!!str ",
    "? ",
    "|\n",
    ">-\n",
    "---\n",
    "...\n",
    "+: ",
    "~",
    "services:",
    "ssh:",
    "port: ",
    "image: ",
    "write_files:",
    "path: ",
    "permissions: ",
    "hostname: ",
    "users:",
    "name: ",
    "ssh_authorized_keys:",
    "mounts:",
    "sysctl:",
    "modules:",
    "network:",
    "interfaces:",
    "address: ",
    "environment:",
    "${",
    "$$",
    "\"\\u0000\"",
];

/// A cloud-config with the keys users write, in block and flow style, anchors included.
pub fn gen_yaml(rng: &mut Rng) -> Vec<u8> {
    let mut out = String::from(if rng.bool() { "#cloud-config\n" } else { "" });
    for _ in 0..rng.usize(1..8) {
        match rng.u8(..9) {
            0 => out.push_str(&format!("hostname: {}\n", yaml_scalar(rng))),
            1 => out.push_str(&format!(
                "write_files:\n  - path: {}\n    permissions: {}\n    content: {}\n",
                yaml_scalar(rng),
                yaml_scalar(rng),
                yaml_scalar(rng)
            )),
            2 => out.push_str(&format!(
                "{}:\n  services:\n    {}:\n      image: {}\n      labels: {{io.berth.after: {}}}\n",
                pick(rng, &["berth", "rancher"]),
                word(rng),
                word(rng),
                word(rng)
            )),
            3 => out.push_str(&format!(
                "berth:\n  network:\n    interfaces:\n      eth{}:\n        address: {}\n        dhcp: {}\n",
                rng.u8(..4),
                yaml_scalar(rng),
                yaml_scalar(rng)
            )),
            4 => out.push_str(&format!(
                "users:\n  - name: {}\n    groups: [{}]\n",
                word(rng),
                word(rng)
            )),
            5 => out.push_str("anchors: &x {a: [1, 2, {b: *x}]}\nalias: *x\n"),
            6 => out.push_str(&format!(
                "berth:\n  sysctl: {{{}: {}}}\n",
                word(rng),
                yaml_scalar(rng)
            )),
            7 => out.push_str(&format!("{}+:\n  - {}\n", word(rng), yaml_scalar(rng))),
            _ => out.push_str(&format!(
                "berth: {{environment: {{A: \"${{{}}}\"}}}}\n",
                word(rng)
            )),
        }
    }
    out.into_bytes()
}

/// One cloud-config document: validated as `berth config validate` does it. Findings are
/// fine; panics, unbounded time and unstable answers are not.
pub fn check_cloud_config(input: &[u8]) -> Result<(), String> {
    let yaml = text(input);
    let first = validate_text(&yaml, "fuzz.yml");
    let second = validate_text(&yaml, "fuzz.yml");
    if first != second {
        return Err("validating the same text twice gave different diagnostics".into());
    }
    Ok(())
}

/// Five layers (OEM, cloud-config.d, user-data, local, command line) from one input, split
/// at NUL bytes, loaded as PID 1 loads them. Loading never fails; loading twice gives the
/// same configuration; every diagnostic names a layer that exists.
pub fn check_config_layers(input: &[u8]) -> Result<(), String> {
    let parts = split_parts(input, 5);
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let paths = ConfigPaths::under(dir.path());
    let write = |path: std::path::PathBuf, bytes: &[u8]| -> Result<(), String> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))
    };
    write(paths.oem_file(), parts[0])?;
    write(paths.conf_d().join("10-fuzz.yml"), parts[1])?;
    write(paths.user_data(), parts[2])?;
    write(paths.local(), parts[3])?;
    let cmdline = KernelCmdline::parse(&text(parts[4]));
    let first = load(&paths, &cmdline);
    let second = load(&paths, &cmdline);
    if first.tree != second.tree || first.config != second.config {
        return Err("loading the same layers twice gave different configurations".into());
    }
    let _ = berth_config::export(&first, true, false);
    Ok(())
}

/// `kind NUL text`: the value types' parsers. A value that parses displays as text that
/// parses to the same value, and displays the same way again.
pub fn check_values(input: &[u8]) -> Result<(), String> {
    use berth_config::schema::cloud::UserName;
    use berth_config::schema::values::*;
    let parts = split_parts(input, 2);
    let kind = parts[0].first().copied().unwrap_or(0);
    let value = text(parts[1]);
    macro_rules! round_trip {
        ($($n:literal => $t:ty),* $(,)?) => {
            match kind % 20 {
                $($n => round_trip::<$t>(stringify!($t), &value),)*
                _ => Ok(()),
            }
        };
    }
    round_trip! {
        0 => Hostname, 1 => Port, 2 => IpAddress, 3 => Cidr, 4 => FileMode, 5 => Mtu,
        6 => TtyName, 7 => ServiceName, 8 => SysctlKey, 9 => ModuleSpec, 10 => DeviceRef,
        11 => Datasource, 12 => AbsolutePath, 13 => HttpUrl, 14 => Timezone,
        15 => SshPublicKey, 16 => RestartPolicy, 17 => TimeSpan, 18 => ImageRef, 19 => UserName,
    }
}

fn round_trip<T>(type_name: &str, text: &str) -> Result<(), String>
where
    T: std::str::FromStr + std::fmt::Display + PartialEq + std::fmt::Debug,
{
    let Ok(value) = text.parse::<T>() else {
        return Ok(());
    };
    let shown = value.to_string();
    match shown.parse::<T>() {
        Ok(again) if again == value && again.to_string() == shown => Ok(()),
        Ok(again) => Err(format!(
            "{type_name}: {text:?} parsed as {value:?}, shown as {shown:?}, which parses as {again:?}"
        )),
        Err(_) => Err(format!(
            "{type_name}: {text:?} parsed as {value:?}, but its display {shown:?} does not parse"
        )),
    }
}

pub const VALUES_DICT: &[&str] = &[
    "\0",
    "0644",
    "0o755",
    "10.0.0.1/24",
    "::1/128",
    "fe80::1%eth0",
    "/dev/sda1",
    "LABEL=x",
    "UUID=",
    "http://",
    "https://",
    "ssh-ed25519 AAAA",
    "30s",
    "1h",
    "5m",
    "ttyS0",
    "tty1",
    "Europe/Paris",
    "nocloud",
    "file:/",
    "url:http://127.0.0.1/",
    "always",
    "unless-stopped",
    "registry:5000/img:tag@sha256:",
    "net.ipv4.ip_forward",
    "a.b=1",
    "65535",
    "65536",
    "..",
    "$",
];

/// A kind byte, NUL, and a value in the shape of that kind.
pub fn gen_values(rng: &mut Rng) -> Vec<u8> {
    let kind = rng.u8(..20);
    let value = match kind {
        2 | 3 => format!(
            "{}.{}.{}.{}/{}",
            rng.u8(..),
            rng.u8(..),
            rng.u8(..),
            rng.u8(..),
            rng.u8(..40)
        ),
        4 => format!("{:o}", rng.u32(..0o20000)),
        12 => format!("/{}/{}", word(rng), word(rng)),
        15 => format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA{} {}", word(rng), word(rng)),
        17 => format!("{}{}", rng.u32(..), pick(rng, &["s", "m", "h", "ms", "d", ""])),
        _ => word(rng),
    };
    let mut out = vec![kind, 0];
    out.extend_from_slice(value.as_bytes());
    out
}
