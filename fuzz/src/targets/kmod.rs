//! berth-kmod: `modprobe.d` configuration and the `modules.*` index files.

use crate::mutate::{pick, word};
use crate::{split_parts, text};
use berth_kmod::{
    Glob, ModprobeConfig, ModuleIndex, parse_builtin_modinfo, parse_modules_alias, parse_modules_builtin,
    parse_modules_dep, parse_modules_softdep,
};
use fastrand::Rng;

pub const MODPROBE_DICT: &[&str] = &[
    "options ",
    "blacklist ",
    "alias ",
    "softdep ",
    "install ",
    "remove ",
    "pre: ",
    "post: ",
    "\\\n",
    "#",
    "\n",
    "-",
    "_",
    "*",
    "?",
    "[",
    "]",
    "[!",
    "\\",
    "pci:v*d*",
    "usb:v1234p*",
];

pub fn gen_modprobe(rng: &mut Rng) -> Vec<u8> {
    let mut out = String::new();
    for _ in 0..rng.usize(1..12) {
        let line = match rng.u8(..7) {
            0 => format!("options {} {}={}", word(rng), word(rng), word(rng)),
            1 => format!("blacklist {}", word(rng)),
            2 => format!("alias {}* {}", word(rng), word(rng)),
            3 => format!("softdep {} pre: {} post: {}", word(rng), word(rng), word(rng)),
            4 => format!("install {} /bin/true", word(rng)),
            5 => format!("# {}", word(rng)),
            _ => format!("options {} \\\n  {}=1", word(rng), word(rng)),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out.into_bytes()
}

/// modprobe.d: never panics; every module named in the text can be asked about.
pub fn check_modprobe(input: &[u8]) -> Result<(), String> {
    let config = ModprobeConfig::parse(&text(input), "fuzz.conf");
    for word in text(input).split_whitespace().take(200) {
        let _ = config.options(word);
        let _ = config.is_blacklisted(word);
        let _ = config.softdeps(word);
    }
    Ok(())
}

pub const INDEX_DICT: &[&str] = &[
    "kernel/",
    ".ko",
    ".ko.xz",
    ": ",
    "\n",
    "alias ",
    "softdep ",
    "pre: ",
    "post: ",
    "\0",
    "=",
    ".",
    "*",
    "?",
    "[",
    "]",
    "virtio_net",
    "pci:v00001AF4d00001000sv*sd*bc*sc*i*",
];

/// modules.dep NUL modules.alias NUL modules.softdep NUL modules.builtin NUL builtin.modinfo
/// (the last one NUL-separated itself, so it comes last).
pub fn gen_index(rng: &mut Rng) -> Vec<u8> {
    let owned: Vec<String> = (0..rng.usize(1..6)).map(|_| word(rng)).collect();
    let names: Vec<&str> = owned.iter().map(String::as_str).collect();
    let mut dep = String::new();
    let mut alias = String::new();
    for n in &names {
        dep.push_str(&format!(
            "kernel/drivers/{n}.ko.xz: kernel/lib/{}.ko.xz\n",
            pick(rng, &names)
        ));
        alias.push_str(&format!("alias {}:{}* {n}\n", word(rng), word(rng)));
    }
    let softdep = format!("softdep {} pre: {}\n", pick(rng, &names), pick(rng, &names));
    let builtin = format!("kernel/fs/{}.ko\n", word(rng));
    let modinfo = format!("{}.alias=fs-{}\0{}.file=fs/x\0", word(rng), word(rng), word(rng));
    format!("{dep}\0{alias}\0{softdep}\0{builtin}\0{modinfo}").into_bytes()
}

/// The index files: parsed alone, then loaded together as a `lib/modules/<release>` tree,
/// and every word of the input looked up (aliases are globs: the match must stay linear).
pub fn check_index(input: &[u8]) -> Result<(), String> {
    let parts = split_parts(input, 5);
    let _ = parse_modules_dep(&text(parts[0]));
    let _ = parse_modules_alias(&text(parts[1]));
    let _ = parse_modules_softdep(&text(parts[2]));
    let _ = parse_modules_builtin(&text(parts[3]));
    let _ = parse_builtin_modinfo(parts[4]);
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    for (name, bytes) in [
        ("modules.dep", parts[0]),
        ("modules.alias", parts[1]),
        ("modules.softdep", parts[2]),
        ("modules.builtin", parts[3]),
        ("modules.builtin.modinfo", parts[4]),
    ] {
        std::fs::write(dir.path().join(name), bytes).map_err(|e| format!("{name}: {e}"))?;
    }
    if let Ok(index) = ModuleIndex::load(dir.path()) {
        let all = text(input);
        for word in all
            .split(|c: char| c.is_whitespace() || c == '\0' || c == ':')
            .take(100)
        {
            let _ = index.lookup(word);
            let _ = index.dependencies(word);
        }
    }
    // An alias pattern against the longest word: linear time whatever the pattern.
    let pattern = text(parts[1]);
    let subject = text(parts[0]);
    let _ = Glob::new(&pattern).matches(&subject);
    Ok(())
}
