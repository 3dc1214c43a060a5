//! `berth config`: read and change the layered configuration. Reads compute the effective
//! configuration exactly as boot does; writes go to `/var/lib/berth/conf/cloud-config.yml`,
//! atomically, and only after the result has been validated.

use berth_config::{ConfigPaths, Diagnostic, KernelCmdline, Loaded, Severity};
use clap::{Args, Subcommand, ValueEnum};
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
    /// Read and write the configuration under this root instead of / (for tests and images)
    #[arg(long, global = true, hide = true, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Use this kernel command line instead of /proc/cmdline
    #[arg(long, global = true, hide = true, value_name = "TEXT")]
    cmdline: Option<String>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ReportFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print a value of the effective configuration (a dotted key, e.g. berth.ssh.port)
    Get {
        /// Dotted key; the whole configuration when omitted
        key: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Yaml)]
        format: Format,
    },
    /// Set a value (parsed as YAML), checked against the whole configuration before writing
    #[command(after_help = "Examples:\n  berth config set hostname web-1\n  \
                            berth config set berth.ssh.port 2222\n  \
                            berth config set 'berth.docker.insecure_registries' '[registry.local:5000]'\n  \
                            berth config set 'ssh_authorized_keys+' '[\"ssh-ed25519 AAAA... me\"]'   # append\n  \
                            berth config set berth.sysctl.vm.swappiness ''                      # remove")]
    Set {
        /// Dotted key; end it with `+` to append to a list
        key: String,
        /// The value, as YAML (`true`, `22`, `[a,b]`, `{k: v}`); empty to remove the key
        value: String,
    },
    /// Merge a cloud-config document (from a file or stdin) into the local configuration
    Merge {
        /// Read from this file instead of stdin
        #[arg(short, long, value_name = "FILE")]
        input: Option<PathBuf>,
    },
    /// Print the effective configuration (what differs from the built-in defaults)
    Export {
        /// Include the built-in defaults
        #[arg(long)]
        full: bool,
        /// Include secrets (passwords, private keys, registry credentials)
        #[arg(long)]
        private: bool,
        /// Write to this file instead of stdout
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Yaml)]
        format: Format,
    },
    /// Check the configuration, or a cloud-config file against it; exits 1 on errors
    Validate {
        /// Check this cloud-config file (on top of this system's layers) instead of the
        /// system's own layers
        #[arg(short, long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// Output: one line per finding, or JSON
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
}

fn paths(root: &Option<PathBuf>) -> ConfigPaths {
    match root {
        Some(r) => ConfigPaths::under(r),
        None => ConfigPaths::system(),
    }
}

fn cmdline(given: &Option<String>) -> KernelCmdline {
    match given {
        Some(text) => KernelCmdline::parse(text),
        None => KernelCmdline::read().unwrap_or_else(|_| KernelCmdline::parse("")),
    }
}

/// The configuration directory holds secrets (mode 0700): reading it needs root.
fn readable(paths: &ConfigPaths) -> Result<(), String> {
    match std::fs::read_dir(&paths.conf_dir) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(format!(
            "cannot read {}: permission denied; run it as root (sudo berth config ...)",
            paths.conf_dir.display()
        )),
        Err(_) => Ok(()),
    }
}

fn print_value(value: &serde_json::Value, format: Format) -> Result<(), String> {
    match (format, value) {
        // Scalars print bare, so that `$(berth config get hostname)` works in scripts.
        (Format::Yaml, serde_json::Value::String(s)) => println!("{s}"),
        (Format::Yaml, serde_json::Value::Number(n)) => println!("{n}"),
        (Format::Yaml, serde_json::Value::Bool(b)) => println!("{b}"),
        (Format::Yaml, serde_json::Value::Null) => {}
        (Format::Yaml, v) => {
            let text = serde_saphyr::to_string(v).map_err(|e| e.to_string())?;
            print!("{}", if text.ends_with('\n') { text } else { text + "\n" });
        }
        (Format::Json, v) => println!("{}", serde_json::to_string_pretty(v).map_err(|e| e.to_string())?),
    }
    Ok(())
}

fn read_input(input: &Option<PathBuf>) -> Result<(String, String), String> {
    match input {
        Some(path) => std::fs::read_to_string(path)
            .map(|t| (t, path.display().to_string()))
            .map_err(|e| format!("cannot read {}: {e}", path.display())),
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("reading stdin: {e}"))?;
            Ok((text, "<stdin>".to_string()))
        }
    }
}

fn report(diagnostics: &[Diagnostic]) {
    for d in diagnostics {
        eprintln!("{d}");
    }
}

pub fn main(args: ConfigArgs) -> i32 {
    match run(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("berth config: {message}");
            1
        }
    }
}

