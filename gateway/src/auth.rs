//! Verifying bearer tokens at the edge. A request without `Authorization` passes through; one
//! with a token that fails verification is answered 401 before any subgraph is called; a valid
//! one is forwarded unchanged (subgraphs verify it again and decide what it may do).
//!
//! Keys come from an HMAC secret or a JWKS document (given, fetched from a URL, or both).
//! A token signed with a key id the gateway does not know triggers a JWKS refresh, at most
//! once per `min_refresh` — that is how rotated keys are picked up.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// How the gateway verifies tokens.
#[derive(Debug, Clone, Default)]
pub struct JwtOptions {
    /// A JWKS document to start from.
    pub jwks: Option<serde_json::Value>,
    /// Where to fetch (and re-fetch) the JWKS.
    pub jwks_url: Option<String>,
    /// An HS256 shared secret instead of (or besides) JWKS.
    pub hmac_secret: Option<String>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
}

impl JwtOptions {
    /// True when any key source is configured.
    pub fn enabled(&self) -> bool {
        self.jwks.is_some() || self.jwks_url.is_some() || self.hmac_secret.is_some()
    }
}

struct Keys {
    keys: Vec<(Option<String>, DecodingKey, Algorithm)>,
    fetched: Option<Instant>,
}

/// The gateway's token verifier.
pub struct JwtVerifier {
    options: JwtOptions,
    keys: RwLock<Keys>,
    client: reqwest::Client,
    min_refresh: Duration,
}

impl JwtVerifier {
    /// A verifier; fetches the JWKS URL now when one is configured.
    pub async fn new(options: JwtOptions) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        if let Some(secret) = &options.hmac_secret {
            keys.push((None, DecodingKey::from_secret(secret.as_bytes()), Algorithm::HS256));
        }
        if let Some(jwks) = &options.jwks {
            keys.extend(parse_jwks(jwks.clone())?);
        }
        let verifier = Self {
            options,
            keys: RwLock::new(Keys { keys, fetched: None }),
            client: reqwest::Client::new(),
            min_refresh: Duration::from_secs(30),
        };
        if verifier.options.jwks_url.is_some()
            && let Err(err) = verifier.refresh().await
        {
            tracing::warn!(error = %err, "JWKS not available yet; will retry on the next token");
        }
        Ok(verifier)
    }

    async fn refresh(&self) -> anyhow::Result<()> {
        let Some(url) = &self.options.jwks_url else { return Ok(()) };
        let document: serde_json::Value = self
            .client
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let fetched = parse_jwks(document)?;
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        keys.keys.retain(|(_, _, alg)| *alg == Algorithm::HS256);
        keys.keys.extend(fetched);
        keys.fetched = Some(Instant::now());
        Ok(())
    }

    /// Verifies a bearer header value; the error is safe to show to the client.
    pub async fn verify(&self, authorization: &str) -> Result<(), String> {
        let token = authorization
            .strip_prefix("Bearer ")
            .or_else(|| authorization.strip_prefix("bearer "))
            .ok_or("expected `Authorization: Bearer <token>`")?
            .trim();
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| "malformed token".to_string())?;
        if !self.knows(header.kid.as_deref(), header.alg) {
            let stale = self
                .keys
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .fetched
                .is_none_or(|t| t.elapsed() >= self.min_refresh);
            if stale && let Err(err) = self.refresh().await {
                tracing::warn!(error = %err, "JWKS refresh failed");
            }
        }
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let mut reason = "token is not signed by a trusted key".to_string();
        let candidates = keys.keys.iter().filter(|(kid, _, alg)| {
            *alg == header.alg && (kid.is_none() || header.kid.is_none() || *kid == header.kid)
        });
        for (_, key, alg) in candidates {
            let mut validation = Validation::new(*alg);
            validation.leeway = 5;
            if let Some(iss) = &self.options.issuer {
                validation.set_issuer(&[iss]);
            }
            match &self.options.audience {
                Some(aud) => validation.set_audience(&[aud]),
                None => validation.validate_aud = false,
            }
            match jsonwebtoken::decode::<serde_json::Value>(token, key, &validation) {
                Ok(_) => return Ok(()),
                Err(err) => reason = describe(&err),
            }
        }
        Err(reason)
    }

    fn knows(&self, kid: Option<&str>, alg: Algorithm) -> bool {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        keys.keys.iter().any(|(k, _, a)| *a == alg && (kid.is_none() || k.as_deref() == kid))
    }
}

fn parse_jwks(
    document: serde_json::Value,
) -> anyhow::Result<Vec<(Option<String>, DecodingKey, Algorithm)>> {
    let set: JwkSet = serde_json::from_value(document)?;
    let mut out = Vec::new();
    for jwk in &set.keys {
        let Some(alg) = jwk
            .common
            .key_algorithm
            .and_then(|a| a.to_string().parse::<Algorithm>().ok())
            .or(default_algorithm(&jwk.algorithm))
        else {
            continue;
        };
        if let Ok(key) = DecodingKey::from_jwk(jwk) {
            out.push((jwk.common.key_id.clone(), key, alg));
        }
    }
    Ok(out)
}

/// The algorithm a key without `alg` is used with, from its key type.
fn default_algorithm(parameters: &jsonwebtoken::jwk::AlgorithmParameters) -> Option<Algorithm> {
    use jsonwebtoken::jwk::AlgorithmParameters as P;
    match parameters {
        P::OctetKeyPair(_) => Some(Algorithm::EdDSA),
        P::RSA(_) => Some(Algorithm::RS256),
        P::EllipticCurve(_) => Some(Algorithm::ES256),
        _ => None,
    }
}

fn describe(err: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::ExpiredSignature => "token has expired".into(),
        ErrorKind::InvalidIssuer => "token has the wrong issuer".into(),
        ErrorKind::InvalidAudience => "token has the wrong audience".into(),
        ErrorKind::InvalidSignature => "token signature is invalid".into(),
        _ => "token is invalid".into(),
    }
}
