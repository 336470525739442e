//! A tenant cluster's own Secret, `<cluster>-paddock` in the tenant's
//! namespace: its kubeconfig and SSH private key, both sealed
//! ([`super::sealed`]), and its SSH public key.
//!
//! The kubeconfig is copied from Cluster API's `<cluster>-kubeconfig`
//! whenever that changes; the SSH key pair is made once, and the private
//! key can be handed out once (the API removes it when it does).

use super::sealed::{KeyRing, SealError};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use std::collections::BTreeMap;

pub const KUBECONFIG: &str = "kubeconfig";
pub const SSH_PRIVATE: &str = "ssh-private-key";
pub const SSH_PUBLIC: &str = "ssh-public-key";

/// The Secret's name.
pub fn secret_name(cluster: &str) -> String {
    format!("{cluster}-paddock")
}

/// What a sealed value is for (its associated data).
pub fn purpose(ns: &str, cluster: &str, what: &str) -> String {
    format!("{ns}/{cluster}/{what}")
}

/// A new ed25519 key pair: (OpenSSH private key, public key line).
pub fn new_ssh_key(comment: &str) -> Result<(String, String), String> {
    let seed: [u8; 32] = rand::random();
    let pair = ssh_key::private::Ed25519Keypair::from_seed(&seed);
    let mut key = ssh_key::PrivateKey::from(pair);
    key.set_comment(comment);
    let private = key.to_openssh(ssh_key::LineEnding::LF).map_err(|e| e.to_string())?.to_string();
    let public = key.public_key().to_openssh().map_err(|e| e.to_string())?;
    Ok((private, public))
}

fn text(s: &Secret, key: &str) -> Option<String> {
    s.data.as_ref()?.get(key).map(|b| String::from_utf8_lossy(&b.0).into_owned())
}

/// The cluster's Secret as read, and what it holds.
pub struct Vault {
    pub secret: Option<Secret>,
}

impl Vault {
    pub async fn read(api: &Api<Secret>, cluster: &str) -> Result<Self, kube::Error> {
        Ok(Self { secret: api.get_opt(&secret_name(cluster)).await? })
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.secret.as_ref().and_then(|s| text(s, key))
    }

    /// Writes entries (None removes one) into the Secret, making it if needed.
    pub async fn write(
        &mut self,
        api: &Api<Secret>,
        cluster: &str,
        owner: &serde_json::Value,
        entries: BTreeMap<&str, Option<String>>,
    ) -> Result<(), kube::Error> {
        let data: serde_json::Map<String, serde_json::Value> = entries
            .into_iter()
            .map(|(k, v)| {
                use base64::Engine;
                let v = v.map(|t| serde_json::json!(base64::engine::general_purpose::STANDARD.encode(t)));
                (k.to_string(), v.unwrap_or(serde_json::Value::Null))
            })
            .collect();
        let name = secret_name(cluster);
        let body = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name,
            "labels": {crate::labels::MANAGED_BY: crate::labels::MANAGER, super::build::PADDOCK_CLUSTER: cluster},
            "ownerReferences": [owner]}, "type": "Opaque", "data": data});
        let written = if self.secret.is_some() {
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&body)).await?
        } else {
            api.create(&Default::default(), &serde_json::from_value(body).map_err(kube::Error::SerdeError)?).await?
        };
        self.secret = Some(written);
        Ok(())
    }

    /// The SSH public key, making the pair when the Secret has none.
    pub async fn ssh_public_key(
        &mut self,
        api: &Api<Secret>,
        ring: &KeyRing,
        (ns, cluster): (&str, &str),
        owner: &serde_json::Value,
    ) -> Result<String, crate::error::Error> {
        if let Some(public) = self.get(SSH_PUBLIC) {
            return Ok(public);
        }
        let (private, public) = new_ssh_key(&format!("paddock@{ns}/{cluster}")).map_err(crate::error::Error::Sealed)?;
        let sealed = ring.seal(&purpose(ns, cluster, SSH_PRIVATE), private.as_bytes())?;
        let entries = BTreeMap::from([(SSH_PRIVATE, Some(sealed)), (SSH_PUBLIC, Some(public.clone()))]);
        self.write(api, cluster, owner, entries).await?;
        Ok(public)
    }

    /// Copies Cluster API's kubeconfig (`plain`) in, sealed, when it changed
    /// or is under an old key; and seals the private key again on rotation.
    pub async fn sync(
        &mut self,
        api: &Api<Secret>,
        ring: &KeyRing,
        (ns, cluster): (&str, &str),
        owner: &serde_json::Value,
        plain: Option<&str>,
    ) -> Result<(), crate::error::Error> {
        let mut entries = BTreeMap::new();
        let kc_purpose = purpose(ns, cluster, KUBECONFIG);
        if let Some(plain) = plain {
            let stored = self.get(KUBECONFIG);
            let same =
                stored.as_deref().and_then(|s| ring.open(&kc_purpose, s).ok()).is_some_and(|o| o == plain.as_bytes());
            if !same || stored.as_deref().is_some_and(|s| ring.is_stale(s)) {
                entries.insert(KUBECONFIG, Some(ring.seal(&kc_purpose, plain.as_bytes())?));
            }
        }
        if let Some(private) = self.get(SSH_PRIVATE).filter(|s| ring.is_stale(s)) {
            let p = purpose(ns, cluster, SSH_PRIVATE);
            let open = ring.open(&p, &private)?;
            entries.insert(SSH_PRIVATE, Some(ring.seal(&p, &open)?));
        }
        if !entries.is_empty() {
            self.write(api, cluster, owner, entries).await?;
        }
        Ok(())
    }

    /// The kubeconfig, opened.
    pub fn kubeconfig(&self, ring: &KeyRing, ns: &str, cluster: &str) -> Result<Option<String>, SealError> {
        let Some(sealed) = self.get(KUBECONFIG) else { return Ok(None) };
        let plain = ring.open(&purpose(ns, cluster, KUBECONFIG), &sealed)?;
        Ok(Some(String::from_utf8_lossy(&plain).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ssh_keys_are_openssh_ed25519() {
        let (private, public) = super::new_ssh_key("paddock@t/c").unwrap();
        assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        assert!(public.starts_with("ssh-ed25519 ") && public.ends_with(" paddock@t/c"));
        assert_ne!(super::new_ssh_key("x").unwrap().1, super::new_ssh_key("x").unwrap().1);
    }
}
