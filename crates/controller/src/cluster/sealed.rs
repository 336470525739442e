//! Secrets of tenant clusters (kubeconfigs, SSH private keys) encrypted at
//! rest with AES-256-GCM under a key ring kept in the Secret
//! [`KEYS_SECRET`] of Paddock's system namespace.
//!
//! - The ring's keys are the Secret's entries `<id>` (32 random bytes each);
//!   entry `current` names the one new seals use. The controller makes the
//!   Secret with one key the first time it needs it.
//! - A sealed value is `paddock-sealed:v1:<key id>:<base64(nonce ‖ ciphertext)>`,
//!   with a fresh 96-bit nonce and the value's purpose (`<namespace>/<cluster>/kubeconfig`)
//!   as associated data, so a sealed value copied to another cluster's
//!   Secret does not open there.
//! - Rotation: add a key and point `current` at it; each cluster's values
//!   are sealed again under it on the cluster's next reconcile, and the old
//!   key can go once none uses it ([`Sealed::key_id`]).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use std::collections::BTreeMap;

/// The key ring's Secret in the system namespace.
pub const KEYS_SECRET: &str = "paddock-cluster-keys";
const PREFIX: &str = "paddock-sealed:v1:";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the key ring {KEYS_SECRET}: {0}")]
    Ring(String),
    #[error("a sealed value is malformed")]
    Malformed,
    #[error("a sealed value names key {0:?}, which the key ring no longer has")]
    UnknownKey(String),
    #[error("a sealed value does not open (tampered with, or sealed for another purpose)")]
    Open,
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

#[derive(Clone)]
pub struct KeyRing {
    current: String,
    keys: BTreeMap<String, [u8; 32]>,
}

impl std::fmt::Debug for KeyRing {
    /// Never the keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("current", &self.current).field("keys", &self.keys.len()).finish()
    }
}

/// A sealed value's parts.
pub struct Sealed<'a> {
    pub key_id: &'a str,
    blob: Vec<u8>,
}

impl<'a> Sealed<'a> {
    pub fn parse(text: &'a str) -> Result<Self, SealError> {
        let rest = text.strip_prefix(PREFIX).ok_or(SealError::Malformed)?;
        let (key_id, b64) = rest.split_once(':').ok_or(SealError::Malformed)?;
        let blob = STANDARD.decode(b64.trim()).map_err(|_| SealError::Malformed)?;
        if blob.len() < 12 + 16 {
            return Err(SealError::Malformed);
        }
        Ok(Self { key_id, blob })
    }
}

impl KeyRing {
    /// A ring from the Secret's data.
    pub fn from_data(data: &BTreeMap<String, ByteString>) -> Result<Self, SealError> {
        let current = data
            .get("current")
            .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
            .ok_or_else(|| SealError::Ring("has no `current` entry naming the key in use".into()))?;
        let mut keys = BTreeMap::new();
        for (id, v) in data.iter().filter(|(k, _)| k.as_str() != "current") {
            let key: [u8; 32] =
                v.0.as_slice()
                    .try_into()
                    .map_err(|_| SealError::Ring(format!("key {id:?} is {} bytes, not 32", v.0.len())))?;
            keys.insert(id.clone(), key);
        }
        if !keys.contains_key(&current) {
            return Err(SealError::Ring(format!("`current` names key {current:?}, which it does not hold")));
        }
        Ok(Self { current, keys })
    }

    /// A new ring with one random key, `k1`.
    pub fn generate() -> Self {
        Self { current: "k1".into(), keys: BTreeMap::from([("k1".to_string(), rand::random::<[u8; 32]>())]) }
    }

    /// The Secret's data for this ring.
    pub fn to_data(&self) -> BTreeMap<String, ByteString> {
        let mut data: BTreeMap<String, ByteString> =
            self.keys.iter().map(|(id, k)| (id.clone(), ByteString(k.to_vec()))).collect();
        data.insert("current".into(), ByteString(self.current.as_bytes().to_vec()));
        data
    }

