//! Issuing and verifying access tokens.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::Deserialize;
use uuid::Uuid;

use super::{Authentication, Caller, Claims, KeyPair, Role};
use crate::config::AuthSettings;
use crate::{AppError, AppResult};

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

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

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
