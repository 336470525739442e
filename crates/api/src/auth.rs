//! Bearer tokens. Admin tokens come from `PADDOCK_ADMIN_TOKEN` or from Secrets
//! labelled `paddock.dev/credentials=admin` in the system namespace (every value
//! is a token). Tenant tokens are issued by the API, shown once, and kept only
//! as a salted SHA-256 in the Secret `paddock-tokens-<tenant>` (label
//! `paddock.dev/credentials=tenant`) in the system namespace.
//!
//! A tenant token reads `pdk.<tenant>.<id>.<secret>`: the tenant and id find the
//! stored hash without a scan; the secret is 32 random bytes. Comparisons are
//! constant-time; tokens are never logged (`Principal`'s Debug shows no secret).

use crate::problem::Problem;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{ObjectRef, Store};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

pub const CREDENTIALS_LABEL: &str = resources::vocabulary::CREDENTIALS;
pub const TOKEN_PREFIX: &str = "pdk";

/// Name of the Secret holding a tenant's token hashes.
pub fn token_secret(tenant: &str) -> String {
    format!("paddock-tokens-{tenant}")
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin,
    Tenant(String),
}

impl Principal {
    /// Admins see every tenant; a tenant token only its own. Anything else is
    /// reported as absent, so names of other tenants do not leak.
    pub fn see_tenant(&self, tenant: &str) -> Result<(), Problem> {
        match self {
            Self::Admin => Ok(()),
            Self::Tenant(t) if t == tenant => Ok(()),
            Self::Tenant(_) => Err(Problem::not_found("tenant", tenant)),
        }
    }

    /// Only admins may do this.
    pub fn admin(&self, action: &str) -> Result<(), Problem> {
        match self {
            Self::Admin => Ok(()),
            Self::Tenant(_) => Err(Problem::forbidden(format!("only an admin token may {action}"))),
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Self::Admin)
    }

    /// For logs: the tenant, never the token.
    pub fn label(&self) -> &str {
        match self {
            Self::Admin => "admin",
            Self::Tenant(t) => t,
        }
    }
}

/// What is stored for one token (as JSON, the value under the token's id).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredToken {
    pub salt: String,
    pub hash: String,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When it stops working (RFC 3339); never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

impl StoredToken {
    /// Whether it has expired at `now`.
    pub fn expired(&self, now: jiff::Timestamp) -> bool {
        self.expires.as_deref().and_then(|e| e.parse::<jiff::Timestamp>().ok()).is_some_and(|e| now >= e)
    }
}

/// A token's public facts (never its secret or hash).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct TokenInfo {
    pub id: String,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When it stops working; never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// A freshly issued token: shown once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IssuedToken {
    pub id: String,
    pub tenant: String,
    /// The bearer token. It is not stored and cannot be shown again.
    pub token: String,
    pub created: String,
    /// When it stops working; never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

fn hash(salt: &[u8], secret: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(secret);
    h.finalize().into()
}

/// Random bytes from the OS-seeded generator.
fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rng().fill_bytes(&mut b);
    b
}

/// Makes a new token for `tenant`, valid for `ttl` (or until revoked): the
/// bearer string and what to store.
pub fn mint(
    tenant: &str,
    description: Option<String>,
    ttl: Option<std::time::Duration>,
) -> (String, String, StoredToken) {
    let id = hex(&random::<4>());
    let secret = URL_SAFE_NO_PAD.encode(random::<32>());
    let salt = random::<16>();
    let now = jiff::Timestamp::now();
    let expires = ttl
        .and_then(|t| jiff::SignedDuration::try_from(t).ok())
        .and_then(|t| now.checked_add(t).ok())
        .map(|e| e.round(jiff::Unit::Second).unwrap_or(e).to_string());
    let stored = StoredToken {
        salt: STANDARD_NO_PAD.encode(salt),
        hash: STANDARD_NO_PAD.encode(hash(&salt, secret.as_bytes())),
        created: now.to_string(),
        description,
        expires,
    };
    (format!("{TOKEN_PREFIX}.{tenant}.{id}.{secret}"), id, stored)
}

