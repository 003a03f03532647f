//! Generates shipote's man pages and shell completions from the CLI definitions.
//!
//! `shipote-gen OUT_DIR` writes:
//! - `man/shipote.1`, `man/shipoted.8`
//! - `completions/shipote.bash`, `completions/_shipote`, `completions/shipote.fish`

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;
use std::path::{Path, PathBuf};

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: shipote-gen OUT_DIR")?,
    );
    let man = out.join("man");
    let completions = out.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;

    write_man(shipote::client::Cli::command(), "1", &man.join("shipote.1"))?;
    write_man(
        shipote::daemon::args::DaemonArgs::command(),
        "8",
        &man.join("shipoted.8"),
    )?;

    for (shell, file) in [
        (Shell::Bash, "shipote.bash"),
        (Shell::Zsh, "_shipote"),
        (Shell::Fish, "shipote.fish"),
    ] {
        let mut cmd = shipote::client::Cli::command();
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, "shipote", &mut buf);
        std::fs::write(completions.join(file), buf)?;
    }
    Ok(())
}

fn write_man(cmd: clap::Command, section: &str, path: &Path) -> anyhow::Result<()> {
    let cmd = cmd.version(shipote::VERSION);
    let man = clap_mangen::Man::new(cmd)
        .section(section)
        .source(format!("shipote {}", shipote::VERSION))
        .manual("shipote manual");
    let mut buf = Vec::new();
    man.render(&mut buf)?;
    std::fs::write(path, buf).with_context(|| format!("write {}", path.display()))?;
    Ok(())
}
