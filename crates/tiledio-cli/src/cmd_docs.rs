//! `tiledio completions SHELL` and `tiledio man [--out DIR]`: shell completion scripts and
//! manual pages generated from the same clap definitions as the parser itself.

use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Prints the completion script of `shell` for `cmd` to stdout.
pub(crate) fn completions(shell: clap_complete::Shell, mut cmd: clap::Command) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "tiledio", &mut out);
    std::io::stdout().lock().write_all(&out)?;
    Ok(())
}

/// The manual pages of `cmd` and of each of its subcommands (depth first, hidden ones left
/// out): `(file name, roff)`, e.g. `("tiledio-bench-read.1", ...)`.
pub(crate) fn man_pages(cmd: clap::Command) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    fn walk(cmd: clap::Command, pages: &mut Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            walk(sub, pages)?;
        }
        let man = clap_mangen::Man::new(cmd);
        let mut roff = Vec::new();
        man.render(&mut roff)?;
        pages.push((man.get_filename(), roff));
        Ok(())
    }
    let mut cmd = cmd.disable_help_subcommand(true);
    // gives each subcommand its full name ("tiledio-bench-read")
    cmd.build();
    let mut pages = Vec::new();
    walk(cmd, &mut pages)?;
    Ok(pages)
}

/// `tiledio man`: the main page on stdout, or every page written into `out` (created if
/// missing), each file under a temporary name renamed into place.
pub(crate) fn man(cmd: clap::Command, out: Option<&Path>, quiet: bool) -> anyhow::Result<()> {
    let pages = man_pages(cmd)?;
    let Some(dir) = out else {
        let main = pages
            .iter()
            .find(|(name, _)| name == "tiledio.1")
            .context("no page for tiledio itself")?;
        std::io::stdout().lock().write_all(&main.1)?;
        return Ok(());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the folder", dir.display()))?;
    let mut written: Vec<PathBuf> = Vec::new();
    for (name, roff) in &pages {
        let path = dir.join(name);
        let w = tiledio::io::FileWriter::create(&path)?;
        w.write_at(0, roff.as_slice())?;
        w.finish(false)?;
        written.push(path);
    }
    if !quiet {
        println!(
            "wrote {} manual pages into {} (man {}/tiledio.1)",
            written.len(),
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}
