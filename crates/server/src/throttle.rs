//! Staff sign-in throttling, by account (the e-mail typed) and by client address. Each key may
//! fail a few times freely; then every failure locks it for twice as long as the last, up to
//! a ceiling. While locked, even the right password is refused without being checked, so
//! guessing costs the attacker time, not our cores. Tries in flight count too, so a burst sent
//! at once cannot slip past the limit before the first answers come back.
//!
//! The state lives in memory: a restart forgets it, and two servers keep their own (each then
//! allows the limit, which still makes guessing hopeless at argon2's pace).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failures an account may have before it is locked out.
pub const ACCOUNT_FAILURES_FREE: u32 = 5;
/// Failures one client address may have (across accounts) before it is locked out: higher
/// than an account's, since a café's staff share one address.
pub const ADDRESS_FAILURES_FREE: u32 = 20;
/// The first lock-out; each further failure doubles it.
pub const LOCKOUT_BASE: Duration = Duration::from_secs(30);
/// The longest lock-out.
pub const LOCKOUT_MAX: Duration = Duration::from_secs(15 * 60);
/// Failures are forgotten this long after the last one (once no lock-out runs).
pub const FAILURES_REMEMBERED: Duration = Duration::from_secs(15 * 60);
/// Keys tracked at once; past it, keys with nothing to remember are dropped.
const KEYS_MAX: usize = 100_000;

/// How sign-ins are throttled (tests shorten the lock-outs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignInLimits {
    pub account_failures_free: u32,
    pub address_failures_free: u32,
    pub lockout_base: Duration,
    pub lockout_max: Duration,
}

impl Default for SignInLimits {
    fn default() -> SignInLimits {
        SignInLimits {
            account_failures_free: ACCOUNT_FAILURES_FREE,
            address_failures_free: ADDRESS_FAILURES_FREE,
            lockout_base: LOCKOUT_BASE,
            lockout_max: LOCKOUT_MAX,
        }
    }
}

#[derive(Default)]
struct Strikes {
    failures: u32,
    in_flight: u32,
    locked_until: Option<Instant>,
    last_failure: Option<Instant>,
}

impl Strikes {
    fn forget_if_stale(&mut self, now: Instant) {
        let locked = self.locked_until.is_some_and(|until| until > now);
        let stale = self
            .last_failure
            .is_none_or(|at| now.saturating_duration_since(at) >= FAILURES_REMEMBERED);
        if !locked && stale && self.in_flight == 0 {
            *self = Strikes::default();
        }
    }

    /// How long until this key may try, if it may not now.
    fn wait(&self, free: u32, now: Instant) -> Option<Duration> {
        if let Some(until) = self.locked_until.filter(|until| *until > now) {
            return Some(until - now);
        }
        // Tries at once: what is left of the free failures, and one at a time after them.
        let at_once = free.saturating_sub(self.failures).max(1);
        (self.in_flight >= at_once).then_some(Duration::from_secs(1))
    }

    fn is_idle(&self, now: Instant) -> bool {
        self.in_flight == 0
            && self.locked_until.is_none_or(|until| until <= now)
            && self
                .last_failure
                .is_none_or(|at| now.saturating_duration_since(at) >= FAILURES_REMEMBERED)
    }
}

/// The throttle of one server.
pub struct SignInThrottle {
    limits: SignInLimits,
    keys: Mutex<HashMap<String, Strikes>>,
}

/// A try taken by [`SignInThrottle::begin`]; tell how it went with [`Attempt::finish`]. Dropped
/// unfinished (the client went away), it counts as neither.
pub struct Attempt {
    throttle: Arc<SignInThrottle>,
    keys: [(String, u32); 2],
    finished: bool,
}

