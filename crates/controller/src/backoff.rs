//! Per-object retry delays after failed reconciles: doubling from 500 ms to a
//! minute, forgotten at the next success — so an object the API server keeps
//! refusing is not retried every few seconds for ever, and one that failed
//! once is retried at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

const FIRST: Duration = Duration::from_millis(500);
const MAX: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Failures(Mutex<HashMap<String, u32>>);

impl Failures {
    /// Notes one more failure of `key`; the delay before its next try.
    pub fn failed(&self, key: &str) -> Duration {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        FIRST.saturating_mul(1 << (*n - 1).min(7)).min(MAX)
    }

    /// `key` reconciled: its next failure starts from the first delay again.
    pub fn succeeded(&self, key: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_to_a_minute_and_reset_on_success() {
        let f = Failures::default();
        let delays: Vec<u64> = (0..9).map(|_| f.failed("a").as_millis() as u64).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]);
        assert_eq!(f.failed("b"), FIRST, "per object");
        f.succeeded("a");
        assert_eq!(f.failed("a"), FIRST);
    }
}
