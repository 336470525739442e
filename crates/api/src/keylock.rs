//! One request at a time per Idempotency-Key in this process: retries of
//! one start that arrive together wait for each other, so the second finds
//! the first's instance and replays it instead of racing it to the API
//! server (where each racing create of one name is charged to the tenant's
//! quota before it fails, and a full quota answers the losers 403).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Locks by key; an entry lives only while someone holds or waits for it.
#[derive(Default)]
pub struct KeyLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

/// Held while a keyed request runs; the next one with the key goes on when it drops.
pub struct Held<'a> {
    locks: &'a KeyLocks,
    key: String,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl KeyLocks {
    /// Waits until no other request with `key` runs in this process.
    pub async fn lock(&self, key: &str) -> Held<'_> {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner()).entry(key.to_string()).or_default().clone();
        Held { locks: self, key: key.to_string(), _guard: m.lock_owned().await }
    }

    /// Keys held or waited for (for tests).
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut map = self.locks.0.lock().unwrap_or_else(|e| e.into_inner());
        // Only the map and this guard's mutex hold it: nobody waits; forget it.
        if map.get(&self.key).is_some_and(|m| Arc::strong_count(m) <= 2) {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn same_key_requests_run_one_at_a_time_and_leave_nothing_behind() {
        let locks = Arc::new(KeyLocks::default());
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (locks, running) = (locks.clone(), running.clone());
            tasks.push(tokio::spawn(async move {
                let _held = locks.lock("k").await;
                assert_eq!(running.fetch_add(1, std::sync::atomic::Ordering::SeqCst), 0, "two at once");
                tokio::task::yield_now().await;
                running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(locks.is_empty());
    }
}