impl SignInThrottle {
    pub fn new(limits: SignInLimits) -> SignInThrottle {
        SignInThrottle {
            limits,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a try for `account` (the e-mail as typed) from `address`, or answers how long
    /// until one may be made.
    pub fn begin(
        self: &Arc<Self>,
        account: &str,
        address: std::net::IpAddr,
        now: Instant,
    ) -> Result<Attempt, Duration> {
        let keys = [
            (
                format!("account:{}", account.trim().to_lowercase()),
                self.limits.account_failures_free,
            ),
            (
                format!("address:{address}"),
                self.limits.address_failures_free,
            ),
        ];
        let mut strikes = self.keys.lock().expect("sign-in throttle lock");
        if strikes.len() + keys.len() > KEYS_MAX {
            strikes.retain(|_, entry| !entry.is_idle(now));
        }
        if strikes.len() + keys.len() > KEYS_MAX {
            // Still full (failures from very many addresses): keep only what holds a
            // lock-out or a try in flight, so memory stays bounded.
            strikes.retain(|_, entry| {
                entry.in_flight > 0 || entry.locked_until.is_some_and(|until| until > now)
            });
        }
        let mut wait = None;
        for (key, free) in &keys {
            let entry = strikes.entry(key.clone()).or_default();
            entry.forget_if_stale(now);
            wait = wait.max(entry.wait(*free, now));
        }
        if let Some(wait) = wait {
            return Err(wait);
        }
        for (key, _) in &keys {
            strikes.entry(key.clone()).or_default().in_flight += 1;
        }
        Ok(Attempt {
            throttle: Arc::clone(self),
            keys,
            finished: false,
        })
    }

    fn lockout(&self, failures: u32, free: u32) -> Duration {
        let doublings = failures.saturating_sub(free).min(20);
        self.limits
            .lockout_base
            .saturating_mul(1 << doublings)
            .min(self.limits.lockout_max)
    }

    fn end(&self, keys: &[(String, u32); 2], succeeded: Option<bool>, now: Instant) {
        let mut strikes = self.keys.lock().expect("sign-in throttle lock");
        for (index, (key, free)) in keys.iter().enumerate() {
            let Some(entry) = strikes.get_mut(key) else {
                continue;
            };
            entry.in_flight = entry.in_flight.saturating_sub(1);
            match succeeded {
                // The account is its owner's again; the address keeps its record (an attacker
                // with one account of their own must not wash their address clean with it).
                Some(true) if index == 0 => *entry = Strikes::default(),
                Some(false) => {
                    entry.failures = entry.failures.saturating_add(1);
                    entry.last_failure = Some(now);
                    if entry.failures >= *free {
                        entry.locked_until = Some(now + self.lockout(entry.failures, *free));
                    }
                }
                _ => {}
            }
        }
    }
}

impl Attempt {
    /// Records how the try went.
    pub fn finish(mut self, succeeded: bool, now: Instant) {
        self.finished = true;
        self.throttle.end(&self.keys, Some(succeeded), now);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.finished {
            self.throttle.end(&self.keys, None, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn throttle() -> Arc<SignInThrottle> {
        Arc::new(SignInThrottle::new(SignInLimits::default()))
    }

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    fn fail(throttle: &Arc<SignInThrottle>, account: &str, address: IpAddr, now: Instant) {
        throttle
            .begin(account, address, now)
            .expect("may try")
            .finish(false, now);
    }

    #[test]
    fn five_failures_then_a_lockout_that_doubles() {
        let throttle = throttle();
        let start = Instant::now();
        for _ in 0..ACCOUNT_FAILURES_FREE {
            fail(&throttle, "owner@cafe.test", HOME, start);
        }
        let wait = throttle
            .begin("Owner@Cafe.test ", HOME, start)
            .err()
            .expect("locked, whatever the case of the e-mail");
        assert_eq!(wait, LOCKOUT_BASE);
        assert!(throttle
            .begin(
                "owner@cafe.test",
                HOME,
                start + LOCKOUT_BASE - Duration::from_millis(1)
            )
            .is_err());
        let later = start + LOCKOUT_BASE;
        fail(&throttle, "owner@cafe.test", HOME, later);
        let wait = throttle
            .begin("owner@cafe.test", HOME, later)
            .err()
            .unwrap();
        assert_eq!(wait, LOCKOUT_BASE * 2, "the next lock-out is twice as long");
        // The right password after the lock-out: the account is its owner's again.
        let after = later + LOCKOUT_BASE * 2;
        throttle
            .begin("owner@cafe.test", HOME, after)
            .unwrap()
            .finish(true, after);
        for _ in 0..ACCOUNT_FAILURES_FREE - 1 {
            fail(&throttle, "owner@cafe.test", HOME, after);
        }
        assert!(throttle.begin("owner@cafe.test", HOME, after).is_ok());
    }

    #[test]
    fn lockouts_stop_at_the_ceiling() {
        let throttle = throttle();
        assert_eq!(throttle.lockout(5, 5), LOCKOUT_BASE);
        assert_eq!(throttle.lockout(6, 5), LOCKOUT_BASE * 2);
        assert_eq!(throttle.lockout(1_000, 5), LOCKOUT_MAX);
    }

    #[test]
    fn an_address_hammering_locks_itself_out_and_no_one_else() {
        let throttle = throttle();
        let now = Instant::now();
        for index in 0..ADDRESS_FAILURES_FREE {
            fail(&throttle, &format!("guess{index}@cafe.test"), HOME, now);
        }
        assert!(throttle.begin("someone@cafe.test", HOME, now).is_err());
        assert!(
            throttle.begin("someone@cafe.test", OTHER, now).is_ok(),
            "another address, another account"
        );
    }

    #[test]
    fn tries_in_flight_count_against_the_limit() {
        let throttle = throttle();
        let now = Instant::now();
        let tries: Vec<_> = (0..ACCOUNT_FAILURES_FREE)
            .map(|_| throttle.begin("owner@cafe.test", HOME, now).unwrap())
            .collect();
        assert!(
            throttle.begin("owner@cafe.test", HOME, now).is_err(),
            "a sixth at once waits"
        );
        drop(tries);
        assert!(
            throttle.begin("owner@cafe.test", HOME, now).is_ok(),
            "abandoned tries count as nothing"
        );
    }

    #[test]
    fn failures_are_forgotten_after_a_while() {
        let throttle = throttle();
        let now = Instant::now();
        for _ in 0..ACCOUNT_FAILURES_FREE - 1 {
            fail(&throttle, "owner@cafe.test", HOME, now);
        }
        let later = now + FAILURES_REMEMBERED;
        for _ in 0..ACCOUNT_FAILURES_FREE - 1 {
            fail(&throttle, "owner@cafe.test", HOME, later);
        }
        assert!(throttle.begin("owner@cafe.test", HOME, later).is_ok());
    }
}
