//! Every kind of validation message, pinned by one snapshot: what the user sees for each
//! mistake (file:line:column, key path, what is allowed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

use berth_config::validate_text;

const CASES: &[(&str, &str)] = &[
    ("YAML: tab indentation", "berth:\n\tdebug: true\n"),
    ("YAML: unclosed quote", "hostname: \"abc\n"),
    (
        "YAML: unclosed flow list",
        "berth:\n  modules: [a, b\n  debug: true\n",
    ),
    ("YAML: duplicate key", "hostname: a\nhostname: b\n"),
    ("not a map", "- hostname: a\n"),
    ("a script", "#!/bin/sh\necho hi\n"),
    ("multipart", "Content-Type: multipart/mixed; boundary=x\n"),
    ("hostname", "hostname: -web_01-\n"),
    ("port: text", "berth:\n  ssh:\n    port: x\n"),
    ("port: zero", "berth: {ssh: {port: 0}}\n"),
    ("port: too big", "berth: {ssh: {port: 70000}}\n"),
    (
        "CIDR: no prefix",
        "berth: {network: {interfaces: {eth0: {address: 10.0.0.2}}}}\n",
    ),
    (
        "CIDR: prefix too long",
        "berth: {network: {interfaces: {eth0: {addresses: [10.0.0.2/33]}}}}\n",
    ),
    (
        "IP address",
        "berth: {network: {dns: {nameservers: [dns.google]}}}\n",
    ),
    ("MTU", "berth: {network: {interfaces: {eth0: {mtu: 10}}}}\n"),
    (
        "proxy URL",
        "rancher:\n  network:\n    http_proxy: proxy.example:3128\n",
    ),
    (
        "network: overlapping addresses",
        "berth:\n  network:\n    interfaces:\n      eth0:\n        address: 192.0.2.10/24\n      eth1:\n        addresses: [198.51.100.1/24, 192.0.2.200/25]\n",
    ),
    (
        "network: bond option",
        "berth:\n  network:\n    interfaces:\n      bond0:\n        bond_opts:\n          mode: active-passive\n",
    ),
    (
        "network: VLAN ID",
        "berth: {network: {interfaces: {eth0: {vlans: \"100,5000:big\"}}}}\n",
    ),
    (
        "network: route destination",
        "berth: {network: {interfaces: {eth0: {routes: [{to: 10.1.0.1/16, via: 10.0.0.2}]}}}}\n",
    ),
    (
        "network: route router family",
        "berth:\n  network:\n    interfaces:\n      eth0:\n        routes:\n          - to: fd00:1::/64\n            via: 10.0.0.2\n",
    ),
    (
        "network: two masters",
        "berth:\n  network:\n    interfaces:\n      eth0:\n        bond: bond0\n        bridge: br0\n",
    ),
    (
        "file mode",
        "write_files:\n  - path: /etc/x\n    permissions: \"0689\"\n",
    ),
    ("boolean", "berth: {debug: maybe}\n"),
    ("whole number", "berth: {shutdown_timeout: -5}\n"),
    ("list expected", "berth: {autologin: {tty1: true}}\n"),
    ("map expected", "berth: [debug]\n"),
    ("terminal name", "berth: {autologin: [\"tty 1\"]}\n"),
    ("ssh key", "ssh_authorized_keys: [hello]\n"),
    (
        "ssh private key",
        "ssh_authorized_keys:\n  - |\n    -----BEGIN OPENSSH PRIVATE KEY-----\n    b3Blbn\n    -----END OPENSSH PRIVATE KEY-----\n",
    ),
    ("write_files: no path", "write_files:\n  - content: x\n"),
    ("write_files: relative path", "write_files:\n  - path: etc/x\n"),
    (
        "write_files: encoding",
        "write_files:\n  - path: /x\n    encoding: rot13\n",
    ),
    (
        "write_files: bad base64",
        "write_files:\n  - path: /x\n    encoding: b64\n    content: \"!!!\"\n",
    ),
    (
        "write_files: bad gzip",
        "write_files:\n  - path: /x\n    encoding: gzip+b64\n    content: aGVsbG8=\n",
    ),
    ("users: name", "users:\n  - name: Bad Name\n"),
    ("users: sudo true", "users:\n  - name: a\n    sudo: true\n"),
    ("users: twice", "users: [a, b, a]\n"),
    (
        "users: gecos with a colon",
        "users:\n  - name: a\n    gecos: \"x:0:0\"\n",
    ),
    (
        "users: gecos with a newline",
        "users:\n  - name: a\n    gecos: \"A\\nroot::0:0::/root:/bin/sh\"\n",
    ),
    (
        "users: homedir",
        "users:\n  - name: a\n    homedir: \"/home/a:/bin/sh\"\n",
    ),
    (
        "users: relative homedir",
        "users:\n  - name: a\n    homedir: home/a\n",
    ),
    (
        "users: shell with a newline",
        "users:\n  - name: a\n    shell: \"/bin/sh\\nb::0:0::/:/bin/sh\"\n",
    ),
    (
        "users: groups list",
        "users:\n  - name: a\n    groups: [docker, \"wheel:x:0:a\"]\n",
    ),
    (
        "users: groups string",
        "users:\n  - name: a\n    groups: \"docker, adm\\nroot\"\n",
    ),
    (
        "users: empty password",
        "users:\n  - name: a\n    passwd: \"\"\n    lock_passwd: false\n",
    ),
    (
        "users: primary_group",
        "users:\n  - name: a\n    primary_group: \"x:0\"\n",
    ),
    ("mounts: too short", "mounts:\n  - [/dev/vdb]\n"),
    ("mounts: relative mount point", "mounts:\n  - [/dev/vdb, data]\n"),
    ("runcmd: empty argv", "runcmd:\n  - []\n"),
    ("runcmd: map", "runcmd:\n  - {a: b}\n"),
    ("timezone", "timezone: ../../etc/passwd\n"),
    (
        "service: no image",
        "berth:\n  services:\n    web:\n      restart: always\n",
    ),
    ("service: name", "berth:\n  services:\n    -web: {image: x}\n"),
    (
        "service: restart",
        "berth: {services: {web: {image: nginx, restart: sometimes}}}\n",
    ),
    (
        "service: entrypoint quote",
        "berth: {services: {web: {image: nginx, entrypoint: \"sh -c 'oops\"}}}\n",
    ),
    (
        "service: oom_score_adj",
        "berth: {services: {web: {image: nginx, oom_score_adj: 5000}}}\n",
    ),
    (
        "service: stop_grace_period",
        "berth: {services: {web: {image: nginx, stop_grace_period: forever}}}\n",
    ),
    (
        "service: ulimit",
        "berth: {services: {web: {image: nginx, ulimits: {nofile: {soft: 1}}}}}\n",
    ),
    (
        "service: environment",
        "berth: {services: {web: {image: nginx, environment: [\"=x\"]}}}\n",
    ),
    (
        "service: compose-only key",
        "berth: {services: {web: {image: nginx, build: ./web}}}\n",
    ),
    (
        "service: typo",
        "berth: {services: {web: {image: nginx, previleged: true}}}\n",
    ),
    (
        "datasource",
        "berth: {cloud_init: {datasources: [nocloud, gce]}}\n",
    ),
    ("module", "berth: {modules: [\"a/b\"]}\n"),
    ("device", "berth: {state: {dev: sda1}}\n"),
    (
        "registry mirror",
        "berth: {docker: {registry_mirrors: [mirror.example]}}\n",
    ),
    (
        "ntp server: a URL",
        "berth:\n  ntp:\n    servers: [pool.example.org, \"ntp://time.example.org\"]\n",
    ),
    (
        "swarm: worker without manager address or token",
        "berth:\n  swarm:\n    role: worker\n",
    ),
    (
        "swarm: init on a worker",
        "berth:\n  swarm:\n    role: worker\n    init: true\n",
    ),
    ("swarm: no role", "berth:\n  swarm:\n    join: 198.18.0.10:2377\n"),
    (
        "swarm: serve_token on a worker",
        "berth:\n  swarm:\n    role: worker\n    join: 198.18.0.10\n    token_file: /run/token\n    serve_token: true\n",
    ),
    (
        "swarm: bad token (not repeated)",
        "berth:\n  swarm:\n    role: worker\n    join: 198.18.0.10\n    token: SWMTKN-1-secret part\n",
    ),
    (
        "swarm: manager address",
        "berth: {swarm: {role: worker, join: \"tcp://198.18.0.10:2377\", token_file: /run/token}}\n",
    ),
    (
        "ntp server: bad port",
        "berth: {ntp: {servers: [\"time.example.org:ntp\"]}}\n",
    ),
    (
        "syslog remote: not a URL",
        "berth:\n  syslog:\n    remote: logs.example.org:514\n",
    ),
    (
        "syslog remote: http",
        "berth: {syslog: {remote: \"http://logs.example.org\"}}\n",
    ),
    ("sysctl list", "berth: {sysctl: {vm.swappiness: [1]}}\n"),
    ("sysctl key: absolute", "berth: {sysctl: {/etc/shadow: x}}\n"),
    (
        "sysctl key: parent",
        "berth:\n  sysctl:\n    net/../../../etc/x: 1\n",
    ),
    ("shutdown timeout too short", "berth: {shutdown_timeout: 0}\n"),
    (
        "zram bigger than the memory allows",
        "berth: {zram: {size_percent: 151}}\n",
    ),
    ("zram size negative", "berth: {zram: {size_percent: -1}}\n"),
    ("unknown top-level key", "hostnme: web\n"),
    ("unknown berth key", "berth: {sshd: {port: 22}}\n"),
    ("cloud-init-only key", "package_upgrade: true\n"),
    ("append to a scalar", "berth: {shutdown_timeout+: [5]}\n"),
    ("rancher: not a map", "rancher: yes\n"),
    (
        "rancher: wrong type under a mapped key",
        "rancher:\n  ssh:\n    port: twenty-two\n",
    ),
];

