//! `crow config`: the documented defaults, and checking a configuration file.

use std::path::PathBuf;

use clap::Subcommand;
use crow::Config;

#[derive(Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print every setting with its default, its meaning and its environment variable (TOML).
    Default,
    /// Check a TOML file: every unknown key and bad value, with its line. Exits 1 if any.
    Check {
        /// The file to check.
        file: PathBuf,
    },
}

pub(crate) fn config_check(file: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let problems = Config::check(&text);
    if problems.is_empty() {
        println!("{}: ok", file.display());
        return Ok(());
    }
    for p in &problems {
        eprintln!("{}: {p}", file.display());
    }
    eprintln!("{} problem(s) in {}", problems.len(), file.display());
    Err(crate::Reported.into())
}
