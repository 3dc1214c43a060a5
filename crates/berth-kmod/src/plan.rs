//! [`LoadPlan`]: which module files to insert, in which order, with which parameters, to
//! load one module. Pure: computed from the index alone, executed by
//! [`crate::modprobe`].

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

use crate::KmodError;
use crate::index::ModuleIndex;
use crate::name::normalize_name;

/// Why a module is in a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepRole {
    /// Needed by the target (modules.dep): its failure fails the plan.
    Dependency,
    /// A soft dependency loaded before the module naming it (`softdep … pre:`), or something
    /// such a module needs. Best effort.
    SoftdepPre,
    /// The module asked for.
    Target,
    /// A soft dependency loaded after the module naming it (`softdep … post:`), or something
    /// such a module needs. Best effort.
    SoftdepPost,
}

/// Insert one module file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadStep {
    /// The module's name (normalised).
    pub module: String,
    /// Its file.
    pub path: PathBuf,
    /// Parameters for `finit_module` (from modprobe.d, and the command line for the target).
    pub params: String,
    /// Why it is in the plan.
    pub role: StepRole,
}

impl LoadStep {
    /// Whether a failure to insert this step may be logged and skipped.
    pub fn is_optional(&self) -> bool {
        matches!(self.role, StepRole::SoftdepPre | StepRole::SoftdepPost)
    }
}

/// The ordered steps that load one module: dependencies first (deepest first), then the
/// `pre:` softdeps of the module that names them, the module, its `post:` softdeps; the
/// same recursively for each dependency. Built-in modules
/// never appear; a built-in target gives an empty plan with `builtin` set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadPlan {
    /// The module asked for (normalised).
    pub module: String,
    /// Whether it is built into the kernel (then there is nothing to do).
    pub builtin: bool,
    /// What to insert, in order.
    pub steps: Vec<LoadStep>,
}

impl LoadPlan {
    /// Append `params` (from the command line) to the target's parameters, after those from
    /// modprobe.d so that they win.
    pub fn add_target_params(&mut self, params: &str) {
        let params = params.trim();
        if params.is_empty() {
            return;
        }
        for step in self.steps.iter_mut().filter(|s| s.role == StepRole::Target) {
            if !step.params.is_empty() {
                step.params.push(' ');
            }
            step.params.push_str(params);
        }
    }

    /// The module names of the steps, in order.
    pub fn module_names(&self) -> Vec<&str> {
        self.steps.iter().map(|s| s.module.as_str()).collect()
    }
}

/// As `modprobe --show-depends` prints it: `insmod PATH PARAMS` per step, or
/// `builtin NAME`.
impl fmt::Display for LoadPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.builtin {
            return writeln!(f, "builtin {}", self.module);
        }
        for step in &self.steps {
            writeln!(f, "insmod {} {}", step.path.display(), step.params)?;
        }
        Ok(())
    }
}

/// Deeper than this, a chain of dependencies is surely a loop in a broken modules.dep.
const MAX_DEPTH: usize = 64;

struct Planner<'a> {
    index: &'a ModuleIndex,
    target: String,
    /// The target and everything modules.dep says it needs: never optional.
    hard: HashSet<String>,
    in_progress: HashSet<String>,
    done: HashSet<String>,
    steps: Vec<LoadStep>,
}

impl Planner<'_> {
    fn visit(&mut self, name: &str, soft_role: Option<StepRole>, depth: usize) {
        if self.done.contains(name) || self.in_progress.contains(name) {
            return;
        }
        let index = self.index;
        if index.is_builtin(name) {
            return;
        }
        let Some(module) = index.modules.get(name) else {
            tracing::warn!(module = name, "not in modules.dep; skipped");
            return;
        };
        if depth > MAX_DEPTH {
            tracing::warn!(module = name, "dependency chain too deep; skipped");
            return;
        }
        self.in_progress.insert(name.to_owned());
        // modules.dep lists the deepest dependency last: walk it backwards so that each
        // module comes after what it needs even before recursion confirms it.
        for dep in module.deps.iter().rev() {
            self.visit(dep, soft_role, depth + 1);
        }
        // Then `pre:` softdeps, right before the module, where libkmod puts them.
        let softdeps = index.softdeps(name).cloned().unwrap_or_default();
        for pre in &softdeps.pre {
            for m in index.resolve(pre) {
                self.visit(&m, Some(StepRole::SoftdepPre), depth + 1);
            }
        }
        let role = if name == self.target {
            StepRole::Target
        } else if self.hard.contains(name) {
            StepRole::Dependency
        } else {
            soft_role.unwrap_or(StepRole::Dependency)
        };
        self.steps.push(LoadStep {
            module: name.to_owned(),
            path: module.path.clone(),
            params: index.config.options(name),
            role,
        });
        self.in_progress.remove(name);
        self.done.insert(name.to_owned());
        for post in &softdeps.post {
            for m in index.resolve(post) {
                self.visit(&m, Some(StepRole::SoftdepPost), depth + 1);
            }
        }
    }
}

impl ModuleIndex {
    /// The plan to load module `name` (a module name, not an alias: see
    /// [`ModuleIndex::resolve`]). Already-loaded modules are not known here; the executor
    /// skips them.
    pub fn load_plan(&self, name: &str) -> Result<LoadPlan, KmodError> {
        let target = normalize_name(name.trim());
        if self.is_builtin(&target) {
            return Ok(LoadPlan {
                module: target,
                builtin: true,
                steps: Vec::new(),
            });
        }
        let Some(module) = self.modules.get(&target) else {
            return Err(self.not_found(name));
        };
        let mut hard: HashSet<String> = module.deps.iter().cloned().collect();
        hard.insert(target.clone());
        let mut planner = Planner {
            index: self,
            target: target.clone(),
            hard,
            in_progress: HashSet::new(),
            done: HashSet::new(),
            steps: Vec::new(),
        };
        planner.visit(&target, None, 0);
        Ok(LoadPlan {
            module: target,
            builtin: false,
            steps: planner.steps,
        })
    }
}
