//! The `modprobe` command, as the kernel's usermode helper (`/sbin/modprobe -q -- NAME`)
//! and people call it.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Parser;

use crate::config::ModprobeConfig;
use crate::fake_loader::FakeModuleLoader;
use crate::index::{ModuleIndex, kernel_release};
use crate::kernel_loader::KernelModuleLoader;
use crate::loader::ModuleLoader;
use crate::modprobe::{ProbeOptions, modprobe_remove_with, modprobe_with, resolve_for_probe};
use crate::{KmodError, LoadPlan};

/// Add or remove kernel modules, with their dependencies.
///
/// NAME is a module name or an alias (`fs-vfat`, `net-pf-16-proto-12`, a device modalias);
/// `-` and `_` are the same. Without -a or -r, the words after NAME are parameters for it
/// (`param=value`), appended to any `options` line for it in modprobe.d.
#[derive(Debug, Parser)]
#[command(
    name = "modprobe",
    version,
    after_help = "Files:\n  \
        /lib/modules/RELEASE/modules.{dep,alias,symbols,softdep,builtin,builtin.modinfo}\n  \
        /etc/modprobe.d/*.conf, /run/modprobe.d/*.conf, /usr/lib/modprobe.d/*.conf\n      \
        (options, blacklist, alias, softdep; install/remove are not supported)\n  \
        /proc/cmdline (MODULE.PARAM=VALUE, modprobe.blacklist=A,B)\n\n\
        Examples:\n  modprobe vfat\n  modprobe -a nf_tables nft_chain_nat\n  \
        modprobe -n -v nft-chain-2-nat\n  modprobe -r vfat\n  modprobe e1000e InterruptThrottleRate=3000"
)]
struct Args {
    /// Say nothing when a module cannot be found (still exit 1)
    #[arg(short, long)]
    quiet: bool,
    /// Load (or with -r remove) every NAME given; no parameters
    #[arg(short, long)]
    all: bool,
    /// Remove the modules, then their dependencies that nothing else uses
    #[arg(short, long)]
    remove: bool,
    /// Do everything but insert or remove anything (use with -v to see what)
    #[arg(short = 'n', long = "dry-run", visible_alias = "show")]
    dry_run: bool,
    /// Print the insmod lines that would load each module, including loaded ones
    #[arg(short = 'D', long = "show-depends")]
    show_depends: bool,
    /// Print the module names each NAME resolves to
    #[arg(short = 'R', long = "resolve-alias")]
    resolve_alias: bool,
    /// Apply modprobe.d blacklists to module names too, not only aliases
    #[arg(short = 'b', long = "use-blacklist")]
    use_blacklist: bool,
    /// Fail if the module is already loaded (with -r: if it is not loaded)
    #[arg(long = "first-time")]
    first_time: bool,
    /// Accepted for compatibility: install/remove commands are never run
    #[arg(short = 'i', long = "ignore-install")]
    ignore_install: bool,
    /// Print what is done (insmod/rmmod lines) and index warnings
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Use the modules of kernel release VERSION instead of the running one
    #[arg(short = 'S', long = "set-version", value_name = "VERSION")]
    set_version: Option<String>,
    /// Use DIR as the root for /lib/modules
    #[arg(short = 'd', long = "dirname", value_name = "DIR")]
    dirname: Option<PathBuf>,
    /// Read configuration from FILE or directory instead of modprobe.d (repeatable)
    #[arg(short = 'C', long = "config", value_name = "FILE")]
    config: Vec<PathBuf>,
    /// The module name or alias, then its parameters (or more names with -a/-r)
    #[arg(value_name = "NAME [PARAM=VALUE...]", required = true)]
    words: Vec<String>,
}

/// Run `modprobe` with `args` as `std::env::args()` gives them (`args[0]` is the program
/// name). Returns the exit code: 0 on success, 1 otherwise, with the reason on stderr.
pub fn modprobe_main(args: &[String]) -> i32 {
    modprobe_main_with(args, &mut std::io::stdout(), &mut std::io::stderr())
}

/// [`modprobe_main`] writing to the given streams instead of stdout and stderr. Write
/// errors are ignored: a closed stream must not change what is loaded.
pub fn modprobe_main_with(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(e) => {
            let text = e.render().to_string();
            if e.use_stderr() {
                let _ = write!(err, "{text}");
                return 1;
            }
            let _ = write!(out, "{text}");
            return 0;
        }
    };
    Command { args, out, err }.run()
}

struct Command<'w> {
    args: Args,
    out: &'w mut dyn Write,
    err: &'w mut dyn Write,
}

