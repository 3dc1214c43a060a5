//! A service definition turned into the Docker API's container configuration (pure: tested
//! without an engine), with `${VAR}` interpolation and a hash that tells when an existing
//! container no longer matches its definition.

use berth_config::ServiceSpec;
use bollard::models::{
    ContainerCreateBody, DeviceMapping, HealthConfig, HostConfig, HostConfigCgroupnsModeEnum,
    HostConfigLogConfig, PortBinding, ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
};
use indexmap::IndexMap;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub const LABEL_SERVICE: &str = "io.berth.service";
pub const LABEL_HASH: &str = "io.berth.config-hash";
/// `io.berth.shim`: `own` keeps a system service in a containerd shim of its own; `shared`
/// (the default) puts it in the one shim that serves the system services.
pub const LABEL_SHIM: &str = "io.berth.shim";
/// containerd's runc shim serves every container whose OCI annotations give this key the
/// same value (as it serves a Kubernetes pod's containers): one shim process, not one each.
pub const SHIM_GROUP_ANNOTATION: &str = "io.containerd.runc.v2.group";
pub const SYSTEM_SHIM_GROUP: &str = "berth-system";

/// Values for `${VAR}` and for a bare `- KEY` in a service's `environment`: the built-ins,
/// the proxies of `berth.network` (`HTTP_PROXY`, `http_proxy`, ... as
/// [`berth_config::proxy::environment`] spells them) and `berth.environment`, which wins.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    pub vars: IndexMap<String, String>,
}

impl Environment {
    pub fn new(environment: &IndexMap<String, String>) -> Self {
        let mut vars = IndexMap::new();
        vars.insert("BERTH_VERSION".to_string(), crate::VERSION.to_string());
        if let Ok(uts) = nix::sys::utsname::uname() {
            vars.insert(
                "KERNEL_VERSION".to_string(),
                uts.release().to_string_lossy().into_owned(),
            );
        }
        for (k, v) in environment {
            vars.insert(k.clone(), v.clone());
        }
        Self { vars }
    }

    /// The values for services of `config`: [`Environment::new`] with the proxies of
    /// `berth.network` under `berth.environment` (a service that lists `- HTTP_PROXY` gets
    /// the machine's proxy unless `berth.environment` names another). A proxy URL with a
    /// user name or password is left out: a container's environment is shown by
    /// `system-docker inspect` and kept in System Docker's container files.
    pub fn of(config: &berth_config::BerthConfig) -> Self {
        let mut env = Self::new(&config.environment);
        for (key, value) in berth_config::proxy::environment(&config.network) {
            if !config.environment.contains_key(key) && berth_config::proxy::credentials_end(&value).is_none()
            {
                env.vars.insert(key.to_string(), value);
            }
        }
        env
    }

    /// A service's value for a bare `- KEY`: `service/KEY`, then `KEY` (RancherOS's lookup).
    pub fn lookup_for(&self, service: &str, key: &str) -> Option<String> {
        self.vars
            .get(&format!("{service}/{key}"))
            .or_else(|| self.vars.get(key))
            .cloned()
    }

