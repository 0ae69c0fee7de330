//! Failure counting, lockout and back-off: pure functions of the user's
//! state, the limits and the time.

use pam_mfa_config::schema::Limits;

/// What the rate limiter remembers of one user (kept in the user's store file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitState {
    /// Consecutive failures since the last success or lockout.
    pub failures: u32,
    /// Lockouts since the last success: each doubles the next one.
    pub lockouts: u32,
    /// Unix time until which every attempt is refused unchecked.
    pub locked_until: u64,
}

/// Which failures count together under `[limits] scope = "user+address"`:
/// an IPv4 address; an IPv6 address by its /64 (one subscriber's network
/// has a /64 or more, so rotating addresses inside it gains nothing); any
/// other remote host name as given; no remote host as "local".
pub fn address_key(rhost: &str) -> String {
    match rhost.trim().parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => v4.to_string(),
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Err(_) if rhost.is_empty() => "local".to_string(),
        Err(_) => rhost.to_string(),
    }
}

/// Seconds left of a running lockout, if any.
pub fn locked_for(state: &LimitState, now: u64) -> Option<u64> {
    (state.locked_until > now).then(|| state.locked_until - now)
}

/// The state after a failed attempt at `now`.
pub fn after_failure(state: &LimitState, limits: &Limits, now: u64) -> LimitState {
    let failures = state.failures.saturating_add(1);
    if u64::from(failures) < limits.max_failures.get() {
        return LimitState { failures, ..*state };
    }
    let doubling = 1u64.checked_shl(state.lockouts.min(32)).unwrap_or(u64::MAX);
    let length =
        limits.lockout_seconds.get().saturating_mul(doubling).min(limits.lockout_max_seconds.get());
    LimitState {
        failures: 0,
        lockouts: state.lockouts.saturating_add(1),
        locked_until: now.saturating_add(length),
    }
}

/// The state after a success: everything forgiven.
pub fn after_success() -> LimitState {
    LimitState::default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pam_mfa_config::schema::Ranged;

    #[test]
    fn addresses_count_by_ipv4_address_and_ipv6_64() {
        assert_eq!(address_key("192.0.2.7"), "192.0.2.7");
        assert_eq!(address_key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(address_key("2001:db8::1"), "2001:db8:0:0::/64");
        assert_eq!(address_key("2001:db8::ffff:1"), "2001:db8:0:0::/64");
        assert_ne!(address_key("2001:db8:0:1::1"), address_key("2001:db8::1"));
        assert_eq!(address_key(""), "local");
        assert_eq!(address_key("bastion.example"), "bastion.example");
    }

    fn limits() -> Limits {
        Limits {
            max_failures: Ranged::clamped(3),
            lockout_seconds: Ranged::clamped(30),
            lockout_max_seconds: Ranged::clamped(100),
            scope: Default::default(),
        }
    }

    #[test]
    fn failures_below_the_limit_do_not_lock() {
        let s = after_failure(&after_failure(&LimitState::default(), &limits(), 0), &limits(), 0);
        assert_eq!(s.failures, 2);
        assert_eq!(locked_for(&s, 0), None);
    }

    #[test]
    fn enough_failures_lock_out_and_the_back_off_doubles_to_the_ceiling() {
        let mut s = LimitState::default();
        let mut now = 1000;
        let mut lengths = Vec::new();
        for _ in 0..4 {
            for _ in 0..3 {
                s = after_failure(&s, &limits(), now);
            }
            let left = locked_for(&s, now).expect("locked");
            lengths.push(left);
            now += left;
            assert_eq!(locked_for(&s, now), None, "lockout ends on time");
        }
        assert_eq!(lengths, vec![30, 60, 100, 100]);
    }

    #[test]
    fn success_forgives() {
        let s = LimitState { failures: 2, lockouts: 3, locked_until: 0 };
        assert_eq!(after_success(), LimitState::default());
        assert_ne!(s, after_success());
    }
}