#[test]
fn every_validation_message() {
    let mut out = String::new();
    for (title, text) in CASES {
        out.push_str(&format!("## {title}\n"));
        let diagnostics = validate_text(text, "case.yml");
        assert!(!diagnostics.is_empty(), "{title}: no diagnostic");
        for d in diagnostics {
            out.push_str(&format!("{d}\n"));
        }
        out.push('\n');
    }
    insta::assert_snapshot!(out);
}

#[test]
fn valid_texts_have_no_diagnostics() {
    for text in [
        "",
        "#cloud-config\n",
        "hostname: a\n",
        "berth: {ssh: {port: \"2222\"}, debug: yes, sysctl: {vm.swappiness: 0, net.ipv4.ip_forward: on}}\n",
        "write_files: [{path: /x, permissions: 0644}, {path: /y, permissions: 755}]\n",
        "users: [default, {name: alice, groups: [docker], sudo: false}]\n",
        "mounts: [[swap, null, swap, sw]]\n",
        "berth: {zram: {size_percent: 0}}\n",
        "berth: {zram: {size_percent: 150}}\n",
        "rancher: {network: {http_proxy: \"http://10.0.0.1:3128\", https_proxy: \"http://10.0.0.1:3128\", no_proxy: \"localhost,.lan\"}}\n",
        "berth: {network: {http_proxy: \"http://u:p@proxy:3128\", no_proxy: \"*\"}}\n",
    ] {
        assert_eq!(validate_text(text, "ok.yml"), [], "{text}");
    }
}

#[test]
fn every_error_of_a_layer_is_reported_at_once() {
    let text = "#cloud-config\nhostname: \"bad host\"\nberth:\n  ssh:\n    port: 70000\n  sssh: {}\n  shutdown_timeout: soon\n";
    let diagnostics = berth_config::validate_text(text, "user-data");
    let errors: Vec<String> = diagnostics
        .iter()
        .filter(|d| d.severity == berth_config::Severity::Error)
        .filter_map(|d| d.key.clone())
        .collect();
    for key in ["hostname", "berth.ssh.port", "berth.shutdown_timeout"] {
        assert!(
            errors.iter().any(|k| k == key),
            "{key} not reported: {diagnostics:?}"
        );
    }
    assert!(
        diagnostics
            .iter()
            .any(|d| d.severity == berth_config::Severity::Warning && d.key.as_deref() == Some("berth.sssh")),
        "the unknown key after the first error is not reported: {diagnostics:?}"
    );
}