    fn interpolate(&self, text: &str) -> Result<String, berth_config::ConfigError> {
        berth_config::interpolate(text, &|name| self.vars.get(name).cloned())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("service {service}: {message}")]
pub struct SpecError {
    pub service: String,
    pub message: String,
}

/// The container configuration for `service`, and the hash of everything that defines it.
pub fn container_body(
    service: &str,
    spec: &ServiceSpec,
    env: &Environment,
    system_scope: bool,
) -> Result<(ContainerCreateBody, String), SpecError> {
    let err = |message: String| SpecError {
        service: service.to_string(),
        message,
    };
    let i = |text: &str| env.interpolate(text).map_err(|e| err(e.to_string()));
    let list = |items: &[String]| items.iter().map(|s| i(s)).collect::<Result<Vec<_>, _>>();

    let mut environment = Vec::new();
    for (key, value) in &spec.environment {
        let value = match value {
            Some(v) => Some(i(v)?),
            None => env.lookup_for(service, key),
        };
        if let Some(v) = value {
            environment.push(format!("{key}={v}"));
        }
    }
    let mut labels: HashMap<String, String> = spec
        .labels
        .iter()
        .map(|(k, v)| Ok((k.clone(), i(v)?)))
        .collect::<Result<_, SpecError>>()?;
    labels.insert(LABEL_SERVICE.to_string(), service.to_string());

    let mut tmpfs = HashMap::new();
    for entry in &spec.tmpfs {
        let entry = i(entry)?;
        let (path, opts) = entry.split_once(':').unwrap_or((entry.as_str(), ""));
        tmpfs.insert(path.to_string(), opts.to_string());
    }
    let devices = spec
        .devices
        .iter()
        .map(|d| {
            let d = i(d)?;
            let parts: Vec<&str> = d.split(':').collect();
            let (host, container, perms) = match parts[..] {
                [h] => (h, h, "rwm"),
                [h, c] => (h, c, "rwm"),
                [h, c, p] => (h, c, p),
                _ => return Err(err(format!("device {d} is not HOST[:CONTAINER[:PERMISSIONS]]"))),
            };
            Ok(DeviceMapping {
                path_on_host: Some(host.to_string()),
                path_in_container: Some(container.to_string()),
                cgroup_permissions: Some(perms.to_string()),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &spec.ports {
        let p = i(p)?;
        let (mapping, proto) = p.split_once('/').unwrap_or((p.as_str(), "tcp"));
        let parts: Vec<&str> = mapping.rsplitn(3, ':').collect();
        let (container, host_port, host_ip) = match parts[..] {
            [c] => (c, None, None),
            [c, h] => (c, Some(h), None),
            [c, h, ip] => (c, Some(h), Some(ip)),
            _ => return Err(err(format!("port {p} is not [[IP:]HOST:]CONTAINER[/PROTOCOL]"))),
        };
        if container.parse::<u16>().is_err()
            || host_port.is_some_and(|h| !h.is_empty() && h.parse::<u16>().is_err())
        {
            return Err(err(format!("port {p} is not [[IP:]HOST:]CONTAINER[/PROTOCOL]")));
        }
        let key = format!("{container}/{proto}");
        exposed.push(key.clone());
        // A bare container port is published on a port the engine picks, as compose does.
        let host_port = Some(host_port.unwrap_or(""));
        if let Some(host) = host_port {
            bindings
                .entry(key)
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: host_ip.map(|ip| ip.trim_matches(['[', ']']).to_string()),
                    host_port: Some(host.to_string()),
                });
        }
    }
    let restart_policy = spec.restart.as_ref().map(|r| {
        let (name, count) = r.as_str().split_once(':').unwrap_or((r.as_str(), ""));
        let name = match name {
            // System services are started in dependency order by sysinit at every boot; an
            // "always" policy would make System Docker start them itself, out of order. After
            // a crash of the service or of System Docker they still come back.
            "always" if system_scope => RestartPolicyNameEnum::UNLESS_STOPPED,
            "always" => RestartPolicyNameEnum::ALWAYS,
            "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
            "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
            _ => RestartPolicyNameEnum::NO,
        };
        RestartPolicy {
            name: Some(name),
            maximum_retry_count: count.parse().ok(),
        }
    });
    let cgroupns_mode = match spec.cgroupns.as_deref() {
        Some("host") => Some(HostConfigCgroupnsModeEnum::HOST),
        Some("private") => Some(HostConfigCgroupnsModeEnum::PRIVATE),
        _ => None,
    };
    let log_config = spec.log_driver.as_ref().map(|driver| HostConfigLogConfig {
        typ: Some(driver.clone()),
        config: (!spec.log_opt.is_empty())
            .then(|| spec.log_opt.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
    });
    let ulimits: Vec<ResourcesUlimits> = spec
        .ulimits
        .iter()
        .map(|(name, l)| ResourcesUlimits {
            name: Some(name.clone()),
            soft: Some(l.soft),
            hard: Some(l.hard),
        })
        .collect();
    let opt = |s: &Option<String>| s.as_deref().map(i).transpose();
    let healthcheck = match spec.healthcheck.as_ref().map(health_config) {
        Some(mut hc) => {
            hc.test = hc.test.as_deref().map(list).transpose()?;
            Some(hc)
        }
        None => None,
    };
    let nonempty = |v: Vec<String>| (!v.is_empty()).then_some(v);
    // The configuration check refuses such labels; a spec made otherwise is refused here too.
    if let Some(problem) = berth_config::label_problem(&spec.labels) {
        return Err(err(problem));
    }
    let shared_shim = system_scope && spec.berth_label("shim") != Some("own");

    let host_config = HostConfig {
        binds: nonempty(list(&spec.volumes)?),
        volumes_from: nonempty(spec.volumes_from.clone()),
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        devices: (!devices.is_empty()).then_some(devices),
        privileged: Some(spec.privileged),
        network_mode: opt(&spec.net)?,
        pid_mode: opt(&spec.pid)?,
        ipc_mode: opt(&spec.ipc)?,
        uts_mode: opt(&spec.uts)?,
        cgroupns_mode,
        restart_policy,
        cap_add: nonempty(spec.cap_add.clone()),
        cap_drop: nonempty(spec.cap_drop.clone()),
        readonly_rootfs: spec.read_only.then_some(true),
        log_config,
        oom_score_adj: spec.oom_score_adj.map(i64::from),
        ulimits: (!ulimits.is_empty()).then_some(ulimits),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        annotations: shared_shim
            .then(|| HashMap::from([(SHIM_GROUP_ANNOTATION.to_string(), SYSTEM_SHIM_GROUP.to_string())])),
        ..Default::default()
    };
    let body = ContainerCreateBody {
        image: Some(i(spec.image.as_str())?),
        cmd: spec.command.as_ref().map(|c| list(c.argv())).transpose()?,
        entrypoint: spec.entrypoint.as_ref().map(|c| list(c.argv())).transpose()?,
        env: nonempty(environment),
        labels: Some(labels),
        user: opt(&spec.user)?,
        working_dir: opt(&spec.working_dir)?,
        stop_signal: spec.stop_signal.clone(),
        stop_timeout: spec.stop_grace_period.map(|t| t.get().as_secs() as i64),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        healthcheck,
        host_config: Some(host_config),
        ..Default::default()
    };
    let hash = hash_of(&body);
    Ok((body, hash))
}

/// Compose's healthcheck in the engine's terms (durations in nanoseconds; `${VAR}` in the
/// test interpolated like the command).
fn health_config(hc: &berth_config::Healthcheck) -> HealthConfig {
    let nanos = |t: Option<berth_config::schema::values::TimeSpan>| {
        t.map(|t| i64::try_from(t.get().as_nanos()).unwrap_or(i64::MAX))
    };
    let test = if hc.disable {
        Some(vec!["NONE".to_string()])
    } else {
        hc.test.as_ref().map(|t| t.0.clone())
    };
    HealthConfig {
        test,
        interval: nanos(hc.interval),
        timeout: nanos(hc.timeout),
        start_period: nanos(hc.start_period),
        retries: hc.retries.map(i64::from),
        ..Default::default()
    }
}

/// A stable hash of the configuration (labels sorted; the hash label itself excluded).
pub fn hash_of(body: &ContainerCreateBody) -> String {
    let mut value = serde_json::to_value(body).unwrap_or_default();
    if let Some(labels) = value.get_mut("Labels").and_then(|l| l.as_object_mut()) {
        labels.remove(LABEL_HASH);
    }
    let canonical = canonical_json(&value);
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

fn canonical_json(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::Value::String((*k).clone()),
                        canonical_json(&map[*k])
                    )
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
        serde_json::Value::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(canonical_json).collect::<Vec<_>>().join(",")
            )
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ServiceSpec {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("d.yml"),
            format!("berth:\n  services:\n    s:\n{yaml}"),
        )
        .unwrap();
        let paths = berth_config::ConfigPaths {
            defaults: dir.path().join("d.yml"),
            oem_dir: dir.path().join("o"),
            conf_dir: dir.path().join("c"),
        };
        let loaded = berth_config::load(&paths, &berth_config::KernelCmdline::parse(""));
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        loaded.config.berth.services.into_values().next().unwrap()
    }

    fn env() -> Environment {
        let mut e = IndexMap::new();
        e.insert("REGISTRY".to_string(), "registry.local".to_string());
        e.insert("s/TOKEN".to_string(), "for-s".to_string());
        e.insert("TOKEN".to_string(), "global".to_string());
        Environment::new(&e)
    }

    #[test]
    fn compose_keys_map_to_the_api() {
        let s = spec(
            "      image: ${REGISTRY}/console:${BERTH_VERSION}\n\
             \x20     command: [/usr/bin/berth, console-init]\n\
             \x20     privileged: true\n\
             \x20     net: host\n\
             \x20     pid: host\n\
             \x20     cgroupns: host\n\
             \x20     restart: always\n\
             \x20     environment: [TOKEN, PLAIN=x]\n\
             \x20     volumes: [/run:/run, /home:/home:rshared]\n\
             \x20     tmpfs: [/run, '/tmp:size=10m']\n\
             \x20     devices: [/dev/kvm]\n\
             \x20     labels: {io.berth.scope: system}\n",
        );
        let (body, hash) = container_body("s", &s, &env(), true).unwrap();
        assert_eq!(
            body.image.as_deref(),
            Some(format!("registry.local/console:{}", crate::VERSION).as_str())
        );
        assert_eq!(body.cmd.as_deref().unwrap(), ["/usr/bin/berth", "console-init"]);
        assert_eq!(body.env.as_deref().unwrap(), ["TOKEN=for-s", "PLAIN=x"]);
        let labels = body.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_SERVICE], "s");
        let hc = body.host_config.as_ref().unwrap();
        assert_eq!(hc.network_mode.as_deref(), Some("host"));
        assert_eq!(hc.pid_mode.as_deref(), Some("host"));
        assert_eq!(hc.cgroupns_mode, Some(HostConfigCgroupnsModeEnum::HOST));
        assert_eq!(hc.privileged, Some(true));
        assert_eq!(
            hc.restart_policy.as_ref().unwrap().name,
            Some(RestartPolicyNameEnum::UNLESS_STOPPED)
        );
        assert_eq!(hc.binds.as_deref().unwrap(), ["/run:/run", "/home:/home:rshared"]);
        let tmpfs = hc.tmpfs.as_ref().unwrap();
        assert_eq!(tmpfs["/run"], "");
        assert_eq!(tmpfs["/tmp"], "size=10m");
        assert_eq!(
            hc.devices.as_ref().unwrap()[0].path_in_container.as_deref(),
            Some("/dev/kvm")
        );
        assert_eq!(hash.len(), 64);
    }