impl Command<'_> {
    fn say(&mut self, line: &str) {
        let _ = writeln!(self.out, "{line}");
    }

    fn complain(&mut self, error: &KmodError) {
        let quiet_ok = matches!(
            error,
            KmodError::ModuleNotFound { .. } | KmodError::Blacklisted { .. }
        );
        if self.args.quiet && quiet_ok {
            return;
        }
        let level = match error {
            KmodError::ModuleNotFound { .. }
            | KmodError::IndexMissing { .. }
            | KmodError::ReadIndex { .. }
            | KmodError::KernelRelease { .. } => "FATAL",
            _ => "ERROR",
        };
        let _ = writeln!(self.err, "modprobe: {level}: {error}");
    }

    fn warn(&mut self, message: &str) {
        if self.args.verbose > 0 {
            let _ = writeln!(self.err, "modprobe: WARNING: {message}");
        }
    }

    fn index(&mut self) -> Result<ModuleIndex, KmodError> {
        let release = match &self.args.set_version {
            Some(release) => release.clone(),
            None => kernel_release()?,
        };
        let root = self.args.dirname.clone().unwrap_or_else(|| PathBuf::from("/"));
        let index = ModuleIndex::load(&root.join("lib/modules").join(release))?;
        let config = if self.args.config.is_empty() {
            // An unreadable modprobe.d must not stop the kernel's request_module(): say so and
            // go on without it.
            let mut config = ModprobeConfig::load(Path::new("/")).unwrap_or_else(|e| {
                if !self.args.quiet {
                    let _ = writeln!(self.err, "modprobe: ERROR: {e}; ignoring modprobe.d");
                }
                ModprobeConfig::default()
            });
            if let Ok(cmdline) = std::fs::read_to_string("/proc/cmdline") {
                config.add_kernel_cmdline(&cmdline);
            }
            config
        } else {
            ModprobeConfig::load_paths(&self.args.config)?
        };
        Ok(index.with_config(config))
    }

    /// The names to act on, and the parameters for them.
    fn names_and_params(&self) -> (Vec<String>, String) {
        let words = &self.args.words;
        if self.args.all || self.args.remove {
            return (words.clone(), String::new());
        }
        let params: Vec<String> = words.iter().skip(1).map(|w| quote_param(w)).collect();
        (words.iter().take(1).cloned().collect(), params.join(" "))
    }

    fn run(&mut self) -> i32 {
        let index = match self.index() {
            Ok(index) => index,
            Err(e) => {
                self.complain(&e);
                return 1;
            }
        };
        for warning in index.warnings() {
            self.warn(warning);
        }
        let (names, params) = self.names_and_params();
        let options = ProbeOptions {
            use_blacklist: self.args.use_blacklist,
            first_time: self.args.first_time,
        };
        let mut failed = false;
        for name in &names {
            let result = if self.args.resolve_alias {
                self.resolve_alias(&index, name, options)
            } else if self.args.show_depends {
                self.show_depends(&index, name, &params, options)
            } else if self.args.remove {
                self.remove(&index, name, options)
            } else {
                self.insert(&index, name, &params, options)
            };
            if let Err(e) = result {
                self.complain(&e);
                failed = true;
            }
        }
        i32::from(failed)
    }

    fn resolve_alias(
        &mut self,
        index: &ModuleIndex,
        name: &str,
        options: ProbeOptions,
    ) -> Result<(), KmodError> {
        for module in resolve_for_probe(index, name, options)? {
            self.say(&module);
        }
        Ok(())
    }

    fn show_depends(
        &mut self,
        index: &ModuleIndex,
        name: &str,
        params: &str,
        options: ProbeOptions,
    ) -> Result<(), KmodError> {
        for module in resolve_for_probe(index, name, options)? {
            let mut plan: LoadPlan = index.load_plan(&module)?;
            plan.add_target_params(params);
            let text = plan.to_string();
            self.say(text.trim_end_matches('\n'));
        }
        Ok(())
    }

    fn verbose_out(&mut self) -> Option<&mut dyn Write> {
        if self.args.verbose > 0 {
            Some(&mut *self.out)
        } else {
            None
        }
    }

    fn loader(&self) -> Box<dyn ModuleLoader> {
        if self.args.dry_run {
            let loaded = KernelModuleLoader.loaded().unwrap_or_default();
            Box::new(FakeModuleLoader::with_loaded(loaded))
        } else {
            Box::new(KernelModuleLoader)
        }
    }

    fn insert(
        &mut self,
        index: &ModuleIndex,
        name: &str,
        params: &str,
        options: ProbeOptions,
    ) -> Result<(), KmodError> {
        let mut inner = self.loader();
        let mut loader = Narrated {
            inner: inner.as_mut(),
            out: self.verbose_out(),
        };
        modprobe_with(index, &mut loader, name, params, options).map(drop)
    }

    fn remove(&mut self, index: &ModuleIndex, name: &str, options: ProbeOptions) -> Result<(), KmodError> {
        let mut inner = self.loader();
        let mut loader = Narrated {
            inner: inner.as_mut(),
            out: self.verbose_out(),
        };
        modprobe_remove_with(index, &mut loader, name, options).map(drop)
    }
}

/// A command-line parameter as the kernel parses it: a value with spaces is quoted.
fn quote_param(word: &str) -> String {
    match word.split_once('=') {
        Some((key, value)) if value.contains(char::is_whitespace) && !value.starts_with('"') => {
            format!("{key}=\"{value}\"")
        }
        _ => word.to_owned(),
    }
}

/// Prints `insmod PATH PARAMS` / `rmmod NAME` before each action when verbose.
struct Narrated<'a> {
    inner: &'a mut dyn ModuleLoader,
    out: Option<&'a mut dyn Write>,
}

impl ModuleLoader for Narrated<'_> {
    fn loaded(&self) -> Result<HashSet<String>, KmodError> {
        self.inner.loaded()
    }

    fn insert(&mut self, path: &Path, params: &str) -> Result<(), KmodError> {
        if let Some(out) = self.out.as_mut() {
            let _ = writeln!(out, "insmod {} {}", path.display(), params);
        }
        self.inner.insert(path, params)
    }

    fn remove(&mut self, name: &str) -> Result<(), KmodError> {
        if let Some(out) = self.out.as_mut() {
            let _ = writeln!(out, "rmmod {name}");
        }
        self.inner.remove(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_with_spaces_are_quoted() {
        assert_eq!(quote_param("a=b"), "a=b");
        assert_eq!(quote_param("a=b c"), "a=\"b c\"");
        assert_eq!(quote_param("a=\"b c\""), "a=\"b c\"");
        assert_eq!(quote_param("flag"), "flag");
    }
}
