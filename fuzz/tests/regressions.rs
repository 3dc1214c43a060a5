//! Every input a fuzz run ever kept, replayed: a crash found is a failing test until fixed.
//! Also replays the seed corpus, so the real samples stay accepted by every target.

use berth_fuzz::{corpus_dir, inputs_in, regressions_dir, run_one, targets};

#[test]
fn every_kept_input_passes_its_target() {
    let mut failures = Vec::new();
    let mut count = 0;
    for target in targets() {
        for dir in [regressions_dir(target.name), corpus_dir(target.name)] {
            for (path, input) in inputs_in(&dir) {
                count += 1;
                if let Err(finding) = run_one(&target, &input) {
                    failures.push(format!("{}: {}: {finding}", target.name, path.display()));
                }
            }
        }
    }
    assert!(count > 0, "no corpus or regression inputs found");
    assert!(
        failures.is_empty(),
        "{} input(s) fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_regression_directory_names_a_target() {
    let root = berth_fuzz::crate_dir().join("tests/fuzz-regressions");
    let names: Vec<&str> = targets().iter().map(|t| t.name).collect();
    for entry in std::fs::read_dir(&root).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".md") {
            continue;
        }
        assert!(
            names.contains(&name.as_str()),
            "{name} in {} is not a target",
            root.display()
        );
    }
}