    #[test]
    fn system_services_share_one_shim_unless_they_ask_for_their_own() {
        let group_of = |s: &ServiceSpec, system: bool| {
            let (body, _) = container_body("s", s, &env(), system)?;
            Ok::<_, SpecError>(
                body.host_config
                    .and_then(|hc| hc.annotations)
                    .and_then(|a| a.get(SHIM_GROUP_ANNOTATION).cloned()),
            )
        };
        let group = |yaml: &str, system: bool| group_of(&spec(yaml), system);
        let system = "      image: x\n      labels: {io.berth.scope: system}\n";
        assert_eq!(group(system, true).unwrap().as_deref(), Some(SYSTEM_SHIM_GROUP));
        let own = "      image: x\n      labels: {io.berth.scope: system, io.berth.shim: own}\n";
        assert_eq!(group(own, true).unwrap(), None);
        // The user's services in User Docker keep docker's one shim per container.
        assert_eq!(group("      image: x\n", false).unwrap(), None);
        // The configuration refuses any other value (berth_config::label_problem); a spec
        // made otherwise is refused here too.
        let mut wrong = spec(own);
        wrong.labels.insert(LABEL_SHIM.into(), "one".into());
        let e = group_of(&wrong, true).unwrap_err().to_string();
        assert!(e.contains("io.berth.shim") && e.contains("\"one\""), "{e}");
    }

