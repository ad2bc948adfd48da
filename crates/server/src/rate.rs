//! A rate limit per API key: a token bucket of `burst` requests refilled at
//! `requests_per_second`. Past it, `429 Too Many Requests` with `Retry-After`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys tracked at once; past it, idle buckets are forgotten.
const BUCKETS_MAX: usize = 100_000;

/// How many requests a key may make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per second per key; 0 turns the limit off.
    pub requests_per_second: u32,
    /// Requests a key may make at once after being idle.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            requests_per_second: 200,
            burst: 400,
        }
    }
}

struct Bucket {
    /// Tokens, in millionths of a request.
    micro_tokens: u64,
    refilled_at: Instant,
}

pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> RateLimiter {
        RateLimiter {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `key`'s bucket; when empty, how long until one is back.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.limit.requests_per_second == 0 {
            return Ok(());
        }
        let capacity = self.limit.burst.max(1) as u64 * 1_000_000;
        let per_second = self.limit.requests_per_second as u64;
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() >= BUCKETS_MAX && !buckets.contains_key(key) {
            let idle = Duration::from_secs(capacity / 1_000_000 / per_second + 1);
            buckets.retain(|_, bucket| now.duration_since(bucket.refilled_at) < idle);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            micro_tokens: capacity,
            refilled_at: now,
        });
        let elapsed_micros = now.duration_since(bucket.refilled_at).as_micros() as u64;
        bucket.micro_tokens = (bucket.micro_tokens + elapsed_micros * per_second).min(capacity);
        bucket.refilled_at = now;
        if bucket.micro_tokens >= 1_000_000 {
            bucket.micro_tokens -= 1_000_000;
            return Ok(());
        }
        let missing = 1_000_000 - bucket.micro_tokens;
        Err(Duration::from_micros(missing.div_ceil(per_second)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let limiter = RateLimiter::new(RateLimit {
            requests_per_second: 10,
            burst: 3,
        });
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take("k", start).is_ok());
        }
        let wait = limiter.take("k", start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(
            limiter.take("other", start).is_ok(),
            "keys have their own buckets"
        );
        assert!(limiter
            .take("k", start + Duration::from_millis(99))
            .is_err());
        assert!(limiter
            .take("k", start + Duration::from_millis(200))
            .is_ok());
    }

    #[test]
    fn zero_is_off() {
        let limiter = RateLimiter::new(RateLimit {
            requests_per_second: 0,
            burst: 0,
        });
        let now = Instant::now();
        assert!((0..10_000).all(|_| limiter.take("k", now).is_ok()));
    }
}
