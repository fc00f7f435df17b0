//! Authentication: every call carries a JWT (`authorization: Bearer ...`), verified by an interceptor in
//! front of every service; handlers then check that the organization a request names is one the token
//! grants ([`Caller::check_org`]). Internal routes may additionally require the gateway key
//! (`x-internal-gateway-key`), compared in constant time.
//!
//! The algorithm is pinned by configuration: a token signed with any other algorithm (including `none`,
//! which the JWT library does not even parse) is refused, so an RS256 public key can never be used as an
//! HS256 secret.

use std::path::PathBuf;
use std::sync::Arc;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Header of the internal gateway key.
pub const GATEWAY_KEY_HEADER: &str = "x-internal-gateway-key";

/// Roles a token may carry; [`Action::roles`] says what each may do.
pub const ROLES: [&str; 4] = ["admin", "analyst", "camera", "viewer"];

/// What a call does, for the role check ([`Caller::authorize`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send data in: create and close sessions, stream frames, `CreateInteraction`.
    Ingest,
    /// Read records, sessions, summaries, the catalog and analyses; watch pattern events.
    Read,
    /// Run an AI analysis (`Analyze`).
    Analyze,
    /// Change the catalog; list and replay dead letters.
    Administer,
}

impl Action {
    /// The roles allowed to perform it: least privilege, so a camera's token cannot read customer
    /// data and a viewer's cannot start model work or change anything.
    pub fn roles(self) -> &'static [&'static str] {
        match self {
            Action::Ingest => &["admin", "camera"],
            Action::Read => &["admin", "analyst", "viewer"],
            Action::Analyze => &["admin", "analyst"],
            Action::Administer => &["admin"],
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Action::Ingest => "send frames or events",
            Action::Read => "read records",
            Action::Analyze => "run analyses",
            Action::Administer => "change the catalog or dead letters",
        }
    }
}

/// How calls are authenticated (`[auth]` in the configuration).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The only algorithm accepted: "HS256", "RS256" or "ES256".
    pub algorithm: String,
    /// HS256 secret (also from `CROW_JWT_SECRET`). At least 32 bytes.
    pub secret: Option<String>,
    /// RS256/ES256 public key: a PEM file, or a JWKS file (keys chosen by the token's `kid`).
    pub public_key: Option<PathBuf>,
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Required `aud`, if set.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, seconds.
    pub leeway_s: u64,
    /// Internal gateway key (also from `CROW_GATEWAY_KEY`); no default.
    pub gateway_key: Option<String>,
    /// Require the gateway key on `IngestService` (cameras come through the on-prem gateway).
    pub ingest_requires_gateway_key: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            algorithm: "HS256".into(),
            secret: None,
            public_key: None,
            issuer: Some("crow".into()),
            audience: Some("crow".into()),
            leeway_s: 30,
            gateway_key: None,
            ingest_requires_gateway_key: false,
        }
    }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach a log line.
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("AuthConfig")
            .field("algorithm", &self.algorithm)
            .field("secret", &redacted(&self.secret))
            .field("public_key", &self.public_key)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_s", &self.leeway_s)
            .field("gateway_key", &redacted(&self.gateway_key))
            .field(
                "ingest_requires_gateway_key",
                &self.ingest_requires_gateway_key,
            )
            .finish()
    }
}

/// A configuration that cannot authenticate anything.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Missing or unusable key material.
    #[error("auth: {0}")]
    Config(String),
}

/// What a token says about its bearer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject (user or device id).
    pub sub: String,
    /// Organizations the bearer may act for.
    pub orgs: Vec<String>,
    /// One of [`ROLES`].
    pub role: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Not before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// The authenticated caller of a request (in the request's extensions).
#[derive(Debug, Clone)]
pub struct Caller {
    /// Token subject ("dev" when authentication is disabled).
    pub subject: String,
    /// Role from the token.
    pub role: String,
    orgs: Vec<String>,
    /// Authentication is disabled (`--dev`): every organization is allowed.
    unrestricted: bool,
}

impl Caller {
    /// Allows `action` on `organization_id` only if the token's role permits the action
    /// ([`Action::roles`]) and the token grants the organization ([`Caller::check_org`]).
    pub fn authorize(&self, action: Action, organization_id: &str) -> Result<(), Status> {
        if !self.unrestricted && !action.roles().contains(&self.role.as_str()) {
            return Err(Status::permission_denied(format!(
                "role {} may not {}",
                self.role,
                action.describe()
            )));
        }
        self.check_org(organization_id)
    }