    #[test]
    fn ports_are_published() {
        let s = spec("      image: nginx\n      ports: [\"8080:80\", \"127.0.0.1:5353:53/udp\", \"9000\"]\n");
        let (body, _) = container_body("s", &s, &env(), false).unwrap();
        let mut exposed = body.exposed_ports.clone().unwrap();
        exposed.sort();
        assert_eq!(exposed, ["53/udp", "80/tcp", "9000/tcp"]);
        let bindings = body.host_config.unwrap().port_bindings.unwrap();
        let b = bindings["80/tcp"].as_ref().unwrap();
        assert_eq!(
            (b[0].host_ip.as_deref(), b[0].host_port.as_deref()),
            (None, Some("8080"))
        );
        let b = bindings["53/udp"].as_ref().unwrap();
        assert_eq!(
            (b[0].host_ip.as_deref(), b[0].host_port.as_deref()),
            (Some("127.0.0.1"), Some("5353"))
        );
        let b = bindings["9000/tcp"].as_ref().unwrap();
        assert_eq!(
            b[0].host_port.as_deref(),
            Some(""),
            "a bare port gets a port the engine picks"
        );
        assert!(
            container_body(
                "s",
                &spec("      image: x\n      ports: [\"http:80\"]\n"),
                &env(),
                false
            )
            .is_err()
        );
    }

