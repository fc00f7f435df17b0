//! Authentication for benchmarks, as a server runs it.

use anyhow::Result;

/// Authentication as a server runs it: HS256 with a fresh random secret, and a client token for `org`, so
/// that benchmarks measure the authenticated path.
pub(crate) fn bench_auth(
    org: &str,
) -> Result<(crow::auth::Authenticator, crow::client::Credentials)> {
    let config = crow::auth::AuthConfig {
        secret: Some(format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        )),
        ..Default::default()
    };
    let token = crow::auth::mint_hs256(&config, "bench", &[org.to_owned()], "admin", 3_600)?;
    Ok((
        crow::auth::Authenticator::new(&config)?,
        crow::client::Credentials::new(Some(&token), None),
    ))
}