    /// Allows the request only if the token grants `organization_id`. The answer is the same whether or
    /// not the organization (or the resource the request names) exists.
    pub fn check_org(&self, organization_id: &str) -> Result<(), Status> {
        if self.unrestricted || self.orgs.iter().any(|o| o == organization_id) {
            Ok(())
        } else {
            Err(Status::permission_denied(
                "the token does not grant access to this organization",
            ))
        }
    }
}

/// The caller of `request`, put there by the [`Authenticator`]'s interceptor.
pub fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("missing credentials"))
}

/// Checks `organization_id` against the caller of `request`.
pub fn check_org<T>(request: &Request<T>, organization_id: &str) -> Result<(), Status> {
    caller(request)?.check_org(organization_id)
}

enum Keys {
    One(DecodingKey),
    /// A JWKS: the token's `kid` picks the key.
    Set(Vec<(Option<String>, DecodingKey)>),
}

struct Inner {
    /// `None`: authentication disabled (development only).
    keys: Option<Keys>,
    validation: Validation,
    gateway_key: Option<Vec<u8>>,
    ingest_internal: bool,
}

/// Verifies tokens and gateway keys. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

fn parse_algorithm(name: &str) -> Result<Algorithm, AuthError> {
    match name {
        "HS256" => Ok(Algorithm::HS256),
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        other => Err(AuthError::Config(format!(
            "algorithm {other:?} is not supported; use HS256, RS256 or ES256"
        ))),
    }
}

