//! Reads Prometheus's PromQL test suite from `$PROMQL_TESTDATA` (default
//! `../shared/promql-testdata` beside the checkout) and checks that every file
//! parses into commands, with every `eval` accounted for. The conformance runner
//! that evaluates the cases builds on this once the engine lands.

use std::path::PathBuf;

use sextant_query::promqltest::{Command, parse_test_file};

fn testdata_dir() -> PathBuf {
    std::env::var_os("PROMQL_TESTDATA").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/promql-testdata"),
        PathBuf::from,
    )
}

#[test]
fn every_promql_test_file_parses_completely() {
    let dir = testdata_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {} (set PROMQL_TESTDATA): {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .test files in {}", dir.display());
    let mut report = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let commands = parse_test_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let evals: Vec<_> = commands
            .iter()
            .filter_map(|c| match c {
                Command::Eval(case) => Some(case),
                _ => None,
            })
            .collect();
        let written = text.lines().filter(|l| l.starts_with("eval")).count();
        assert_eq!(evals.len(), written, "{}: an eval was lost", file.display());
        let loads = commands
            .iter()
            .filter(|c| matches!(c, Command::Load { .. }))
            .count();
        let skipped = evals.iter().filter(|c| c.unsupported().is_some()).count();
        report.push(format!(
            "{}: {} evals ({skipped} expect native histograms), {loads} loads",
            file.file_name().unwrap().to_string_lossy(),
            evals.len()
        ));
    }
    // Shown with --nocapture: the suite's size per file.
    let mut out = std::io::stderr().lock();
    for line in report {
        let _ = std::io::Write::write_all(&mut out, format!("{line}\n").as_bytes());
    }
}
