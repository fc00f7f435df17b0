//! `crow token`: an HS256 token minted with the configured secret.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use crow::Config;

#[derive(Args)]
pub(crate) struct TokenArgs {
    /// Organization the token grants (repeatable).
    #[arg(long = "org", required = true)]
    orgs: Vec<String>,
    /// admin, analyst, camera or viewer.
    #[arg(long, default_value = "admin")]
    role: String,
    /// Lifetime, e.g. 30m, 1h, 7d.
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    ttl: u64,
    /// Subject.
    #[arg(long, default_value = "crow-cli")]
    sub: String,
    /// TOML configuration file (its [auth] issuer, audience and secret).
    #[arg(long)]
    config: Option<PathBuf>,
}

pub(crate) fn parse_ttl(s: &str) -> Result<u64, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("bad duration {s:?}; e.g. 30m, 1h, 7d"))?;
    let scale = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("bad duration unit in {s:?}; use s, m, h or d")),
    };
    Ok(n * scale)
}

pub(crate) fn token(args: TokenArgs) -> Result<()> {
    let config = Config::load(args.config.as_deref())?;
    let token = crow::auth::mint_hs256(&config.auth, &args.sub, &args.orgs, &args.role, args.ttl)?;
    println!("{token}");
    Ok(())
}
