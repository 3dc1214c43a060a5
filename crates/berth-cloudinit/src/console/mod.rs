//! The console phase: what cloud-config does inside the console container, called by
//! `berth console-init` at every boot before the getty and sshd start.
//!
//! At every boot (idempotent): `users` (accounts, groups, homes, sudo rules), the login
//! user's `ssh_authorized_keys` (with the meta-data's public keys), each user's keys, and
//! `write_files` meant for the console. Once per instance (stamps under
//! `/var/lib/berth/cloud-init/instances/<id>/sem/`): `runcmd`, then the user-data's
//! scripts, with their output in `/var/log/boot/runcmd.log` and `scripts.log`.

mod accounts;
mod files;
mod keys;
mod users;

use crate::commands::{Program, run_logged};
use crate::metadata::MetaData;
use crate::report::{CLOUD_INIT_SOURCE, Report};
use crate::save::{StateDirs, instance_id_for, load_saved};
use accounts::Accounts;
use berth_config::Config;
use berth_config::schema::values::SshPublicKey;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long one `runcmd` item or script may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Where the console phase works.
#[derive(Clone, Debug)]
pub struct ConsoleContext {
    /// The console's root (`/`): `etc/passwd`, homes, `write_files` paths are under it.
    pub root: PathBuf,
    /// The login user (`berth`): what `users: [default]` and `ssh_authorized_keys` mean.
    pub user: String,
    /// `var/lib/berth` under the root: the saved meta-data, scripts and stamps.
    pub state: StateDirs,
    /// `var/log/boot` under the root.
    pub log_dir: PathBuf,
    pub command_timeout: Duration,
}

impl ConsoleContext {
    pub fn new(root: impl Into<PathBuf>, user: impl Into<String>) -> Self {
        let root = root.into();
        ConsoleContext {
            state: StateDirs::under(&root),
            log_dir: root.join("var/log/boot"),
            root,
            user: user.into(),
            command_timeout: COMMAND_TIMEOUT,
        }
    }
}