/// A random admin token (for `paddock dev` and first installs).
pub fn mint_admin() -> String {
    format!("{TOKEN_PREFIX}-admin.{}", URL_SAFE_NO_PAD.encode(random::<32>()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Constant-time equality of two strings of any length.
fn same(a: &str, b: &str) -> bool {
    let (ha, hb) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    ha.ct_eq(&hb).into()
}

/// Checks bearer tokens against the environment and the Secrets reflector.
#[derive(Clone)]
pub struct Credentials {
    admin_env: Option<String>,
    namespace: String,
    secrets: Store<Secret>,
}

impl Credentials {
    pub fn new(admin_env: Option<String>, namespace: String, secrets: Store<Secret>) -> Self {
        Self { admin_env: admin_env.filter(|t| !t.is_empty()), namespace, secrets }
    }

    /// Who the token belongs to, if anyone.
    pub fn verify(&self, token: &str) -> Option<Principal> {
        if let Some((tenant, rest)) = token.strip_prefix("pdk.").and_then(|r| r.split_once('.')) {
            let (id, secret) = rest.split_once('.')?;
            let stored = self.stored(tenant, id).filter(|s| !s.expired(jiff::Timestamp::now()))?;
            let salt = STANDARD_NO_PAD.decode(&stored.salt).ok()?;
            let want = STANDARD_NO_PAD.decode(&stored.hash).ok()?;
            let got = hash(&salt, secret.as_bytes());
            return bool::from(got.ct_eq(&want[..])).then(|| Principal::Tenant(tenant.to_string()));
        }
        let mut ok = self.admin_env.as_deref().is_some_and(|a| same(a, token));
        for s in self.secrets.state() {
            if s.metadata.labels.as_ref().and_then(|l| l.get(CREDENTIALS_LABEL)).map(String::as_str) != Some("admin") {
                continue;
            }
            for v in s.data.iter().flat_map(|d| d.values()) {
                // Every value is checked, so timing does not tell which matched.
                ok |= std::str::from_utf8(&v.0).is_ok_and(|a| same(a.trim(), token));
            }
        }
        ok.then_some(Principal::Admin)
    }

    /// The tenant's tokens Secret as the reflector sees it.
    fn secret(&self, tenant: &str) -> Option<std::sync::Arc<Secret>> {
        self.secrets.get(&ObjectRef::new(&token_secret(tenant)).within(&self.namespace))
    }

    fn stored(&self, tenant: &str, id: &str) -> Option<StoredToken> {
        let secret = self.secret(tenant)?;
        let raw = secret.data.as_ref()?.get(id)?;
        serde_json::from_slice(&raw.0).ok()
    }

    /// Every token of the tenant, by id.
    fn all(&self, tenant: &str) -> Vec<(String, StoredToken)> {
        let Some(secret) = self.secret(tenant) else { return Vec::new() };
        secret
            .data
            .iter()
            .flatten()
            .filter_map(|(id, v)| Some((id.clone(), serde_json::from_slice::<StoredToken>(&v.0).ok()?)))
            .collect()
    }

    /// The tenant's tokens as the reflector sees them.
    pub fn list(&self, tenant: &str) -> Vec<TokenInfo> {
        let mut out: Vec<TokenInfo> = self
            .all(tenant)
            .into_iter()
            .map(|(id, s)| TokenInfo { id, created: s.created, description: s.description, expires: s.expires })
            .collect();
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        out
    }

    /// The ids of the tenant's expired tokens.
    pub fn expired(&self, tenant: &str) -> Vec<String> {
        let now = jiff::Timestamp::now();
        self.all(tenant).into_iter().filter(|(_, s)| s.expired(now)).map(|(id, _)| id).collect()
    }

    /// Whether the reflector shows the token `id` of `tenant` as `present`.
    pub fn sees(&self, tenant: &str, id: &str, present: bool) -> bool {
        self.stored(tenant, id).is_some() == present
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }
}

/// The bearer token of an `Authorization` header value.
pub fn bearer(header: Option<&str>) -> Result<&str, Problem> {
    let Some(h) = header else {
        return Err(Problem::unauthorized("send a token: Authorization: Bearer <token>"));
    };
    let (scheme, token) = h.split_once(' ').unwrap_or((h, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Problem::unauthorized("the Authorization header must read: Bearer <token>"));
    }
    Ok(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;
    use std::collections::BTreeMap;

    fn creds_with(secrets: Vec<Secret>) -> Credentials {
        let (store, mut writer) = reflector::store::<Secret>();
        writer.apply_watcher_event(&Event::Init);
        for s in secrets {
            writer.apply_watcher_event(&Event::InitApply(s));
        }
        writer.apply_watcher_event(&Event::InitDone);
        Credentials::new(Some("env-admin".into()), "paddock-system".into(), store)
    }

    fn secret(name: &str, kind: &str, data: BTreeMap<String, Vec<u8>>) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some("paddock-system".into());
        s.metadata.labels = Some([(CREDENTIALS_LABEL.to_string(), kind.to_string())].into());
        s.data = Some(data.into_iter().map(|(k, v)| (k, k8s_openapi::ByteString(v))).collect());
        s
    }

    #[test]
    fn tokens_verify_and_only_their_own_tenant() {
        let (token, id, stored) = mint("team-a", Some("ci".into()), None);
        assert!(token.starts_with("pdk.team-a."));
        let data = [(id.clone(), serde_json::to_vec(&stored).unwrap())].into();
        let admin = secret("admins", "admin", [("alice".to_string(), b"secret-admin\n".to_vec())].into());
        let c = creds_with(vec![secret(&token_secret("team-a"), "tenant", data), admin]);
        assert_eq!(c.verify(&token), Some(Principal::Tenant("team-a".into())));
        assert_eq!(c.verify("env-admin"), Some(Principal::Admin));
        assert_eq!(c.verify("secret-admin"), Some(Principal::Admin));
        assert_eq!(c.verify("nope"), None);
        // The same secret claimed for another tenant or id fails.
        let forged = token.replacen("team-a", "team-b", 1);
        assert_eq!(c.verify(&forged), None);
        let mut wrong = token.clone();
        wrong.pop();
        assert_eq!(c.verify(&wrong), None);
        assert_eq!(c.list("team-a")[0].description.as_deref(), Some("ci"));
        // Nothing of the secret is stored.
        let secret_part = token.rsplit('.').next().unwrap();
        assert!(!serde_json::to_string(&stored).unwrap().contains(secret_part));
    }

    #[test]
    fn an_expired_token_no_longer_works() {
        let hour = std::time::Duration::from_secs(3600);
        let (token, id, mut stored) = mint("team-a", None, Some(hour));
        let expires: jiff::Timestamp = stored.expires.as_deref().unwrap().parse().unwrap();
        let left = jiff::Timestamp::now().duration_until(expires).as_secs();
        assert!((3590..=3601).contains(&left), "{left}");
        let with = |stored: &StoredToken| {
            let data = [(id.clone(), serde_json::to_vec(stored).unwrap())].into();
            creds_with(vec![secret(&token_secret("team-a"), "tenant", data)])
        };
        assert_eq!(with(&stored).verify(&token), Some(Principal::Tenant("team-a".into())));
        stored.expires = Some("2020-01-01T00:00:00Z".into());
        assert_eq!(with(&stored).verify(&token), None);
        assert_eq!(with(&stored).list("team-a")[0].expires.as_deref(), Some("2020-01-01T00:00:00Z"));
    }

    #[test]
    fn bearer_header_forms() {
        assert_eq!(bearer(Some("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer(Some("bearer  abc ")).unwrap(), "abc");
        assert_eq!(bearer(None).unwrap_err().status, 401);
        assert_eq!(bearer(Some("Basic abc")).unwrap_err().status, 401);
        assert_eq!(bearer(Some("Bearer")).unwrap_err().status, 401);
    }

    #[test]
    fn who_sees_what() {
        let t = Principal::Tenant("a".into());
        assert!(t.see_tenant("a").is_ok());
        assert_eq!(t.see_tenant("b").unwrap_err().status, 404);
        assert_eq!(t.admin("list nodes").unwrap_err().status, 403);
        assert!(Principal::Admin.see_tenant("b").is_ok());
    }
}
