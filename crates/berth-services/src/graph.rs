//! The service graph: which services run in which engine, and in what order. Edges come from
//! the `after` and `before` labels (`io.berth.*`, or RancherOS's `io.rancher.os.*`); user
//! services (the default scope, as in RancherOS) also wait for the `docker` service.

use berth_config::ServiceSpec;
use indexmap::IndexMap;
use std::collections::{BTreeMap, BTreeSet};

/// The service that runs User Docker.
pub const USER_ENGINE_SERVICE: &str = "docker";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// In System Docker.
    System,
    /// In User Docker (the default, as in RancherOS).
    User,
}

pub fn scope(spec: &ServiceSpec) -> Scope {
    match spec.berth_label("scope") {
        Some("system") => Scope::System,
        _ => Scope::User,
    }
}

pub fn label_bool(spec: &ServiceSpec, suffix: &str) -> Option<bool> {
    spec.berth_label(suffix)
        .map(|v| berth_config::parse_bool(v).unwrap_or(false))
}

/// `detach: "false"` makes dependants wait until the service has exited.
pub fn detached(spec: &ServiceSpec) -> bool {
    label_bool(spec, "detach").unwrap_or(true)
}

pub fn create_only(spec: &ServiceSpec) -> bool {
    label_bool(spec, "createonly").unwrap_or(false)
}