/// Apply the console's part of `config`: [`prepare_console`], then
/// [`run_console_commands`]. Never fails: each item's outcome is in the report.
pub fn apply_console(config: &Config, ctx: &ConsoleContext) -> Report {
    let started = Instant::now();
    let mut report = prepare_console(config, ctx);
    let commands = run_console_commands(config, ctx);
    report.items.extend(commands.items);
    report.diagnostics.extend(commands.diagnostics);
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

fn instance_id(ctx: &ConsoleContext) -> (String, Vec<SshPublicKey>) {
    let saved = load_saved(&ctx.state);
    let instance_id = match &saved {
        Some(s) => s.instance_id.clone(),
        None => {
            let raw = std::fs::read(ctx.state.raw_user_data()).ok();
            instance_id_for(&MetaData::default(), raw.as_deref())
        }
    };
    let meta_keys = saved.map(|s| s.meta_data.public_keys).unwrap_or_default();
    (instance_id, meta_keys)
}

/// Users, ssh keys and `write_files`: quick, and wanted before anyone logs in.
pub fn prepare_console(config: &Config, ctx: &ConsoleContext) -> Report {
    let started = Instant::now();
    let mut report = Report::new("console");
    let (instance_id, meta_keys) = instance_id(ctx);
    report.instance_id = Some(instance_id);
    let accounts = match Accounts::read(&ctx.root) {
        Ok(a) if a.has_passwd_file() => Some(a),
        Ok(_) => {
            report.failed(
                "users",
                format!("{} does not exist", ctx.root.join("etc/passwd").display()),
            );
            None
        }
        Err(e) => {
            report.failed("users", e.to_string());
            None
        }
    };
    let accounts = accounts.map(|mut a| {
        apply_users_and_keys(config, ctx, &mut a, &meta_keys, &mut report);
        a
    });
    apply_write_files(config, ctx, accounts.as_ref(), &mut report);
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

/// `runcmd` and the saved scripts, once per instance: may take long, so the console runs
/// this beside its gettys and sshd rather than before them.
pub fn run_console_commands(config: &Config, ctx: &ConsoleContext) -> Report {
    let started = Instant::now();
    let mut report = Report::new("console-commands");
    let (instance_id, _) = instance_id(ctx);
    report.instance_id = Some(instance_id.clone());
    run_once_per_instance(config, ctx, &instance_id, &mut report);
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

fn apply_users_and_keys(
    config: &Config,
    ctx: &ConsoleContext,
    accounts: &mut Accounts,
    meta_keys: &[SshPublicKey],
    report: &mut Report,
) {
    let login = ctx.user.as_str();
    let mut login_keys: Vec<SshPublicKey> = config.ssh_authorized_keys.clone();
    login_keys.extend(meta_keys.iter().cloned());
    let mut sudo_rules = Vec::new();
    let mut user_keys: Vec<(String, Vec<SshPublicKey>)> = Vec::new();
    for (i, spec) in config.users.iter().enumerate() {
        let item = format!("users[{i}]");
        let name = match spec.name.as_str() {
            users::DEFAULT_USER => login,
            name => name,
        };
        match users::apply_user(accounts, spec, name, &ctx.root) {
            Ok(outcome) => {
                for w in outcome.warnings {
                    report.warning(CLOUD_INIT_SOURCE, &item, w);
                }
                report.done(&item, format!("{}: {}", outcome.name, outcome.detail));
            }
            Err(e) => {
                report.failed(&item, format!("{name}: {e}"));
                continue;
            }
        }
        for rule in &spec.sudo {
            if rule.contains(['\n', '\r']) {
                report.failed(&format!("{item}.sudo"), "a sudo rule must be one line");
            } else {
                sudo_rules.push((name.to_string(), rule.clone()));
            }
        }
        if name == login {
            login_keys.extend(spec.ssh_authorized_keys.iter().cloned());
        } else {
            user_keys.push((name.to_string(), spec.ssh_authorized_keys.clone()));
        }
    }
    if config.berth.compat.rancher_user {
        match users::rancher_alias(accounts, login, &ctx.root) {
            Ok(Some(detail)) => report.done("berth.compat.rancher_user", detail),
            Ok(None) => {}
            Err(e) => report.failed("berth.compat.rancher_user", e.to_string()),
        }
        if accounts
            .user(users::RANCHER_USER)
            .is_some_and(|u| accounts.user(login).is_some_and(|l| l.uid == u.uid))
        {
            sudo_rules.push((
                users::RANCHER_USER.to_string(),
                "ALL=(ALL:ALL) NOPASSWD: ALL".to_string(),
            ));
        }
    }
    if let Err(e) = accounts.write() {
        report.failed("users", e.to_string());
    }
    match users::write_sudoers(&ctx.root, &sudo_rules) {
        Ok(Some(path)) => report.done("users.sudo", format!("{} rules in {path}", sudo_rules.len())),
        Ok(None) => {}
        Err(e) => report.failed("users.sudo", e.to_string()),
    }
    match accounts.user(login) {
        Some(entry) => match keys::write_authorized_keys(&ctx.root, entry, &login_keys) {
            Ok(detail) => report.done("ssh_authorized_keys", detail),
            Err(e) => report.failed("ssh_authorized_keys", e.to_string()),
        },
        None => report.failed(
            "ssh_authorized_keys",
            format!("the login user {login} is not in /etc/passwd; no keys written"),
        ),
    }
    for (name, keys) in user_keys {
        let item = format!("users.{name}.ssh_authorized_keys");
        let Some(entry) = accounts.user(&name) else {
            continue;
        };
        match keys::write_authorized_keys(&ctx.root, entry, &keys) {
            Ok(detail) => report.done(&item, detail),
            Err(e) => report.failed(&item, e.to_string()),
        }
    }
}

fn apply_write_files(
    config: &Config,
    ctx: &ConsoleContext,
    accounts: Option<&Accounts>,
    report: &mut Report,
) {
    let fallback;
    let accounts = match accounts {
        Some(a) => a,
        None => {
            fallback = Accounts::empty();
            &fallback
        }
    };
    for (i, file) in config.write_files.iter().enumerate() {
        if !is_console_file(file) {
            continue;
        }
        let item = format!("write_files[{i}]");
        match files::write_file_entry(&ctx.root, file, accounts) {
            Ok(detail) => report.done(&item, detail),
            Err(e) => report.failed(&item, format!("{}: {e}", file.path)),
        }
    }
}

/// Whether a `write_files` entry is the console's (no `container:`, or `console`).
pub(crate) fn is_console_file(file: &berth_config::schema::cloud::WriteFile) -> bool {
    file.container.as_ref().is_none_or(|c| c.as_str() == "console")
}

fn run_once_per_instance(config: &Config, ctx: &ConsoleContext, instance_id: &str, report: &mut Report) {
    let env = [("INSTANCE_ID", instance_id)];
    if !config.runcmd.is_empty() {
        once(ctx, instance_id, "runcmd", report, |report| {
            let log = ctx.log_dir.join("runcmd.log");
            for (i, command) in config.runcmd.iter().enumerate() {
                let item = format!("runcmd[{i}]");
                let program = Program::Item(command);
                match run_logged(&program, &log, &env, ctx.command_timeout) {
                    Ok(()) => report.done(&item, format!("ran {}", program.display())),
                    Err(e) => report.failed(&item, e),
                }
            }
        });
    }
    let scripts = list_scripts(&ctx.state.scripts());
    if !scripts.is_empty() {
        once(ctx, instance_id, "scripts", report, |report| {
            let log = ctx.log_dir.join("scripts.log");
            for script in &scripts {
                let name = script
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let item = format!("scripts/{name}");
                match run_logged(&Program::Script(script), &log, &env, ctx.command_timeout) {
                    Ok(()) => report.done(&item, "ran"),
                    Err(e) => report.failed(&item, e),
                }
            }
        });
    }
}

fn list_scripts(dir: &Path) -> Vec<PathBuf> {
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    scripts.sort();
    scripts
}

/// Run `f` unless the stamp `what` exists for this instance; write the stamp afterwards
/// (whatever the outcome: a failed runcmd is not retried at every boot).
fn once(
    ctx: &ConsoleContext,
    instance_id: &str,
    what: &str,
    report: &mut Report,
    f: impl FnOnce(&mut Report),
) {
    let stamp = ctx.state.instance_dir(instance_id).join("sem").join(what);
    if let Ok(when) = std::fs::read_to_string(&stamp) {
        report.skipped(
            what,
            format!("already ran for instance {instance_id} ({})", when.trim()),
        );
        return;
    }
    f(report);
    let now = crate::time::now();
    if let Err(e) = crate::fsutil::write_file(&stamp, format!("{now}\n").as_bytes(), 0o600, 0o700) {
        report.failed(what, format!("cannot record that it ran: {e}"));
    }
}

#[cfg(test)]
mod tests;
