//! What was last sent to the API server for objects that no watch of this
//! process shows (a pool's prepull DaemonSet, a tenant's VPN access to its
//! claimed warm pods): the same desired object is not sent again for a
//! while. Sending it again after [`Sent::AGAIN`] repairs drift (someone
//! deleted or changed it) without a watch. Bounded: the oldest entries go
//! first past [`Sent::MAX`].

use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Sent(Mutex<HashMap<String, (Option<Value>, Instant)>>);

impl Sent {
    /// How long a send is trusted before the same object is sent again.
    pub const AGAIN: Duration = Duration::from_secs(60);
    /// Most entries remembered.
    pub const MAX: usize = 4096;

    /// Whether `desired` (None: absent) was sent for `key` less than
    /// [`Sent::AGAIN`] ago.
    pub fn fresh(&self, key: &str, desired: &Option<Value>) -> bool {
        let sent = self.0.lock().unwrap_or_else(|e| e.into_inner());
        sent.get(key).is_some_and(|(v, at)| v == desired && at.elapsed() < Self::AGAIN)
    }

    /// Notes that `desired` was sent for `key` now.
    pub fn sent(&self, key: &str, desired: Option<Value>) {
        let mut sent = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if sent.len() >= Self::MAX && !sent.contains_key(key) {
            sent.retain(|_, (_, at)| at.elapsed() < Self::AGAIN);
            if sent.len() >= Self::MAX
                && let Some(oldest) = sent.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| k.clone())
            {
                sent.remove(&oldest);
            }
        }
        sent.insert(key.to_string(), (desired, Instant::now()));
    }

    /// Forgets `key` (its object is gone, or a send failed).
    pub fn forget(&self, key: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_same_object_is_not_sent_twice_and_a_change_is() {
        let s = Sent::default();
        let a = Some(json!({"a": 1}));
        assert!(!s.fresh("k", &a));
        s.sent("k", a.clone());
        assert!(s.fresh("k", &a));
        assert!(!s.fresh("k", &Some(json!({"a": 2}))), "a change is sent");
        assert!(!s.fresh("k", &None), "so is a deletion");
        s.forget("k");
        assert!(!s.fresh("k", &a));
    }

    #[test]
    fn it_stays_bounded() {
        let s = Sent::default();
        for i in 0..Sent::MAX + 10 {
            s.sent(&i.to_string(), None);
        }
        assert!(s.0.lock().unwrap().len() <= Sent::MAX);
        assert!(s.fresh(&(Sent::MAX + 9).to_string(), &None), "the newest is kept");
    }
}
