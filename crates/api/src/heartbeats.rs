//! Instance heartbeat tokens: each instance of a template that reaps idle
//! instances has its own token (`pdi.…`, in its Secret under
//! `heartbeat-token`, given to its pods as `PADDOCK_HEARTBEAT_TOKEN`). It
//! lets its holder say the instance is in use, and nothing else.
//!
//! Verifying one reads the instance's Secret; what was read is kept for a
//! minute (a missing Secret for a few seconds), so a client that sends many
//! heartbeats, right or wrong, costs the API server one read a minute.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// How long a token read from a Secret is trusted.
const KEEP: Duration = Duration::from_secs(60);
/// How long "this instance has no token" is trusted (its Secret may be new).
const KEEP_MISSING: Duration = Duration::from_secs(5);
/// Instances whose tokens are kept at most; past it, the cache starts afresh.
const MAX_KEPT: usize = 100_000;

/// What was read of one instance's token: its hash (None: it has none), and when.
type Read = (Option<[u8; 32]>, Instant);

/// The tokens read lately, by (namespace, instance).
#[derive(Default)]
pub struct Tokens {
    read: Mutex<HashMap<(String, String), Read>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens")
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Tokens {
    /// Whether `token` is the instance's, by what was read lately; None
    /// when nothing fresh is known (read the Secret and [`Tokens::learn`]).
    pub fn check(&self, ns: &str, inst: &str, token: &str) -> Option<bool> {
        let read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        let (stored, at) = read.get(&(ns.to_string(), inst.to_string()))?;
        let keep = if stored.is_some() { KEEP } else { KEEP_MISSING };
        if at.elapsed() > keep {
            return None;
        }
        Some(stored.is_some_and(|s| bool::from(s.ct_eq(&digest(token.as_bytes())))))
    }

    /// Keeps what the instance's Secret holds (None: no token).
    pub fn learn(&self, ns: &str, inst: &str, stored: Option<&[u8]>) {
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        if read.len() >= MAX_KEPT {
            read.clear();
        }
        read.insert((ns.to_string(), inst.to_string()), (stored.map(digest), Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_checked_against_what_was_read() {
        let t = Tokens::default();
        assert_eq!(t.check("ns", "web", "pdi.a"), None, "nothing read yet");
        t.learn("ns", "web", Some(b"pdi.a"));
        assert_eq!(t.check("ns", "web", "pdi.a"), Some(true));
        assert_eq!(t.check("ns", "web", "pdi.b"), Some(false));
        assert_eq!(t.check("ns", "other", "pdi.a"), None, "another instance's token is not this one's");
        t.learn("ns", "none", None);
        assert_eq!(t.check("ns", "none", "pdi.a"), Some(false));
    }
}