/// `berth.docker.engine` names an engine this machine has (the release's, or one installed):
/// checked against the machine, so only where Berth runs (elsewhere nothing is known).
fn engine_diagnostics(texts: &[(String, String)]) -> Vec<berth_config::Diagnostic> {
    use berth_services::engine_choice;
    let Some(release) = engine_choice::engine_info(Path::new(engine_choice::ENGINE_DIR)) else {
        return Vec::new();
    };
    const KEY: &str = "berth.docker.engine";
    texts
        .iter()
        .filter_map(|(text, source)| {
            let name: berth_config::EngineName = berth_config::scalar_at_key(text, KEY)?.parse().ok()?;
            let dir = Path::new(engine_choice::ENGINES_DIR);
            let problem = engine_choice::resolve(Some(&name), &release.name, dir).err()?;
            let message = problem.strip_prefix(&format!("{KEY}: ")).unwrap_or(&problem);
            Some(berth_config::error_at_key(text, source, KEY, message))
        })
        .collect()
}

fn load(paths: &ConfigPaths, cmdline_text: &Option<String>) -> Result<Loaded, String> {
    readable(paths)?;
    Ok(berth_config::load(paths, &cmdline(cmdline_text)))
}

fn run(args: ConfigArgs) -> Result<i32, String> {
    let paths = paths(&args.root);
    match args.command {
        ConfigCommand::Get { key, format } => {
            let loaded = load(&paths, &args.cmdline)?;
            let key = key.unwrap_or_default();
            match berth_config::get(&loaded, &key) {
                Some(value) => {
                    print_value(&value, format)?;
                    Ok(0)
                }
                None => Err(format!(
                    "{key} is not set (`berth config export --full` shows every key)"
                )),
            }
        }
        ConfigCommand::Set { key, value } => {
            let warnings = berth_config::set(&paths, &key, &value).map_err(|e| e.to_string())?;
            report(&warnings);
            eprintln!("{key} written to {}", paths.local().display());
            Ok(0)
        }
        ConfigCommand::Merge { input } => {
            let (text, source) = read_input(&input)?;
            if text.contains('\r') {
                return Err(format!(
                    "{source} has Windows line endings (CRLF); convert it first (dos2unix)"
                ));
            }
            let warnings = berth_config::merge(&paths, &text, &source).map_err(|e| e.to_string())?;
            report(&warnings);
            eprintln!("merged into {}", paths.local().display());
            Ok(0)
        }
        ConfigCommand::Export {
            full,
            private,
            output,
            format,
        } => {
            let loaded = load(&paths, &args.cmdline)?;
            let value = berth_config::export(&loaded, full, private);
            let text = match format {
                Format::Yaml => format!(
                    "#cloud-config\n{}",
                    serde_saphyr::to_string(&value).map_err(|e| e.to_string())?
                ),
                Format::Json => serde_json::to_string_pretty(&value).map_err(|e| e.to_string())? + "\n",
            };
            match output {
                Some(path) => {
                    let mode = if private { 0o600 } else { 0o644 };
                    berth_config::write_atomically(&path, text.as_bytes(), mode)
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                }
                None => print!("{text}"),
            }
            Ok(0)
        }
        ConfigCommand::Validate { input, format } => {
            let (diagnostics, texts) = match &input {
                Some(path) => {
                    let (text, source) = read_input(&Some(path.clone()))?;
                    let diagnostics = if paths.defaults.exists() {
                        berth_config::validate_text_in(&paths, &text, &source)
                    } else {
                        berth_config::validate_text(&text, &source)
                    };
                    (diagnostics, vec![(text, source)])
                }
                None => {
                    let loaded = load(&paths, &args.cmdline)?;
                    let texts = loaded
                        .layers
                        .iter()
                        .filter(|l| l.status == berth_config::LayerStatus::Applied)
                        .filter_map(|l| Some((std::fs::read_to_string(&l.source).ok()?, l.source.clone())))
                        .collect();
                    (loaded.diagnostics, texts)
                }
            };
            let mut diagnostics = diagnostics;
            diagnostics.extend(engine_diagnostics(&texts));
            diagnostics.sort_by_key(|d| (d.source.clone(), d.line, d.column));
            let errors = diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            if format == ReportFormat::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&diagnostics).map_err(|e| e.to_string())?
                );
            } else {
                report(&diagnostics);
                let what = input
                    .as_deref()
                    .map(Path::display)
                    .map(|d| d.to_string())
                    .unwrap_or("the configuration".into());
                let warnings = diagnostics.len() - errors;
                if errors == 0 {
                    eprintln!(
                        "{what}: valid ({warnings} warning{})",
                        if warnings == 1 { "" } else { "s" }
                    );
                } else {
                    eprintln!(
                        "{what}: {errors} error{}, {warnings} warning{}",
                        if errors == 1 { "" } else { "s" },
                        if warnings == 1 { "" } else { "s" }
                    );
                }
            }
            Ok(if errors == 0 { 0 } else { 1 })
        }
    }
}
