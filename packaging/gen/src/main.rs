//! Generates shipote's man pages and shell completions from the CLI definitions.
//!
//! `shipote-gen OUT_DIR` writes:
//! - `man/shipote.1` and a page per subcommand (`man/shipote-ws-create.1`,
//!   named as git names its pages), `man/shipoted.8`
//! - `completions/shipote.bash`, `completions/_shipote`, `completions/shipote.fish`:
//!   scripts that call `shipote` back at each Tab (`SHIPOTE_COMPLETE=<shell>`),
//!   so workspace, command and pipeline names come from the running daemon

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::env::{Bash, EnvCompleter, Fish, Zsh};
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

    write_man_tree(shipote::client::Cli::command(), "1", &man)?;
    write_man_tree(shipote::daemon::args::DaemonArgs::command(), "8", &man)?;

    let env = shipote::client::complete::ENV;
    for (shell, file) in [
        (&Bash as &dyn EnvCompleter, "shipote.bash"),
        (&Zsh, "_shipote"),
        (&Fish, "shipote.fish"),
    ] {
        let mut buf = Vec::new();
        shell.write_registration(env, "shipote", "shipote", "shipote", &mut buf)?;
        if file == "_shipote" {
            // Autoloaded by compinit as the body of `_shipote`: the first
            // Tab defines the completer, and must also complete.
            buf.extend_from_slice(
                b"[[ ${funcstack[1]} == _shipote ]] && _clap_dynamic_completer_shipote \"$@\"\n",
            );
        }
        std::fs::write(completions.join(file), buf)?;
    }
    Ok(())
}

/// The page of `cmd` and of each of its subcommands, recursively: built
/// first, so each subcommand carries its full name (`shipote-ws-create`),
/// which its parent's page refers to (`shipote-ws-create(1)`).
fn write_man_tree(cmd: clap::Command, section: &str, dir: &Path) -> anyhow::Result<()> {
    let mut cmd = cmd.version(shipote::VERSION).disable_help_subcommand(true);
    cmd.build();
    write_pages(&cmd, section, dir)
}

fn write_pages(cmd: &clap::Command, section: &str, dir: &Path) -> anyhow::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, section, dir)?;
    }
    let man = clap_mangen::Man::new(cmd.clone())
        .section(section)
        .source(format!("shipote {}", shipote::VERSION))
        .manual("shipote manual");
    let path = dir.join(man.get_filename());
    let mut buf = Vec::new();
    man.render(&mut buf)?;
    std::fs::write(&path, buf).with_context(|| format!("write {}", path.display()))?;
    Ok(())
}
