//! The targets, one per parser of untrusted input.

pub mod cloudinit;
mod config;
pub mod console;
mod kmod;

use crate::Target;

pub(crate) fn all() -> Vec<Target> {
    vec![
        Target {
            name: "cmdline",
            about: "kernel command line: berth.*/rancher.*/cc.* keys, quotes, lists; modprobe's view of it",
            check: config::check_cmdline,
            generate: config::gen_cmdline,
            dictionary: config::CMDLINE_DICT,
        },
        Target {
            name: "cloud_config",
            about: "one cloud-config YAML document, validated",
            check: config::check_cloud_config,
            generate: config::gen_yaml,
            dictionary: config::YAML_DICT,
        },
        Target {
            name: "config_layers",
            about: "OEM, cloud-config.d, user-data, local and cmdline layers loaded and merged",
            check: config::check_config_layers,
            generate: |rng| {
                let mut out = Vec::new();
                for i in 0..4 {
                    out.extend(config::gen_yaml(rng));
                    if i < 3 {
                        out.push(0);
                    }
                }
                out.push(0);
                out.extend(config::gen_cmdline(rng));
                out
            },
            dictionary: config::YAML_DICT,
        },
        Target {
            name: "values",
            about: "value types (modes, paths, CIDRs, user names, ...): parse, display, parse again",
            check: config::check_values,
            generate: config::gen_values,
            dictionary: config::VALUES_DICT,
        },
        Target {
            name: "user_data",
            about: "user-data: #cloud-config, scripts, gzip, multipart MIME, within the budget",
            check: cloudinit::check_user_data,
            generate: cloudinit::gen_user_data,
            dictionary: cloudinit::USER_DATA_DICT,
        },
        Target {
            name: "meta_nocloud",
            about: "NoCloud meta-data YAML",
            check: cloudinit::check_nocloud,
            generate: cloudinit::gen_nocloud,
            dictionary: cloudinit::META_DICT,
        },
        Target {
            name: "meta_configdrive",
            about: "config-drive meta_data.json",
            check: cloudinit::check_openstack,
            generate: cloudinit::gen_openstack,
            dictionary: cloudinit::META_DICT,
        },
        Target {
            name: "meta_ec2",
            about: "EC2 meta-data answers: key index, instance id, host name, keys",
            check: cloudinit::check_ec2,
            generate: cloudinit::gen_ec2,
            dictionary: cloudinit::META_DICT,
        },
        Target {
            name: "mountinfo",
            about: "mount points read back from mountinfo escapes (init and cloud-init)",
            check: cloudinit::check_mountinfo,
            generate: cloudinit::gen_mountinfo,
            dictionary: cloudinit::MOUNTINFO_DICT,
        },
        Target {
            name: "console_files",
            about: "/etc/passwd, group, shadow round trips and authorized_keys rendering",
            check: console::check,
            generate: console::generate,
            dictionary: console::DICT,
        },
        Target {
            name: "modprobe_d",
            about: "modprobe.d configuration",
            check: kmod::check_modprobe,
            generate: kmod::gen_modprobe,
            dictionary: kmod::MODPROBE_DICT,
        },
        Target {
            name: "modules_index",
            about: "modules.dep, .alias, .softdep, .builtin, .builtin.modinfo and alias globs",
            check: kmod::check_index,
            generate: kmod::gen_index,
            dictionary: kmod::INDEX_DICT,
        },
    ]
}
