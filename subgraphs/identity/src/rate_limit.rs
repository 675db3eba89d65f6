//! Fixed-window attempt counters, for slowing down password guessing per e-mail and per client
//! address. In memory: each replica counts its own attempts, which bounds guessing per replica.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts attempts per key within a window.
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    counts: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    /// Allows `limit` attempts per key per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window, counts: Mutex::new(HashMap::new()) }
    }

    /// Records an attempt for `key`; false when the key is over its limit.
    pub fn try_acquire(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if counts.len() > 100_000 {
            // Forget finished windows so the map cannot grow without bound.
            counts.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let entry = counts.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            return false;
        }
        entry.1 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        assert!(limiter.try_acquire("a"));
        assert!(limiter.try_acquire("a"));
        assert!(!limiter.try_acquire("a"));
        assert!(limiter.try_acquire("b"));
        let expired = RateLimiter::new(1, Duration::ZERO);
        assert!(expired.try_acquire("a"));
        assert!(expired.try_acquire("a"), "a new window starts once the old one ends");
    }
}
