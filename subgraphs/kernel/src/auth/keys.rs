//! Token signing keys: an Ed25519 key pair (default, generated on first start and published
//! as JWKS) or a shared HMAC secret.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::config::AuthSettings;

/// The signing key identity uses, with what verifiers need to check its tokens.
#[derive(Clone)]
pub struct KeyPair {
    pub(super) encoding: EncodingKey,
    pub(super) decoding: DecodingKey,
    pub(super) algorithm: Algorithm,
    pub(super) kid: String,
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

/// The default signing key path in embedded mode.
pub fn default_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("jwt-ed25519.pem")
}