fn names(value: Option<&str>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Services with their dependencies resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceGraph {
    /// name -> names it waits for.
    pub deps: BTreeMap<String, BTreeSet<String>>,
    /// Declaration order, for stable output.
    pub order: Vec<String>,
    /// Dependencies naming services that do not exist (reported, then ignored).
    pub unknown: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("services depend on each other in a cycle: {}", .0.join(" -> "))]
pub struct Cycle(pub Vec<String>);

impl ServiceGraph {
    pub fn new(services: &IndexMap<String, ServiceSpec>) -> Self {
        let mut deps: BTreeMap<String, BTreeSet<String>> =
            services.keys().map(|n| (n.clone(), BTreeSet::new())).collect();
        let mut unknown = Vec::new();
        for (name, spec) in services {
            let mut add = |from: &str, to: &str| {
                if !services.contains_key(to) {
                    unknown.push((from.to_string(), to.to_string()));
                } else if from != to
                    && let Some(set) = deps.get_mut(from)
                {
                    set.insert(to.to_string());
                }
            };
            for after in names(spec.berth_label("after")) {
                // RancherOS's services say `after: cloud-init` for the execute step.
                let after = if after == "cloud-init-execute" {
                    "cloud-init".to_string()
                } else {
                    after
                };
                add(name, &after);
            }
            for before in names(spec.berth_label("before")) {
                add(&before, name);
            }
            if scope(spec) == Scope::User && services.contains_key(USER_ENGINE_SERVICE) {
                add(name, USER_ENGINE_SERVICE);
            }
        }
        Self {
            deps,
            order: services.keys().cloned().collect(),
            unknown,
        }
    }

    /// Services in start order (Kahn's algorithm, declaration order among equals).
    pub fn start_order(&self) -> Result<Vec<String>, Cycle> {
        let mut done: BTreeSet<String> = BTreeSet::new();
        let mut out = Vec::new();
        while out.len() < self.order.len() {
            let next = self
                .order
                .iter()
                .find(|n| !done.contains(*n) && self.deps[*n].iter().all(|d| done.contains(d)));
            match next {
                Some(n) => {
                    done.insert(n.clone());
                    out.push(n.clone());
                }
                None => return Err(Cycle(self.find_cycle(&done))),
            }
        }
        Ok(out)
    }

    fn find_cycle(&self, done: &BTreeSet<String>) -> Vec<String> {
        let Some(start) = self.order.iter().find(|n| !done.contains(*n)) else {
            return Vec::new();
        };
        let mut path = vec![start.clone()];
        let mut current = start.clone();
        loop {
            let Some(next) = self.deps[&current].iter().find(|d| !done.contains(*d)) else {
                return path;
            };
            if let Some(pos) = path.iter().position(|p| p == next) {
                let mut cycle = path[pos..].to_vec();
                cycle.push(next.clone());
                return cycle;
            }
            path.push(next.clone());
            current = next.clone();
        }
    }

    /// Services that depend on `name`.
    pub fn dependants(&self, name: &str) -> Vec<String> {
        self.order
            .iter()
            .filter(|n| self.deps[*n].contains(name))
            .cloned()
            .collect()
    }

    /// Every service that waits, directly or through others, for one of `from` (`from`
    /// itself only when it is on such a path, as in a cycle).
    pub fn downstream<'a>(&self, from: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
        self.closure(from, |name| self.dependants(name))
    }

    /// Every service that one of `from` waits for, directly or through others.
    pub fn upstream<'a>(&self, from: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
        self.closure(from, |name| {
            self.deps
                .get(name)
                .map(|d| d.iter().cloned().collect())
                .unwrap_or_default()
        })
    }

    fn closure<'a>(
        &self,
        from: impl IntoIterator<Item = &'a String>,
        next: impl Fn(&str) -> Vec<String>,
    ) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let mut todo: Vec<String> = from.into_iter().cloned().collect();
        while let Some(name) = todo.pop() {
            for other in next(&name) {
                if found.insert(other.clone()) {
                    todo.push(other);
                }
            }
        }
        found
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Services from a YAML fragment of `berth.services` (indented by four spaces).
    pub(crate) fn services(yaml: &str) -> IndexMap<String, ServiceSpec> {
        let text = format!("berth:\n  services:\n{yaml}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("defaults.yml"), text).unwrap();
        let paths = berth_config::ConfigPaths {
            defaults: dir.path().join("defaults.yml"),
            oem_dir: dir.path().join("oem"),
            conf_dir: dir.path().join("conf"),
        };
        let loaded = berth_config::load(&paths, &berth_config::KernelCmdline::parse(""));
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        loaded
            .config
            .berth
            .services
            .into_iter()
            .map(|(k, v)| (k.as_str().to_string(), v))
            .collect()
    }

    #[test]
    fn default_services_start_in_dependency_order() {
        let s = services(
            "    console: {image: c, labels: {io.berth.scope: system, io.berth.after: cloud-init}}\n\
             \x20   docker: {image: d, labels: {io.berth.scope: system, io.berth.after: cloud-init}}\n\
             \x20   cloud-init: {image: b, labels: {io.berth.scope: system, io.berth.after: network, io.berth.detach: 'false'}}\n\
             \x20   network: {image: n, labels: {io.berth.scope: system}}\n",
        );
        let graph = ServiceGraph::new(&s);
        assert_eq!(
            graph.start_order().unwrap(),
            ["network", "cloud-init", "console", "docker"]
        );
        assert!(!detached(&s["cloud-init"]));
        assert!(detached(&s["console"]));
        assert_eq!(graph.dependants("cloud-init"), ["console", "docker"]);
    }

    /// The shipped os/defaults.yml: udev first, before network; syslog and acpid after udev;
    /// ntp after cloud-init (its write_files land before it starts); none of the four is
    /// restarted by any change of the configuration.
    #[test]
    fn shipped_defaults_order_the_system_daemons() {
        let loaded = crate::shipped_defaults();
        let s: IndexMap<String, ServiceSpec> = loaded
            .config
            .berth
            .services
            .into_iter()
            .map(|(k, v)| (k.as_str().to_string(), v))
            .collect();
        let order = ServiceGraph::new(&s).start_order().unwrap();
        let at = |name: &str| order.iter().position(|n| n == name).unwrap();
        assert!(at("udev") < at("network"), "{order:?}");
        assert!(at("udev") < at("syslog") && at("udev") < at("acpid"), "{order:?}");
        assert!(at("cloud-init") < at("ntp"), "{order:?}");
        for name in ["udev", "syslog", "ntp", "acpid"] {
            assert_eq!(scope(&s[name]), Scope::System, "{name}");
            assert!(detached(&s[name]), "{name}");
        }
        for name in ["udev", "acpid", "syslog"] {
            assert!(s[name].berth_label("restart-on-change").is_some(), "{name}");
        }
    }

    #[test]
    fn before_labels_rancher_names_and_user_scope() {
        let s = services(
            "    web: {image: nginx}\n\
             \x20   docker: {image: d, labels: {io.rancher.os.scope: system}}\n\
             \x20   logrotate: {image: l, labels: {io.rancher.os.scope: system, io.rancher.os.before: docker, io.rancher.os.createonly: 'true'}}\n",
        );
        let graph = ServiceGraph::new(&s);
        assert_eq!(scope(&s["web"]), Scope::User);
        assert_eq!(scope(&s["docker"]), Scope::System);
        assert!(create_only(&s["logrotate"]));
        assert_eq!(graph.start_order().unwrap(), ["logrotate", "docker", "web"]);
    }

    #[test]
    fn cycles_are_named_and_unknown_dependencies_reported() {
        let s = services(
            "    a: {image: x, labels: {io.berth.scope: system, io.berth.after: b}}\n\
             \x20   b: {image: x, labels: {io.berth.scope: system, io.berth.after: 'a,udev'}}\n",
        );
        let graph = ServiceGraph::new(&s);
        assert_eq!(graph.unknown, [("b".to_string(), "udev".to_string())]);
        let cycle = graph.start_order().unwrap_err();
        assert_eq!(cycle.0, ["a", "b", "a"]);
        assert!(cycle.to_string().contains("a -> b -> a"));
    }
}
