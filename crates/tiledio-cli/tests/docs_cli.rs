//! `tiledio completions SHELL` and `tiledio man`: generated from the parser's own definitions,
//! so they name every subcommand; bash accepts the bash script; `man --out` writes a page per
//! subcommand.

mod common;

use common::{ok, one_line_failure, run, s, stderr, stdout};
use std::process::{Command, Output};

/// Asserts that the run succeeded and returns its stdout, which must be UTF-8.
fn stdout_ok(o: &Output) -> String {
    ok(o);
    String::from_utf8(o.stdout.clone()).expect("UTF-8 output")
}

const SUBCOMMANDS: [&str; 13] = [
    "demo",
    "info",
    "read",
    "convert",
    "sobel",
    "hed",
    "normalize",
    "ptycho",
    "bench",
    "backends",
    "completions",
    "man",
    "preprocess",
];

#[test]
fn completions_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let text = stdout_ok(&run(&["completions", shell]));
        assert!(text.len() > 1000, "{shell}: {} bytes", text.len());
        for sub in SUBCOMMANDS {
            assert!(text.contains(sub), "{shell}: no {sub}");
        }
        // options of nested subcommands too
        assert!(text.contains("raw-shape") && text.contains("codec"), "{shell}");
    }
    let o = run(&["completions", "tcsh"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("bash"), "{o:?}");
}

#[test]
fn bash_accepts_the_bash_completion() {
    let d = tempfile::tempdir().unwrap();
    let script = d.path().join("tiledio.bash");
    std::fs::write(&script, stdout_ok(&run(&["completions", "bash"]))).unwrap();
    let o = Command::new("bash").arg("-n").arg(&script).output().expect("bash");
    assert!(o.status.success(), "bash -n: {}", stderr(&o));
    // and it completes: the first word's candidates include the subcommands
    let probe = format!(
        "source {}; COMP_WORDS=(tiledio ''); COMP_CWORD=1; _tiledio tiledio '' tiledio; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let o = Command::new("bash").arg("-c").arg(&probe).output().expect("bash");
    let words = stdout(&o);
    for sub in ["demo", "info", "convert", "completions", "man"] {
        assert!(words.lines().any(|w| w == sub), "no {sub} in {words}");
    }
}

#[test]
fn man_prints_roff_and_writes_a_page_per_subcommand() {
    let text = stdout_ok(&run(&["man"]));
    assert!(
        text.starts_with(".ie \\n(.g .ds Aq") || text.contains(".TH tiledio 1"),
        "{text}"
    );
    assert!(text.contains(".TH tiledio 1"), "{text}");
    for sub in SUBCOMMANDS.iter().filter(|s| **s != "preprocess") {
        assert!(text.contains(sub), "no {sub} in the page");
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("man1");
    stdout_ok(&run(&["man", "--out", &s(&dir)]));
    for page in [
        "tiledio.1",
        "tiledio-demo.1",
        "tiledio-info.1",
        "tiledio-bench-read.1",
        "tiledio-ptycho-preprocess.1",
        "tiledio-completions.1",
        "tiledio-man.1",
    ] {
        let roff = std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(roff.contains(".TH "), "{page}");
    }
    let read = std::fs::read_to_string(dir.join("tiledio-bench-read.1")).unwrap();
    assert!(read.contains("\\-\\-backends"), "{read}");
    // nothing but the pages (no temporaries left)
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| n.ends_with(".1") && n.starts_with("tiledio")),
        "{names:?}"
    );
    // a file where the folder should be is one error line
    let file = d.path().join("plain");
    std::fs::write(&file, b"x").unwrap();
    one_line_failure(&run(&["man", "--out", &s(&file)]), "man --out FILE");
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}
