//! Who is calling: JWT access tokens, their keys, and the caller they prove.
//!
//! Identity issues tokens ([`TokenIssuer`]); every subgraph verifies them ([`TokenVerifier`])
//! and hands resolvers an [`Authentication`]. The default key is an Ed25519 key pair so that
//! verifiers need only the public half, which identity publishes as JWKS. Only the configured
//! algorithm is accepted: a token with `alg: none`, another algorithm, another key, another
//! issuer or audience, or a past expiry is rejected.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::AuthSettings;
use crate::{AppError, AppResult};

/// A role a customer account holds.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// A shopper.
    Customer,
    /// A store operator: may change the catalog.
    Admin,
}

impl Role {
    /// The stored name of the role.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Customer => "CUSTOMER",
            Role::Admin => "ADMIN",
        }
    }

    /// Parses a stored role name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "CUSTOMER" => Some(Role::Customer),
            "ADMIN" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The customer id.
    pub sub: String,
    /// The customer's roles when the token was issued.
    pub roles: Vec<Role>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
}

/// A caller whose token was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The signed-in customer.
    pub customer_id: Uuid,
    /// Their roles.
    pub roles: Vec<Role>,
}

impl Caller {
    /// True for store operators.
    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }
}

/// What a request proved about its caller. Resolvers ask it for what they need.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// No `Authorization` header.
    Anonymous,
    /// A valid token.
    Caller(Caller),
    /// A token was sent but is not valid; the reason is safe to show to the client.
    Rejected(String),
}

impl Authentication {
    /// The caller if signed in, `None` when anonymous, an error when the token was bad.
    pub fn caller(&self) -> AppResult<Option<&Caller>> {
        match self {
            Authentication::Anonymous => Ok(None),
            Authentication::Caller(c) => Ok(Some(c)),
            Authentication::Rejected(reason) => Err(AppError::Unauthenticated(reason.clone())),
        }
    }

    /// The caller, or `UNAUTHENTICATED`.
    pub fn require(&self) -> AppResult<&Caller> {
        self.caller()?.ok_or_else(|| AppError::Unauthenticated("sign in to do this".into()))
    }

    /// An administrator caller, or `UNAUTHENTICATED`/`FORBIDDEN`.
    pub fn require_admin(&self) -> AppResult<&Caller> {
        let caller = self.require()?;
        if caller.is_admin() {
            Ok(caller)
        } else {
            Err(AppError::Forbidden("only an administrator may do this".into()))
        }
    }
}

/// The signing key identity uses, with what verifiers need to check its tokens.
#[derive(Clone)]
pub struct KeyPair {
    encoding: EncodingKey,
    decoding: DecodingKey,
    algorithm: Algorithm,
    kid: String,
    /// Public JWK for asymmetric keys (None for a shared HMAC secret).
    jwk: Option<serde_json::Value>,
}

impl KeyPair {
    /// Loads the configured key: an HMAC secret, the Ed25519 PEM file, or (embedded default)
    /// `<data_dir>/jwt-ed25519.pem`, generated on first use.
    pub fn load(settings: &AuthSettings, data_dir: &Path) -> anyhow::Result<Self> {
        if let Some(secret) = &settings.hmac_secret {
            let bytes = secret.expose_secret().as_bytes();
            anyhow::ensure!(bytes.len() >= 32, "auth.hmac_secret must be at least 32 bytes");
            return Ok(Self {
                encoding: EncodingKey::from_secret(bytes),
                decoding: DecodingKey::from_secret(bytes),
                algorithm: Algorithm::HS256,
                kid: "hmac".into(),
                jwk: None,
            });
        }
        let path = match &settings.signing_key_file {
            Some(path) => path.clone(),
            None => {
                let path = data_dir.join("jwt-ed25519.pem");
                if !path.exists() {
                    write_new_key(&path)?;
                }
                path
            }
        };
        let pem = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the signing key {}", path.display()))?;
        Self::from_ed25519_pem(&pem)
            .with_context(|| format!("loading the signing key {}", path.display()))
    }

    /// A fresh Ed25519 key pair, for tests and first starts.
    pub fn generate() -> Self {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        Self::from_signing_key(&key).expect("a freshly generated Ed25519 key encodes")
    }

    /// Loads an Ed25519 private key in PKCS#8 PEM.
    pub fn from_ed25519_pem(pem: &str) -> anyhow::Result<Self> {
        let key = SigningKey::from_pkcs8_pem(pem).context("not an Ed25519 PKCS#8 PEM key")?;
        Self::from_signing_key(&key)
    }