    pub fn current(&self) -> &str {
        &self.current
    }

    /// Reads the ring from `namespace`, making it (one new key) when absent.
    pub async fn load_or_create(client: &kube::Client, namespace: &str) -> Result<Self, SealError> {
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        if let Some(s) = api.get_opt(KEYS_SECRET).await? {
            return Self::from_data(&s.data.unwrap_or_default());
        }
        let ring = Self::generate();
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(KEYS_SECRET.into()),
                labels: Some(BTreeMap::from([(
                    crate::labels::MANAGED_BY.to_string(),
                    crate::labels::MANAGER.to_string(),
                )])),
                ..Default::default()
            },
            data: Some(ring.to_data()),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => Ok(ring),
            // Another replica made it first: use theirs.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                Self::from_data(&api.get(KEYS_SECRET).await?.data.unwrap_or_default())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Seals `plain` for `purpose` under the current key.
    pub fn seal(&self, purpose: &str, plain: &[u8]) -> Result<String, SealError> {
        let key = self.keys.get(&self.current).ok_or_else(|| SealError::Ring("no current key".into()))?;
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| SealError::Ring("bad key".into()))?;
        let nonce: [u8; 12] = rand::random();
        let ct = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad: purpose.as_bytes() })
            .map_err(|_| SealError::Open)?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        Ok(format!("{PREFIX}{}:{}", self.current, STANDARD.encode(blob)))
    }

    /// Opens a sealed value made for `purpose`.
    pub fn open(&self, purpose: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let s = Sealed::parse(sealed)?;
        let key = self.keys.get(s.key_id).ok_or_else(|| SealError::UnknownKey(s.key_id.to_string()))?;
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| SealError::Ring("bad key".into()))?;
        let (nonce, ct) = s.blob.split_at(12);
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: purpose.as_bytes() })
            .map_err(|_| SealError::Open)
    }

    /// Whether `sealed` is under another key than the current one (so it is
    /// sealed again on rotation).
    pub fn is_stale(&self, sealed: &str) -> bool {
        Sealed::parse(sealed).is_ok_and(|s| s.key_id != self.current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_rotate_and_refuse_tampering() {
        let ring = KeyRing::generate();
        let sealed = ring.seal("ns/c/kubeconfig", b"token: secret").unwrap();
        assert!(!sealed.contains("secret"));
        assert_eq!(ring.open("ns/c/kubeconfig", &sealed).unwrap(), b"token: secret");
        assert!(matches!(ring.open("ns/other/kubeconfig", &sealed), Err(SealError::Open)));
        let mut bad = sealed.clone();
        bad.replace_range(bad.len() - 6..bad.len() - 4, "AA");
        assert!(ring.open("ns/c/kubeconfig", &bad).is_err());
        // Rotation: a second key becomes current; old values still open.
        let mut data = ring.to_data();
        data.insert("k2".into(), ByteString(vec![7; 32]));
        data.insert("current".into(), ByteString(b"k2".to_vec()));
        let rotated = KeyRing::from_data(&data).unwrap();
        assert!(rotated.is_stale(&sealed));
        assert_eq!(rotated.open("ns/c/kubeconfig", &sealed).unwrap(), b"token: secret");
        let again = rotated.seal("ns/c/kubeconfig", b"token: secret").unwrap();
        assert!(again.starts_with("paddock-sealed:v1:k2:") && !rotated.is_stale(&again));
        data.remove("k1");
        let dropped = KeyRing::from_data(&data).unwrap();
        assert!(matches!(dropped.open("ns/c/kubeconfig", &sealed), Err(SealError::UnknownKey(k)) if k == "k1"));
        data.insert("k3".into(), ByteString(vec![1; 5]));
        assert!(KeyRing::from_data(&data).unwrap_err().to_string().contains("5 bytes"));
        assert!(format!("{ring:?}").contains("keys: 1"));
    }
}