impl Authenticator {
    /// An authenticator for `config`. Fails when the key material for the pinned algorithm is missing or
    /// unusable (a short HS256 secret included).
    pub fn new(config: &AuthConfig) -> Result<Authenticator, AuthError> {
        let algorithm = parse_algorithm(&config.algorithm)?;
        let keys = match algorithm {
            Algorithm::HS256 => {
                let secret = config.secret.as_deref().ok_or_else(|| {
                    AuthError::Config(
                        "no HS256 secret: set CROW_JWT_SECRET (or [auth] secret), or run with --dev"
                            .into(),
                    )
                })?;
                if secret.len() < 32 {
                    return Err(AuthError::Config(
                        "the HS256 secret must be at least 32 bytes".into(),
                    ));
                }
                Keys::One(DecodingKey::from_secret(secret.as_bytes()))
            }
            _ => {
                let path = config.public_key.as_ref().ok_or_else(|| {
                    AuthError::Config(format!(
                        "{} needs [auth] public_key (a PEM or JWKS file)",
                        config.algorithm
                    ))
                })?;
                let bytes = std::fs::read(path)
                    .map_err(|e| AuthError::Config(format!("reading {}: {e}", path.display())))?;
                Self::public_keys(algorithm, &bytes)?
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = config.leeway_s;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        match &config.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &config.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        Ok(Authenticator {
            inner: Arc::new(Inner {
                keys: Some(keys),
                validation,
                gateway_key: config.gateway_key.as_ref().map(|k| k.as_bytes().to_vec()),
                ingest_internal: config.ingest_requires_gateway_key,
            }),
        })
    }

    fn public_keys(algorithm: Algorithm, bytes: &[u8]) -> Result<Keys, AuthError> {
        let text = String::from_utf8_lossy(bytes);
        if text.trim_start().starts_with('{') {
            let set: JwkSet = serde_json::from_slice(bytes)
                .map_err(|_| AuthError::Config("the public key file is not a valid JWKS".into()))?;
            let keys = set
                .keys
                .iter()
                .filter_map(|k| {
                    DecodingKey::from_jwk(k)
                        .ok()
                        .map(|d| (k.common.key_id.clone(), d))
                })
                .collect::<Vec<_>>();
            if keys.is_empty() {
                return Err(AuthError::Config("the JWKS holds no usable key".into()));
            }
            return Ok(Keys::Set(keys));
        }
        let key = match algorithm {
            Algorithm::RS256 => DecodingKey::from_rsa_pem(bytes),
            _ => DecodingKey::from_ec_pem(bytes),
        }
        .map_err(|e| AuthError::Config(format!("the public key PEM is unusable: {e}")))?;
        Ok(Keys::One(key))
    }

    /// No authentication: every call is allowed for every organization. For local trials only
    /// (`crow serve --dev`) and tests that are not about authentication.
    pub fn disabled() -> Authenticator {
        Authenticator {
            inner: Arc::new(Inner {
                keys: None,
                validation: Validation::default(),
                gateway_key: None,
                ingest_internal: false,
            }),
        }
    }

    /// Whether `IngestService` is an internal route (needs the gateway key).
    pub fn ingest_is_internal(&self) -> bool {
        self.inner.ingest_internal
    }

    /// Whether calls are authenticated.
    pub fn is_enabled(&self) -> bool {
        self.inner.keys.is_some()
    }

    /// Verifies the bearer token in `metadata`.
    pub fn authenticate(&self, metadata: &MetadataMap) -> Result<Caller, Status> {
        let Some(keys) = &self.inner.keys else {
            return Ok(Caller {
                subject: "dev".into(),
                role: "admin".into(),
                orgs: Vec::new(),
                unrestricted: true,
            });
        };
        let token = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("missing bearer token"))?;
        let invalid = || Status::unauthenticated("invalid token");
        let key = match keys {
            Keys::One(k) => k,
            Keys::Set(set) => {
                let kid = jsonwebtoken::decode_header(token)
                    .map_err(|_| invalid())?
                    .kid;
                &set.iter()
                    .find(|(id, _)| kid.is_some() && *id == kid)
                    .or(set.first().filter(|_| set.len() == 1))
                    .ok_or_else(invalid)?
                    .1
            }
        };
        let data =
            jsonwebtoken::decode::<Claims>(token, key, &self.inner.validation).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::ExpiredSignature => Status::unauthenticated("token expired"),
                    ErrorKind::ImmatureSignature => Status::unauthenticated("token not yet valid"),
                    _ => invalid(),
                }
            })?;
        let claims = data.claims;
        if claims.orgs.is_empty() || !ROLES.contains(&claims.role.as_str()) {
            return Err(invalid());
        }
        Ok(Caller {
            subject: claims.sub,
            role: claims.role,
            orgs: claims.orgs,
            unrestricted: false,
        })
    }

    /// Checks the internal gateway key in `metadata` (constant-time comparison). With no key configured,
    /// internal routes are refused rather than left open.
    pub fn check_gateway_key(&self, metadata: &MetadataMap) -> Result<(), Status> {
        if self.inner.keys.is_none() {
            return Ok(());
        }
        let Some(expected) = &self.inner.gateway_key else {
            return Err(Status::permission_denied(
                "this route needs the internal gateway key, and none is configured",
            ));
        };
        let given = metadata
            .get(GATEWAY_KEY_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if bool::from(given.ct_eq(expected.as_slice())) {
            Ok(())
        } else {
            Err(Status::permission_denied("invalid internal gateway key"))
        }
    }

    /// The interceptor for a service; `internal` services also need the gateway key.
    pub fn interceptor(&self, internal: bool) -> AuthInterceptor {
        AuthInterceptor {
            auth: self.clone(),
            internal,
        }
    }
}

/// Verifies each call's token and puts the [`Caller`] into the request's extensions.
#[derive(Clone)]
pub struct AuthInterceptor {
    auth: Authenticator,
    internal: bool,
}

impl Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let caller = self.auth.authenticate(request.metadata())?;
        if self.internal {
            self.auth.check_gateway_key(request.metadata())?;
        }
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// Mints an HS256 token (for `crow token` and tests).
pub fn mint_hs256(
    config: &AuthConfig,
    subject: &str,
    orgs: &[String],
    role: &str,
    ttl_s: u64,
) -> Result<String, AuthError> {
    let secret = config
        .secret
        .as_deref()
        .ok_or_else(|| AuthError::Config("no HS256 secret: set CROW_JWT_SECRET".into()))?;
    if !ROLES.contains(&role) {
        return Err(AuthError::Config(format!(
            "role must be one of {}",
            ROLES.join(", ")
        )));
    }
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        sub: subject.to_owned(),
        orgs: orgs.to_vec(),
        role: role.to_owned(),
        exp: now + ttl_s,
        nbf: Some(now),
        iat: Some(now),
        iss: config.issuer.clone(),
        aud: config.audience.clone(),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| AuthError::Config(format!("signing: {e}")))
}
