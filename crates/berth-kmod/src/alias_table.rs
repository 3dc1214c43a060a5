//! A table of alias patterns mapping to module names, matched as libkmod does: exact
//! aliases by hash lookup, wildcard aliases by `fnmatch`. Matches come in file order:
//! libkmod sorts them by the module's position in modules.order, and depmod writes
//! modules.alias module by module in that order.

use std::collections::HashMap;

use crate::fnmatch::{Glob, has_wildcards};
use crate::index_files::AliasLine;

#[derive(Debug, Clone)]
struct GlobAlias {
    glob: Glob,
    order: usize,
    module: String,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct AliasTable {
    /// Exact alias → (file order, module).
    exact: HashMap<String, Vec<(usize, String)>>,
    globs: Vec<GlobAlias>,
}

impl AliasTable {
    pub(crate) fn new(lines: impl IntoIterator<Item = AliasLine>) -> Self {
        let mut table = Self::default();
        for (order, line) in lines.into_iter().enumerate() {
            if has_wildcards(&line.pattern) {
                table.globs.push(GlobAlias {
                    glob: Glob::new(&line.pattern),
                    order,
                    module: line.module,
                });
            } else {
                table
                    .exact
                    .entry(line.pattern)
                    .or_default()
                    .push((order, line.module));
            }
        }
        table
    }

    /// The modules whose aliases match the normalised `alias`, without duplicates.
    pub(crate) fn lookup(&self, alias: &str) -> Vec<String> {
        let mut hits: Vec<(usize, &str)> = self
            .exact
            .get(alias)
            .map(|modules| modules.iter().map(|(order, m)| (*order, m.as_str())).collect())
            .unwrap_or_default();
        hits.extend(
            self.globs
                .iter()
                .filter(|g| g.glob.matches(alias))
                .map(|g| (g.order, g.module.as_str())),
        );
        hits.sort_unstable();
        let mut found: Vec<String> = Vec::with_capacity(hits.len());
        for (_, module) in hits {
            if !found.iter().any(|m| m == module) {
                found.push(module.to_owned());
            }
        }
        found
    }

    pub(crate) fn len(&self) -> usize {
        self.exact.values().map(Vec::len).sum::<usize>() + self.globs.len()
    }
}
