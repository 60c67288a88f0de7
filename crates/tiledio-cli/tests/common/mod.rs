//! What the CLI's integration tests share: running the `tiledio` binary, paths as arguments,
//! the checks on a run's exit and output (success, one JSON document, one error line), the
//! testdata fixtures, and folder listings.
//!
//! Each test file is its own crate and uses only some of these, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// The `tiledio` binary built for these tests, not yet run.
pub(crate) fn tiledio() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tiledio"))
}

/// Runs `tiledio ARGS` to the end and returns its output.
pub(crate) fn run(args: &[&str]) -> Output {
    tiledio().args(args).output().expect("run tiledio")
}

/// Runs `tiledio ARGS` to the end with the environment variable `key` set to `value`.
pub(crate) fn run_with_env(args: &[&str], key: &str, value: &str) -> Output {
    tiledio().args(args).env(key, value).output().expect("run tiledio")
}

/// Runs `tiledio ARGS` given as owned strings.
pub(crate) fn run_owned(args: &[String]) -> Output {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&a)
}

/// `p` as a command-line argument.
pub(crate) fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A file of `testdata/SUB` as a command-line argument.
pub(crate) fn testdata(sub: &str, name: &str) -> String {
    s(&Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(sub)
        .join(name))
}

/// What a run printed on stdout.
pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What a run printed on stderr.
pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts that the run succeeded (showing both streams if not) and returns its stdout.
pub(crate) fn ok(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}\n{}", stdout(o), stderr(o));
    stdout(o)
}

/// Asserts that the run succeeded and printed one JSON document, and returns it.
pub(crate) fn json(o: &Output) -> serde_json::Value {
    let text = ok(o);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{text}"))
}

/// Asserts that the run succeeded without a word on stderr, and returns its stdout.
pub(crate) fn ok_quiet(o: &Output) -> String {
    let text = ok(o);
    assert!(o.stderr.is_empty(), "{}", stderr(o));
    text
}

/// The one error line of a failed run, among its stderr lines for which `counts` is true:
/// fails unless the run failed and exactly one such line, starting `tiledio: error: `, was
/// printed.
pub(crate) fn one_error_line_of(o: &Output, counts: impl Fn(&str) -> bool) -> String {
    assert!(!o.status.success(), "expected failure, got success: {o:?}");
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().filter(|l| counts(l)).collect();
    assert_eq!(lines.len(), 1, "error not on one line:\n{err}");
    assert!(lines[0].starts_with("tiledio: error: "), "{err}");
    lines[0].to_string()
}

/// The one line a failed run printed on stderr (see [`one_error_line_of`]).
pub(crate) fn one_error_line(o: &Output) -> String {
    one_error_line_of(o, |_| true)
}

/// Asserts that the run failed and printed exactly one line on stderr (of any form), and
/// returns stderr; `what` names the run in the messages.
pub(crate) fn one_line_failure(o: &Output, what: impl std::fmt::Debug) -> String {
    assert!(!o.status.success(), "{what:?}: expected failure, got success: {o:?}");
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "{what:?}: {err}");
    err
}

/// Names in `dir`, sorted (hidden temporaries included).
pub(crate) fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Asserts that `dir` holds none of tiledio's temporaries (`.tiledio-…`); `when` says at
/// which point of the test, in the message.
pub(crate) fn assert_no_temporaries(dir: &Path, when: impl std::fmt::Display) {
    let left: Vec<String> = names(dir).into_iter().filter(|n| n.contains(".tiledio-")).collect();
    assert!(left.is_empty(), "{when}: temporaries left {left:?}");
}