    fn from_signing_key(key: &SigningKey) -> anyhow::Result<Self> {
        let pem = key.to_pkcs8_pem(LineEnding::LF).context("encoding the key")?;
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
        let encoding = EncodingKey::from_ed_pem(pem.as_bytes()).context("reading the key")?;
        let decoding = DecodingKey::from_ed_components(&x).context("reading the public key")?;
        let kid = thumbprint(&x);
        let jwk = serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"
        });
        Ok(Self { encoding, decoding, algorithm: Algorithm::EdDSA, kid, jwk: Some(jwk) })
    }

    /// The JWKS document to publish (empty for a shared secret, which must never be published).
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": self.jwk.iter().collect::<Vec<_>>() })
    }

    /// The PKCS#8 PEM of a freshly generated key (`better-store` writes it on first start).
    pub fn generate_pem() -> anyhow::Result<String> {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        Ok(key.to_pkcs8_pem(LineEnding::LF).context("encoding the key")?.to_string())
    }
}

fn write_new_key(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let pem = KeyPair::generate_pem()?;
    write_private_file(path, pem.as_bytes())
        .with_context(|| format!("writing the signing key {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a new Ed25519 token signing key");
    Ok(())
}

#[cfg(unix)]
fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// The RFC 7638 thumbprint of an Ed25519 public key, used as its `kid`.
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Issues access tokens (identity only).
#[derive(Clone)]
pub struct TokenIssuer {
    keys: KeyPair,
    issuer: String,
    audience: String,
    ttl: chrono::Duration,
}

impl TokenIssuer {
    /// An issuer signing with `keys` under the configured issuer, audience and lifetime.
    pub fn new(keys: KeyPair, settings: &AuthSettings) -> Self {
        Self {
            keys,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            ttl: chrono::Duration::seconds(settings.access_token_ttl_secs as i64),
        }
    }

    /// Signs an access token for a customer; returns it with its expiry.
    pub fn issue(&self, customer_id: Uuid, roles: &[Role]) -> AppResult<(String, DateTime<Utc>)> {
        self.issue_for(customer_id, roles, self.ttl)
    }

    /// Signs a token with an explicit lifetime (negative gives an already expired token,
    /// which is how tests prove that expiry is enforced).
    pub fn issue_for(
        &self,
        customer_id: Uuid,
        roles: &[Role],
        lifetime: chrono::Duration,
    ) -> AppResult<(String, DateTime<Utc>)> {
        let now = Utc::now();
        let expires = now + lifetime;
        let claims = Claims {
            sub: customer_id.to_string(),
            roles: roles.to_vec(),
            exp: expires.timestamp(),
            iat: now.timestamp(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        let mut header = Header::new(self.keys.algorithm);
        header.kid = Some(self.keys.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.keys.encoding)
            .map_err(|e| AppError::internal(anyhow::Error::new(e).context("signing a token")))?;
        Ok((token, expires))
    }

    /// The key pair (identity serves its JWKS).
    pub fn keys(&self) -> &KeyPair {
        &self.keys
    }
}

/// Verifies access tokens (every subgraph).
#[derive(Clone)]
pub struct TokenVerifier {
    keys: Vec<(Option<String>, DecodingKey, Algorithm)>,
    issuer: String,
    audience: String,
}

impl TokenVerifier {
    /// A verifier for tokens signed by `keys`.
    pub fn for_keys(keys: &KeyPair, settings: &AuthSettings) -> Self {
        Self {
            keys: vec![(Some(keys.kid.clone()), keys.decoding.clone(), keys.algorithm)],
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
        }
    }

    /// A verifier for the keys published at a JWKS URL, retried for up to `patience` so that a
    /// subgraph may start before identity does.
    pub async fn from_jwks_url(
        url: &str,
        settings: &AuthSettings,
        patience: Duration,
    ) -> anyhow::Result<Self> {
        let deadline = tokio::time::Instant::now() + patience;
        let client = reqwest::Client::new();
        loop {
            match fetch_jwks(&client, url).await {
                Ok(keys) => {
                    return Ok(Self {
                        keys,
                        issuer: settings.issuer.clone(),
                        audience: settings.audience.clone(),
                    });
                }
                Err(err) if tokio::time::Instant::now() >= deadline => {
                    return Err(err.context(format!("fetching JWKS from {url}")));
                }
                Err(err) => {
                    tracing::warn!(error = %err, url, "JWKS not available yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Verifies a token and returns its claims; the error is safe to show to the client.
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| "malformed token".to_string())?;
        let candidates = self
            .keys
            .iter()
            .filter(|(kid, _, alg)| *alg == header.alg && (kid.is_none() || *kid == header.kid));
        let mut last = "token is not signed by a trusted key".to_string();
        for (_, key, alg) in candidates {
            let mut validation = Validation::new(*alg);
            validation.set_issuer(&[&self.issuer]);
            validation.set_audience(&[&self.audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            validation.leeway = 5;
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(err) => last = describe(&err),
            }
        }
        Err(last)
    }

    /// Turns an `Authorization` header value into an [`Authentication`].
    pub fn authenticate(&self, header: Option<&str>) -> Authentication {
        let Some(value) = header else { return Authentication::Anonymous };
        let Some(token) = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))
        else {
            return Authentication::Rejected("expected `Authorization: Bearer <token>`".into());
        };
        match self.verify(token.trim()) {
            Ok(claims) => match Uuid::parse_str(&claims.sub) {
                Ok(customer_id) => {
                    Authentication::Caller(Caller { customer_id, roles: claims.roles })
                }
                Err(_) => Authentication::Rejected("token subject is not a customer id".into()),
            },
            Err(reason) => Authentication::Rejected(reason),
        }
    }
}

fn describe(err: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::ExpiredSignature => "token has expired".into(),
        ErrorKind::InvalidIssuer => "token has the wrong issuer".into(),
        ErrorKind::InvalidAudience => "token has the wrong audience".into(),
        ErrorKind::InvalidSignature => "token signature is invalid".into(),
        ErrorKind::InvalidAlgorithm => "token algorithm is not accepted".into(),
        _ => "token is invalid".into(),
    }
}

async fn fetch_jwks(
    client: &reqwest::Client,
    url: &str,
) -> anyhow::Result<Vec<(Option<String>, DecodingKey, Algorithm)>> {
    #[derive(Deserialize)]
    struct Jwks {
        keys: Vec<Jwk>,
    }
    #[derive(Deserialize)]
    struct Jwk {
        kty: String,
        crv: Option<String>,
        x: Option<String>,
        kid: Option<String>,
    }
    let jwks: Jwks = client
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let keys: Vec<_> = jwks
        .keys
        .into_iter()
        .filter(|k| k.kty == "OKP" && k.crv.as_deref() == Some("Ed25519"))
        .filter_map(|k| {
            let key = DecodingKey::from_ed_components(k.x.as_deref()?).ok()?;
            Some((k.kid, key, Algorithm::EdDSA))
        })
        .collect();
    anyhow::ensure!(!keys.is_empty(), "the JWKS holds no Ed25519 key");
    Ok(keys)
}

/// The default signing key path in embedded mode.
pub fn default_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("jwt-ed25519.pem")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AuthSettings {
        AuthSettings::default()
    }

    #[test]
    fn a_token_verifies_with_its_own_key_only() {
        let keys = KeyPair::generate();
        let issuer = TokenIssuer::new(keys.clone(), &settings());
        let id = Uuid::now_v7();
        let (token, _) = issuer.issue(id, &[Role::Customer]).unwrap();
        let verifier = TokenVerifier::for_keys(&keys, &settings());
        let claims = verifier.verify(&token).unwrap();
        assert_eq!(claims.sub, id.to_string());

        let other = TokenVerifier::for_keys(&KeyPair::generate(), &settings());
        assert!(other.verify(&token).is_err());
    }

    #[test]
    fn unsigned_and_expired_tokens_are_rejected() {
        let keys = KeyPair::generate();
        let verifier = TokenVerifier::for_keys(&keys, &settings());
        let now = Utc::now().timestamp();
        let claims = serde_json::json!({
            "sub": Uuid::now_v7().to_string(), "roles": ["ADMIN"], "exp": now + 600,
            "iat": now, "iss": "better-store", "aud": "better-store"
        });
        let body = URL_SAFE_NO_PAD.encode(claims.to_string());
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#), body);
        assert!(matches!(
            verifier.authenticate(Some(&format!("Bearer {none}"))),
            Authentication::Rejected(_)
        ));

        let issuer = TokenIssuer::new(keys, &settings());
        let (token, _) = issuer
            .issue_for(Uuid::now_v7(), &[Role::Customer], chrono::Duration::hours(-1))
            .unwrap();
        assert_eq!(verifier.verify(&token).unwrap_err(), "token has expired");
    }

    #[test]
    fn pem_round_trip_keeps_the_key() {
        let pem = KeyPair::generate_pem().unwrap();
        let a = KeyPair::from_ed25519_pem(&pem).unwrap();
        let b = KeyPair::from_ed25519_pem(&pem).unwrap();
        assert_eq!(a.kid, b.kid);
        assert_eq!(a.jwks()["keys"][0]["kty"], "OKP");
    }
}

/// The request's [`Authentication`] as put there by the server (anonymous when absent, e.g. a
/// schema executed directly).
pub fn authentication<'a>(ctx: &async_graphql::Context<'a>) -> &'a Authentication {
    static ANONYMOUS: Authentication = Authentication::Anonymous;
    ctx.data_opt::<Authentication>().unwrap_or(&ANONYMOUS)
}
