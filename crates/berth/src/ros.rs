//! `ros`: RancherOS's command spellings, translated to Berth's before clap sees them.
//!
//! `ros` is a symlink to `berth`. The translation is a pure function of the arguments (and of
//! which Berth commands exist, so `ros engine` follows `berth engine` once it is there): a
//! RancherOS command either becomes a Berth command line, or a clear "not in Berth: use ..."
//! with exit code 2.

/// What a `ros` command line becomes.
#[derive(Debug, PartialEq, Eq)]
pub enum Translation {
    /// Run `berth` with these arguments (without argv[0]).
    Berth(Vec<String>),
    /// `ros`, `ros help`, `ros --help`: print the mapping.
    Help,
    /// A RancherOS command Berth does not have: what it was and what to use instead.
    NotInBerth { command: String, instead: String },
    /// A RancherOS command Berth will have but this build lacks.
    NotYet { command: String, instead: String },
}

/// One RancherOS flag of a subcommand and what it becomes.
enum Flag {
    /// The Berth flag; `true` when it takes a value.
    To(&'static str, bool),
    /// The value is Berth's positional argument (`ros os upgrade -i IMAGE`).
    Positional,
    /// Accepted and dropped, because Berth already behaves that way (said in a comment).
    Drop,
    /// Not in Berth: what to do instead.
    Refuse(&'static str),
}

type FlagTable = &'static [(&'static [&'static str], Flag)];

/// The mapping printed by `ros --help` (RancherOS spelling, Berth command).
pub const MAPPING: &[(&str, &str)] = &[
    ("ros config get KEY", "berth config get KEY"),
    ("ros config set KEY VALUE", "berth config set KEY VALUE"),
    ("ros config merge [-i FILE]", "berth config merge [--input FILE]"),
    (
        "ros config export [-o FILE] [-p] [-f]",
        "berth config export [--output FILE] [--private] [--full]",
    ),
    (
        "ros config validate -i FILE",
        "berth config validate --input FILE",
    ),
    ("ros service list", "berth service list"),
    (
        "ros service enable|disable NAME",
        "berth service enable|disable NAME",
    ),
    (
        "ros service up|start|stop|restart NAME",
        "berth service up|start|stop|restart NAME",
    ),
    (
        "ros service logs [-f] [--lines N] NAME",
        "berth service logs [--follow] [--tail N] NAME",
    ),
    ("ros service ps", "berth service ps"),
    (
        "ros os upgrade -i FILE|URL [-f] [--no-reboot]",
        "berth os upgrade FILE|URL [--force] [--no-reboot]",
    ),
    ("ros os list", "berth os list"),
    ("ros os version", "berth version"),
    ("ros engine list", "berth engine list"),
    ("ros engine switch NAME", "berth engine switch NAME"),
    ("ros console list", "berth console list"),
    ("ros console switch NAME", "berth console switch NAME"),
    ("ros tls gen [-s] [-H HOST]", "berth tls gen [--server] [-H HOST]"),
    (
        "ros install -d DEV -c FILE [-f] [--no-reboot]",
        "berth install --device DEV --cloud-config FILE [--force] [--no-reboot]",
    ),
    ("ros -v", "berth --version"),
];

const CONFIG_EXPORT: FlagTable = &[
    (&["-o", "--output"], Flag::To("--output", true)),
    (&["-p", "--private"], Flag::To("--private", false)),
    (&["-f", "--full"], Flag::To("--full", false)),
];
const CONFIG_INPUT: FlagTable = &[(&["-i", "--input"], Flag::To("--input", true))];
const SERVICE_LIST: FlagTable = &[
    (
        &["-a", "--all"],
        Flag::Drop, /* berth service list always shows every service, optional ones included */
    ),
    (
        &["-u", "--update"],
        Flag::Refuse(
            "Berth has no service repositories to update: `berth service list` shows the release's services",
        ),
    ),
];
const SERVICE_LOGS: FlagTable = &[
    (&["-f", "--follow"], Flag::To("--follow", false)),
    (&["--lines"], Flag::To("--tail", true)),
];
const SERVICE_TIMEOUT: FlagTable = &[(&["-t", "--timeout"], Flag::To("--time", true))];
const SERVICE_UP: FlagTable = &[(
    &["--foreground"],
    Flag::Refuse("`berth service up NAME` then `berth service logs --follow NAME`"),
)];
const OS_UPGRADE: FlagTable = &[
    (&["-i", "--image"], Flag::Positional),
    (&["-f", "--force"], Flag::To("--force", false)),
    (&["--no-reboot"], Flag::To("--no-reboot", false)),
    (
        &["-s", "--stage"],
        Flag::Refuse(
            "`berth os upgrade --no-reboot FILE|URL` writes the other slot and boots it at the next reboot",
        ),
    ),
    (
        &["-k", "--kexec"],
        Flag::Refuse("`berth os upgrade FILE|URL` (it reboots)"),
    ),
    (
        &["--append"],
        Flag::Refuse("`berth config set` for settings; kernel arguments come with the signed bundle"),
    ),
    (
        &["--upgrade-console"],
        Flag::Refuse("the console comes with the release: `berth os upgrade FILE|URL`"),
    ),
    (
        &["--debug"],
        Flag::Refuse("`berth os upgrade FILE|URL` (it says what it does)"),
    ),
];
const OS_LIST: FlagTable = &[(
    &["-u", "--update"],
    Flag::Refuse(
        "`berth os list` shows the two slots of this disk; a release is a signed bundle you download",
    ),
)];
const ENGINE_SWITCH: FlagTable = &[
    (
        &["-f", "--force"],
        Flag::Drop, /* berth engine switch does not ask */
    ),
    (
        &["--no-pull"],
        Flag::Drop, /* berth engine switch verifies and loads a signed engine file */
    ),
];
const ENGINE_LIST: FlagTable = &[(
    &["-u", "--update"],
    Flag::Drop, /* berth engine list shows this release's engines */
)];
const CONSOLE_SWITCH: FlagTable = &[
    (
        &["-f", "--force"],
        Flag::Drop, /* berth console switch does not ask */
    ),
    (
        &["--no-pull"],
        Flag::Refuse("`berth console switch NAME --from FILE` names the console's image archive"),
    ),
];
const CONSOLE_LIST: FlagTable = &[(
    &["-u", "--update"],
    Flag::Drop, /* berth console list shows this release's consoles */
)];
const TLS_GEN: FlagTable = &[
    (&["-s", "--server"], Flag::To("--server", false)),
    (&["-H", "--hostname"], Flag::To("-H", true)),
    (
        &["-d", "--dir"],
        Flag::Refuse(
            "`sudo berth tls gen` keeps the certificates on the state disk and copies the client's to ~/.docker",
        ),
    ),
];
const INSTALL: FlagTable = &[
    (&["-d", "--device"], Flag::To("--device", true)),
    (&["-c", "--cloud-config"], Flag::To("--cloud-config", true)),
    (&["-f", "--force"], Flag::To("--force", false)),
    (&["--no-reboot"], Flag::To("--no-reboot", false)),
    (
        &["-i", "--image"],
        Flag::Refuse(
            "`berth install` installs the release it booted from; upgrade afterwards with `berth os upgrade`",
        ),
    ),
    (
        &["-t", "--install-type"],
        Flag::Refuse("`berth install --device DEV` always writes one layout, for BIOS and UEFI"),
    ),
    (
        &["-p", "--partition"],
        Flag::Refuse("`berth install --device DEV` takes a whole disk"),
    ),
    (
        &["--statedir"],
        Flag::Refuse("the state partition is mounted whole at /var"),
    ),
    (
        &["-a", "--append"],
        Flag::Refuse("`berth config set` after the install (or the cloud-config given with -c)"),
    ),
    (
        &["-r", "--rollback"],
        Flag::Refuse("`berth os rollback` on the installed machine"),
    ),
    (
        &["-k", "--kexec"],
        Flag::Refuse("`berth install --device DEV` (it reboots)"),
    ),
    (
        &["-s", "--save"],
        Flag::Refuse("`berth install --device DEV --cloud-config FILE`"),
    ),
    (
        &["--debug"],
        Flag::Refuse("`berth install --device DEV` (it says what it does)"),
    ),
    (
        &["--isoinstallerloaded"],
        Flag::Refuse("`berth install --device DEV`"),
    ),
];

/// RancherOS commands that Berth has no counterpart for, and what to use instead.
const NOT_IN_BERTH: &[(&str, &str)] = &[
    (
        "config images",
        "`berth status` lists the services and their images",
    ),
    (
        "config generate",
        "write a cloud-config by hand and check it with `ros config validate -i FILE`",
    ),
    (
        "config syslinux",
        "kernel arguments come with the release; settings go in `berth config set`",
    ),
    ("service delete", "`berth service disable NAME`"),
    (
        "service rm",
        "`berth service disable NAME`, or `sudo system-docker rm NAME`",
    ),
    ("service kill", "`berth service stop NAME`"),
    (
        "service pull",
        "system images come with the release; other services pull when they start",
    ),
    ("service create", "`berth service up NAME`"),
    (
        "service build",
        "build images with `docker build` and name them in berth.services",
    ),
    ("service down", "`berth service stop NAME`"),
    ("engine create", "`berth engine switch NAME|FILE|URL`"),
    ("engine rm", "`berth engine switch NAME` to another engine"),
    (
        "engine enable",
        "`berth engine switch NAME` (it switches now and at every boot)",
    ),
    (
        "console enable",
        "`sudo berth config set console NAME` (used at the next boot), or `berth console switch NAME` now",
    ),
    (
        "entrypoint",
        "the consoles and services start through Berth's own entry points",
    ),
    (
        "env",
        "set variables with `berth config set berth.environment.NAME VALUE`",
    ),
    ("dev", "`berth config get` for settings"),
    ("selinux", "Berth has no SELinux policy"),
    ("preload-images", "`docker load -i FILE` into User Docker"),
    (
        "user-docker",
        "User Docker is the docker service: `berth service restart docker`",
    ),
    (
        "docker-init",
        "User Docker is the docker service: `berth service restart docker`",
    ),
    ("console-init", "the console service runs it"),
    (
        "recovery-init",
        "Berth opens its recovery console by itself when boot fails",
    ),
    ("switch-console", "`berth console switch NAME`"),
    ("udev-settle", "the udev service settles the devices at boot"),
    ("bootstrap", "Berth has no bootstrap engine"),
    ("autologin", "`berth config set berth.autologin ttyS0`"),
];

/// Translate `ros ARGS...` (argv[0] left out). `has` says whether Berth knows a command path
/// (e.g. `["engine", "list"]`): commands another part of Berth adds are mapped once they exist.
pub fn translate(args: &[String], has: &dyn Fn(&[&str]) -> bool) -> Translation {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let Some((&first, rest)) = args.split_first() else {
        return Translation::Help;
    };
    let group = match first {
        "-h" | "--help" | "help" => return Translation::Help,
        "-v" | "--version" | "version" => return Translation::Berth(vec!["--version".into()]),
        "c" => "config",
        "s" => "service",
        other => other,
    };
    let Some((&sub, tail)) = rest.split_first() else {
        return match group {
            "install" => Translation::Berth(vec!["install".into(), "--help".into()]),
            "config" | "service" | "os" | "engine" | "console" | "tls" => {
                Translation::Berth(vec![group.into(), "--help".into()])
            }
            _ => unknown(group, &[]),
        };
    };
    if matches!(sub, "-h" | "--help" | "help") {
        return Translation::Berth(vec![group.into(), "--help".into()]);
    }
    let mapped = |cmd: &[&str], table: FlagTable, flags_from: &[&str]| -> Translation {
        let name = if group == "install" {
            group.to_string()
        } else {
            format!("{group} {sub}")
        };
        match map_flags(&name, flags_from, table) {
            Ok((mut positional, flags)) => {
                let mut out: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
                out.append(&mut positional);
                out.extend(flags);
                Translation::Berth(out)
            }
            Err(refused) => refused,
        }
    };
    match (group, sub) {
        ("config", "get" | "set") => mapped(&["config", sub], &[], tail),
        ("config", "merge" | "validate") => mapped(&["config", sub], CONFIG_INPUT, tail),
        ("config", "export") => mapped(&["config", "export"], CONFIG_EXPORT, tail),
        ("service", "list" | "ls") => mapped(&["service", "list"], SERVICE_LIST, tail),
        ("service", "enable" | "disable" | "ps") => mapped(&["service", sub], &[], tail),
        ("service", "up" | "start") => {
            if tail.iter().filter(|a| !a.starts_with('-')).count() > 1 {
                return not_in_berth(
                    &format!("{group} {sub} with several services"),
                    &format!("one at a time: `berth service {sub} NAME`"),
                );
            }
            mapped(&["service", sub], SERVICE_UP, tail)
        }
        ("service", "stop" | "restart") => mapped(&["service", sub], SERVICE_TIMEOUT, tail),
        ("service", "logs") => mapped(&["service", "logs"], SERVICE_LOGS, tail),
        ("os", "upgrade") => {
            let out = mapped(&["os", "upgrade"], OS_UPGRADE, tail);
            match &out {
                Translation::Berth(a) if a.len() == 2 || a.get(2).is_some_and(|s| s.starts_with('-')) => {
                    not_in_berth(
                        "os upgrade without -i",
                        "Berth upgrades from a signed bundle: `ros os upgrade -i FILE|URL` (`berth os upgrade FILE|URL`)",
                    )
                }
                Translation::Berth(a) if a.get(2).is_some_and(|s| is_image_reference(s)) => not_in_berth(
                    "os upgrade -i IMAGE",
                    "Berth upgrades from a signed bundle, not a container image: `ros os upgrade -i FILE|URL` \
                     with a berth-VERSION.upgrade file or its URL",
                ),
                _ => out,
            }
        }
        ("os", "list" | "ls") => mapped(&["os", "list"], OS_LIST, tail),
        ("os", "version") => mapped(&["version"], &[], tail),
        ("os", "rollback") => mapped(&["os", "rollback"], &[], tail),
        ("engine", "list" | "ls" | "switch") => {
            let sub = if sub == "ls" { "list" } else { sub };
            if !has(&["engine", sub]) {
                return Translation::NotYet {
                    command: format!("ros engine {sub}"),
                    instead: "this build has no `berth engine`; User Docker runs the release's engine (`berth version`)".into(),
                };
            }
            let table = if sub == "list" { ENGINE_LIST } else { ENGINE_SWITCH };
            mapped(&["engine", sub], table, tail)
        }
        ("console", "list" | "ls") => mapped(&["console", "list"], CONSOLE_LIST, tail),
        ("console", "switch") => mapped(&["console", "switch"], CONSOLE_SWITCH, tail),
        ("tls", "gen" | "generate") => {
            if !has(&["tls", "gen"]) {
                return Translation::NotYet {
                    command: "ros tls gen".into(),
                    instead: "this build has no `berth tls gen`; set berth.docker.tls and its certificates in the configuration".into(),
                };
            }
            mapped(&["tls", "gen"], TLS_GEN, tail)
        }
        ("install", _) => mapped(&["install"], INSTALL, rest),
        _ => unknown(group, rest),
    }
}

/// Whether an upgrade source is a container image reference (`rancher/os:v1.5.8`) rather than
/// a file or a URL: it has a tag after its last `/` and is neither a URL nor a path that exists.
fn is_image_reference(source: &str) -> bool {
    let tagged = source.rsplit('/').next().is_some_and(|last| last.contains(':'));
    tagged
        && !source.contains("://")
        && !source.starts_with(['/', '.'])
        && !std::path::Path::new(source).exists()
}

fn unknown(group: &str, rest: &[&str]) -> Translation {
    let two = rest.first().map(|s| format!("{group} {s}"));
    for key in two.iter().map(String::as_str).chain([group]) {
        if let Some((_, instead)) = NOT_IN_BERTH.iter().find(|(k, _)| *k == key) {
            return not_in_berth(key, instead);
        }
    }
    let what = two.unwrap_or_else(|| group.to_string());
    not_in_berth(
        &what,
        "`ros --help` lists the RancherOS commands Berth answers; `berth --help` lists Berth's",
    )
}

fn not_in_berth(command: &str, instead: &str) -> Translation {
    Translation::NotInBerth {
        command: format!("ros {command}"),
        instead: instead.to_string(),
    }
}

/// Split `args` into positional arguments and translated flags. `--flag=value` and `-fVALUE`
/// spellings are taken apart first. A flag not in `table` is passed on for clap to judge.
fn map_flags(
    command: &str,
    args: &[&str],
    table: FlagTable,
) -> Result<(Vec<String>, Vec<String>), Translation> {
    let mut positional = Vec::new();
    let mut flags = Vec::new();
    let mut it = args.iter().copied();
    while let Some(arg) = it.next() {
        if arg == "--" {
            positional.extend(it.by_ref().map(str::to_string));
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            positional.push(arg.to_string());
            continue;
        }
        let Some((name, inline, flag)) = find_flag(table, arg) else {
            flags.push(arg.to_string());
            continue;
        };
        let mut value = |takes: bool| -> Result<Option<String>, Translation> {
            if !takes {
                return Ok(None);
            }
            match inline
                .map(str::to_string)
                .or_else(|| it.next().map(str::to_string))
            {
                Some(v) => Ok(Some(v)),
                None => Err(not_in_berth(
                    &format!("{command} {name}"),
                    &format!("{name} needs a value: `ros --help`"),
                )),
            }
        };
        match flag {
            Flag::To(berth, takes) => {
                flags.push((*berth).to_string());
                flags.extend(value(*takes)?);
            }
            Flag::Positional => positional.extend(value(true)?),
            Flag::Drop => {}
            Flag::Refuse(instead) => return Err(not_in_berth(&format!("{command} {name}"), instead)),
        }
    }
    Ok((positional, flags))
}

/// The flag `arg` names in `table`, with its inline value (`--name=value`, or `-nVALUE` for a
/// short flag that takes a value).
fn find_flag(table: FlagTable, arg: &str) -> Option<(&str, Option<&str>, &'static Flag)> {
    let lookup = |name: &str| {
        table
            .iter()
            .find(|(names, _)| names.contains(&name))
            .map(|(_, flag)| flag)
    };
    let takes_value = |flag: &Flag| matches!(flag, Flag::To(_, true) | Flag::Positional);
    if let Some(flag) = lookup(arg) {
        return Some((arg, None, flag));
    }
    if let Some((name, value)) = arg.split_once('=').filter(|(n, _)| n.starts_with("--")) {
        return lookup(name)
            .filter(|f| takes_value(f))
            .map(|flag| (name, Some(value), flag));
    }
    let short = arg.get(..2).filter(|_| !arg.starts_with("--") && arg.len() > 2)?;
    lookup(short)
        .filter(|f| takes_value(f))
        .map(|flag| (short, arg.get(2..), flag))
}

/// `ros --help`: the RancherOS spellings Berth answers, and what they run.
pub fn help_text() -> String {
    let width = MAPPING.iter().map(|(r, _)| r.len()).max().unwrap_or(0);
    let mut out = String::from(
        "ros: RancherOS's command spellings, answered by Berth (`ros` is another name for `berth`).\n\n\
         Usage: ros COMMAND [ARGS...]\n\n",
    );
    for (ros, berth) in MAPPING {
        out.push_str(&format!("  {ros:width$}  ->  {berth}\n"));
    }
    out.push_str(
        "\nOther RancherOS commands answer \"not in Berth: use ...\" and exit 2.\n\
         `berth --help` lists every Berth command.\n",
    );
    out
}

/// The `ros` entry point: translate, then run the Berth command.
pub fn main(args: &[String], has: &dyn Fn(&[&str]) -> bool) -> i32 {
    match translate(args, has) {
        Translation::Help => {
            print!("{}", help_text());
            0
        }
        Translation::Berth(berth_args) => {
            let mut argv = vec!["berth".to_string()];
            argv.extend(berth_args);
            crate::cli::main(&argv)
        }
        Translation::NotInBerth { command, instead } => {
            eprintln!("{command}: not in Berth: use {instead}");
            2
        }
        Translation::NotYet { command, instead } => {
            eprintln!("{command}: not in Berth yet: {instead}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn all(_: &[&str]) -> bool {
        true
    }

    fn none(_: &[&str]) -> bool {
        false
    }

    #[test]
    fn rancheros_spellings_become_berth_commands() {
        let table = [
            ("config get hostname", "config get hostname"),
            ("c get rancher.ssh.port", "config get rancher.ssh.port"),
            ("config set hostname web-1", "config set hostname web-1"),
            ("config merge -i cc.yml", "config merge --input cc.yml"),
            ("config merge", "config merge"),
            (
                "config export -o out.yml -p -f",
                "config export --output out.yml --private --full",
            ),
            ("config export --output=out.yml", "config export --output out.yml"),
            ("config export -oout.yml", "config export --output out.yml"),
            ("config validate -i cc.yml", "config validate --input cc.yml"),
            ("service list", "service list"),
            ("s list -a", "service list"),
            ("service enable open-vm-tools", "service enable open-vm-tools"),
            ("service disable open-vm-tools", "service disable open-vm-tools"),
            ("service up ntp", "service up ntp"),
            ("service stop -t 5 ntp", "service stop ntp --time 5"),
            (
                "service logs -f --lines 20 ntp",
                "service logs ntp --follow --tail 20",
            ),
            ("service ps", "service ps"),
            ("os upgrade -i b.upgrade", "os upgrade b.upgrade"),
            (
                "os upgrade -f --no-reboot -i https://x/b.upgrade",
                "os upgrade https://x/b.upgrade --force --no-reboot",
            ),
            ("os list", "os list"),
            ("os version", "version"),
            ("engine list", "engine list"),
            ("engine switch docker-26.1 -f", "engine switch docker-26.1"),
            ("console list", "console list"),
            ("console switch debian -f", "console switch debian"),
            (
                "tls gen -s -H a.example -H b.example",
                "tls gen --server -H a.example -H b.example",
            ),
            ("tls generate", "tls gen"),
            (
                "install -d /dev/sda -c cc.yml",
                "install --device /dev/sda --cloud-config cc.yml",
            ),
            (
                "install -f --no-reboot -d /dev/vdb",
                "install --force --no-reboot --device /dev/vdb",
            ),
            ("-v", "--version"),
            ("config", "config --help"),
            ("service --help", "service --help"),
            // A flag ros does not know goes on to clap, which names it.
            ("config get --frob x", "config get x --frob"),
        ];
        for (ros, berth) in table {
            assert_eq!(
                translate(&words(ros), &all),
                Translation::Berth(words(berth)),
                "ros {ros}"
            );
        }
    }

    #[test]
    fn what_berth_lacks_is_named_with_what_to_use() {
        let table = [
            (
                "install -d /dev/sda -i rancher/os:v1.5",
                "ros install -i",
                "berth os upgrade",
            ),
            ("install -t generic -d /dev/sda", "ros install -t", "one layout"),
            ("os upgrade", "ros os upgrade without -i", "signed bundle"),
            ("os upgrade -s -i b.upgrade", "ros os upgrade -s", "--no-reboot"),
            (
                "os upgrade -i rancher/os:v1.5.8",
                "ros os upgrade -i IMAGE",
                "not a container image",
            ),
            (
                "service delete ntp",
                "ros service delete",
                "berth service disable",
            ),
            (
                "service up a b",
                "ros service up with several services",
                "one at a time",
            ),
            ("config images", "ros config images", "berth status"),
            (
                "console enable alpine",
                "ros console enable",
                "berth config set console",
            ),
            ("entrypoint", "ros entrypoint", "entry points"),
            ("frobnicate now", "ros frobnicate now", "ros --help"),
            ("config export -o", "ros config export -o", "needs a value"),
        ];
        for (ros, command, hint) in table {
            match translate(&words(ros), &all) {
                Translation::NotInBerth { command: c, instead } => {
                    assert_eq!(c, command, "ros {ros}");
                    assert!(instead.contains(hint), "ros {ros}: {instead}");
                }
                other => panic!("ros {ros}: {other:?}"),
            }
        }
    }

    #[test]
    fn commands_this_build_lacks_are_not_yet() {
        for ros in ["engine list", "engine switch docker-28", "tls gen --server"] {
            assert!(
                matches!(translate(&words(ros), &none), Translation::NotYet { .. }),
                "ros {ros}"
            );
        }
        // The others do not depend on it.
        assert_eq!(
            translate(&words("config get hostname"), &none),
            Translation::Berth(words("config get hostname"))
        );
    }

    #[test]
    fn help_lists_every_mapping() {
        for ros in ["", "help", "--help", "-h"] {
            assert_eq!(translate(&words(ros), &all), Translation::Help);
        }
        let help = help_text();
        for (ros, berth) in MAPPING {
            assert!(help.contains(ros) && help.contains(berth), "{ros}");
        }
    }

    /// Every translation of the table parses as a real `berth` command line (engine and tls
    /// only where this build has them).
    #[test]
    fn translations_parse_as_berth_commands() {
        let has = crate::cli::has_command;
        for ros in [
            "config get hostname",
            "config export -o out.yml -p -f",
            "config validate -i cc.yml",
            "config merge -i cc.yml",
            "service logs -f --lines 20 ntp",
            "service stop -t 5 ntp",
            "os upgrade -f --no-reboot -i b.upgrade",
            "os version",
            "console switch debian -f",
            "install -d /dev/sda -c cc.yml -f --no-reboot",
            "engine list",
            "tls gen -s -H a",
        ] {
            match translate(&words(ros), &has) {
                Translation::Berth(args) => {
                    let mut argv = vec!["berth".to_string()];
                    argv.extend(args);
                    crate::cli::parses(&argv).unwrap_or_else(|e| panic!("ros {ros}: {e}"));
                }
                Translation::NotYet { .. } if ros.starts_with("engine") || ros.starts_with("tls") => {}
                other => panic!("ros {ros}: {other:?}"),
            }
        }
    }
}