    #[test]
    fn user_services_keep_always() {
        let (body, _) = container_body(
            "s",
            &spec("      image: nginx\n      restart: always\n"),
            &env(),
            false,
        )
        .unwrap();
        assert_eq!(
            body.host_config.unwrap().restart_policy.unwrap().name,
            Some(RestartPolicyNameEnum::ALWAYS)
        );
    }

    #[test]
    fn the_hash_follows_the_definition_only() {
        let a = container_body("s", &spec("      image: x\n      command: [a]\n"), &env(), true).unwrap();
        let b = container_body("s", &spec("      image: x\n      command: [a]\n"), &env(), true).unwrap();
        let c = container_body("s", &spec("      image: x\n      command: [b]\n"), &env(), true).unwrap();
        assert_eq!(a.1, b.1);
        assert_ne!(a.1, c.1);
    }

    #[test]
    fn an_undefined_variable_names_the_service() {
        let e = container_body("s", &spec("      image: ${NOPE}/x\n"), &env(), true).unwrap_err();
        assert!(e.to_string().starts_with("service s:"), "{e}");
        assert!(e.to_string().contains("NOPE"), "{e}");
    }

    /// The shipped docker service carries berth.network's proxies in its container's
    /// environment (what `system-docker inspect docker` shows), both spellings;
    /// berth.environment wins over them, and without proxies none is set.
    #[test]
    fn the_docker_service_carries_the_proxies() {
        let loaded = crate::shipped_defaults();
        let mut config = loaded.config.berth;
        let docker = config
            .services
            .iter()
            .find(|(k, _)| k.as_str() == "docker")
            .map(|(_, v)| v.clone())
            .unwrap();
        let env_of = |config: &berth_config::BerthConfig| {
            let (body, _) = container_body("docker", &docker, &Environment::of(config), true).unwrap();
            body.env.unwrap_or_default()
        };
        assert!(
            !env_of(&config).iter().any(|e| e.to_lowercase().contains("proxy")),
            "{:?}",
            env_of(&config)
        );
        config.network.http_proxy = Some("http://198.18.0.99:3128".parse().unwrap());
        config.network.https_proxy = Some("http://198.18.0.99:3129".parse().unwrap());
        config.network.no_proxy = Some("localhost,.test".into());
        config
            .environment
            .insert("https_proxy".into(), "http://10.1.1.1:8080".into());
        // A proxy with credentials stays out of the container's environment.
        config.network.http_proxy = Some("http://user:secret@198.18.0.98:3128".parse().unwrap());
        let env = env_of(&config);
        assert!(!env.iter().any(|e| e.contains("secret")), "{env:?}");
        assert!(env.iter().any(|e| e == "NO_PROXY=localhost,.test"), "{env:?}");
        config.network.http_proxy = Some("http://198.18.0.99:3128".parse().unwrap());
        let env = env_of(&config);
        for want in [
            "HTTP_PROXY=http://198.18.0.99:3128",
            "http_proxy=http://198.18.0.99:3128",
            "HTTPS_PROXY=http://198.18.0.99:3129",
            "https_proxy=http://10.1.1.1:8080",
            "NO_PROXY=localhost,.test",
            "no_proxy=localhost,.test",
        ] {
            assert!(env.iter().any(|e| e == want), "{want} missing: {env:?}");
        }
    }
}
