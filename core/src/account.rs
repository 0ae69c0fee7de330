//! One user's enrollment as the rules see it, and the rules that change
//! it: checking a code (replay, recovery codes, lockout, remembered
//! devices) and confirming a pending enrollment. Pure functions of
//! (account, input, now); a [`crate::storage::Storage`] runs each as one
//! atomic unit and keeps the result.

use std::collections::BTreeMap;

use pam_mfa_config::schema::{Algorithm, LimitScope, Limits, Ranged};
use pam_mfa_protocol::wire::VerifyOutcome;
use zeroize::Zeroizing;

use crate::limits::{self, LimitState};
use crate::recovery;
use crate::totp::{self, Check, Params};

/// Remembered devices kept per user; the oldest go first.
const MAX_REMEMBERED: usize = 32;

/// Addresses whose failures an account keeps under `scope = "user+address"`.
const MAX_ADDRESSES: usize = 256;

/// Everything known of one enrolled user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The TOTP secret, base32 without padding.
    pub secret: String,
    pub algorithm: String,
    pub digits: u8,
    pub period: u64,
    /// Unix time the enrollment became active.
    pub enrolled_at: u64,
    /// The last accepted time step: no step at or before it is accepted again.
    pub last_step: Option<u64>,
    pub limits: LimitState,
    /// Per-user steps of skew (imported from google-authenticator), else the config's.
    pub skew: Option<u64>,
    /// Per-user failures before lockout (imported RATE_LIMIT), else the config's.
    pub max_failures: Option<u64>,
    /// Per-user first lockout in seconds (imported RATE_LIMIT), else the config's.
    pub lockout_seconds: Option<u64>,
    pub recovery: RecoveryHashes,
    pub remembered: Vec<Remembered>,
    /// Unix time a push request was reported as "not me" (0: never, or
    /// cleared since).
    pub push_blocked_since: u64,
    /// Under `[limits] scope = "user+address"`: the failures of each
    /// address (see `limits::address_key`), bounded.
    pub limits_by_address: BTreeMap<String, LimitState>,
    /// Registered phones (passkeys) that may approve requests.
    pub phones: Vec<crate::passkey::Phone>,
}

impl Drop for Account {
    /// The secret is wiped from memory when the account goes.
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.secret.zeroize();
    }
}

/// The salted hashes of a user's unused recovery codes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryHashes {
    pub salt: String,
    pub hashes: Vec<String>,
}

/// A device that may skip the second factor until `until`: an SSH key (its
/// SHA-256, hex) from a remote address through a PAM service. An entry
/// without a key (from before keys were bound) matches nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    pub rhost: String,
    pub until: u64,
    pub key: String,
    pub service: String,
}

/// A device that may be remembered: the SSH key that authenticated (kept
/// as its SHA-256), the remote address and the PAM service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    key: String,
    rhost: String,
    service: String,
}

impl Device {
    /// The device of an attempt's context; `None` without a key or an address.
    pub fn of(context: &std::collections::HashMap<String, String>) -> Option<Device> {
        use pam_mfa_protocol::wire::context as keys;
        use sha2::Digest;
        let key = context.get(keys::SSH_KEY).filter(|k| !k.is_empty())?;
        let rhost = context.get(keys::RHOST).filter(|r| !r.is_empty())?;
        let hash = sha2::Sha256::digest(key.as_bytes());
        Some(Device {
            key: crate::uri::hex(&hash),
            rhost: rhost.clone(),
            service: context.get(keys::SERVICE).cloned().unwrap_or_default(),
        })
    }

    /// The SHA-256 of the SSH key, hex.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn rhost(&self) -> &str {
        &self.rhost
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// Whether `r` remembers this device (at any time).
    pub fn is(&self, r: &Remembered) -> bool {
        !r.key.is_empty() && r.key == self.key && r.rhost == self.rhost && r.service == self.service
    }
}

/// One code check: what was typed and where it came from.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub code: Zeroizing<String>,
    /// The remote host (may be empty); counts under `scope = "user+address"`.
    pub rhost: String,
    /// The PAM service (may be empty), for a store's audit.
    pub service: String,
    /// With `[remember] seconds`, a code (never a recovery code) remembers it.
    pub device: Option<Device>,
}

/// The settings a code check obeys (from the config).
#[derive(Debug, Clone)]
pub struct Rules {
    pub skew: u64,
    pub limits: Limits,
    pub scope: LimitScope,
    /// Seconds a device stays remembered after a code (0: never).
    pub remember_seconds: u64,
}

/// The answer to a code check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub outcome: VerifyOutcome,
    /// Seconds until a lockout ends (0 when not locked).
    pub retry_after: u64,
    /// This success ended a block of push requests (a "not me" report).
    pub unblocked: bool,
}

/// How much of a check's effect must survive a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Nothing changed.
    Unchanged,
    /// A counted failure: complete on disk, losing it to a power cut is harmless.
    Atomic,
    /// A used step or recovery code: on disk before success is answered.
    Durable,
}

impl Account {
    /// The TOTP parameters, checked (a hand-edited store can hold anything).
    pub fn params(&self) -> Result<Params, String> {
        let algorithm = Algorithm::from_name(&self.algorithm)
            .ok_or_else(|| format!("unknown algorithm {:?}", self.algorithm))?;
        if !(6..=8).contains(&self.digits) {
            return Err(format!("digits {} is not 6 to 8", self.digits));
        }
        if self.period == 0 || self.period > 3600 {
            return Err(format!("period {} is not 1 to 3600", self.period));
        }
        Ok(Params { algorithm, digits: self.digits, period: self.period })
    }

    /// The raw secret bytes.
    pub fn secret_bytes(&self) -> Result<Zeroizing<Vec<u8>>, String> {
        let secret = totp_rs::Secret::try_from_base32(&self.secret)
            .map_err(|_| "the secret is not valid base32".to_string())?;
        let bytes = Zeroizing::new(secret.as_ref().to_vec());
        if bytes.len() < 10 {
            return Err("the secret is shorter than 80 bits".into());
        }
        Ok(bytes)
    }

    /// Seconds left of the longest running lockout (of the user or of any address).
    pub fn locked_for(&self, now: u64) -> u64 {
        std::iter::once(&self.limits)
            .chain(self.limits_by_address.values())
            .filter_map(|s| limits::locked_for(s, now))
            .max()
            .unwrap_or(0)
    }

    /// Whether `device` is remembered at `now`.
    pub fn remembers(&self, device: &Device, now: u64) -> bool {
        self.remembered.iter().any(|d| device.is(d) && d.until > now)
    }

    /// The limits of this account: the rules', or the user's imported ones.
    fn limits(&self, rules: &Limits) -> Limits {
        let mut limits = rules.clone();
        if let Some(n) = self.max_failures {
            limits.max_failures = Ranged::clamped(n);
        }
        if let Some(s) = self.lockout_seconds {
            limits.lockout_seconds = Ranged::clamped(s);
        }
        limits
    }

    /// Checks `attempt` at `now` and records its effect on the account:
    /// the accepted step, the spent recovery code, the counted failure or
    /// lockout, the remembered device, the end of a push block. Returns
    /// the verdict and how durably the change must be kept.
    pub fn verify(
        &mut self,
        attempt: &Attempt,
        rules: &Rules,
        now: u64,
    ) -> Result<(Verdict, Durability), String> {
        let address =
            (rules.scope == LimitScope::UserAddress).then(|| limits::address_key(&attempt.rhost));
        let state = match &address {
            Some(key) => self.limits_by_address.get(key).copied().unwrap_or_default(),
            None => self.limits,
        };
        if let Some(left) = limits::locked_for(&state, now) {
            let verdict =
                Verdict { outcome: VerifyOutcome::LockedOut, retry_after: left, unblocked: false };
            return Ok((verdict, Durability::Unchanged));
        }
        let params = self.params()?;
        let secret = self.secret_bytes()?;
        let skew = self.skew.unwrap_or(rules.skew).min(10);
        let mut outcome =
            match totp::check(&secret, params, &attempt.code, now, skew, self.last_step) {
                Check::Accepted { step } => {
                    self.last_step = Some(step);
                    VerifyOutcome::Accepted
                }
                Check::Replayed => VerifyOutcome::Replayed,
                Check::Rejected => VerifyOutcome::Rejected,
            };
        if outcome == VerifyOutcome::Rejected {
            if let Some(i) =
                recovery::find(&self.recovery.hashes, &self.recovery.salt, &attempt.code)
            {
                self.recovery.hashes.remove(i);
                outcome = VerifyOutcome::RecoveryAccepted;
            }
        }
        let state = if outcome.is_success() {
            limits::after_success()
        } else {
            limits::after_failure(&state, &self.limits(&rules.limits), now)
        };
        match address {
            Some(key) => self.count_for_address(key, state, now),
            None => self.limits = state,
        }
        let retry_after = limits::locked_for(&state, now).unwrap_or(0);
        if outcome == VerifyOutcome::Accepted && rules.remember_seconds > 0 {
            if let Some(device) = &attempt.device {
                self.remember(device, now.saturating_add(rules.remember_seconds), now);
            }
        }
        let unblocked = outcome.is_success() && self.push_blocked_since != 0;
        if unblocked {
            // A code login: the user is back in control of the account.
            self.push_blocked_since = 0;
        }
        let durability =
            if outcome.is_success() { Durability::Durable } else { Durability::Atomic };
        Ok((Verdict { outcome, retry_after, unblocked }, durability))
    }

    fn count_for_address(&mut self, key: String, state: LimitState, now: u64) {
        let by_address = &mut self.limits_by_address;
        if state == LimitState::default() {
            by_address.remove(&key);
        } else {
            by_address.insert(key, state);
        }
        // Bounded: addresses that stopped counting go first, then the
        // lockouts that end soonest.
        if by_address.len() > MAX_ADDRESSES {
            by_address.retain(|_, s| s.failures > 0 || s.locked_until > now);
        }
        while by_address.len() > MAX_ADDRESSES {
            let first = by_address.iter().min_by_key(|(_, s)| s.locked_until);
            let Some(key) = first.map(|(k, _)| k.clone()) else { break };
            by_address.remove(&key);
        }
    }

    fn remember(&mut self, device: &Device, until: u64, now: u64) {
        self.remembered.retain(|r| r.until > now && !device.is(r));
        self.remembered.push(Remembered {
            rhost: device.rhost.clone(),
            until,
            key: device.key.clone(),
            service: device.service.clone(),
        });
        let excess = self.remembered.len().saturating_sub(MAX_REMEMBERED);
        self.remembered.drain(..excess);
    }
}

/// A started enrollment waiting for its first code.
#[derive(Debug, Clone)]
pub struct Pending {
    pub secret: Zeroizing<Vec<u8>>,
    pub params: Params,
    pub expires_at: u64,
    pub tries_left: u32,
}

/// What confirming a pending enrollment came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// Active now, with the recovery hashes given.
    Confirmed,
    NoPending,
    /// It expired before it was confirmed: gone.
    Expired,
    /// The code was wrong; the pending enrollment stays.
    WrongCode {
        tries_left: u32,
    },
    /// Too many wrong codes: the pending enrollment was dropped.
    TooManyTries,
}

/// What a pending enrollment does with a first code: `Ok(account)` to make
/// active, or `Err(confirmation)` with `keep` telling whether it stays.
pub fn confirm(
    pending: &mut Pending,
    code: &str,
    skew: u64,
    recovery: RecoveryHashes,
    now: u64,
) -> Result<Account, (Confirmation, bool)> {
    if pending.expires_at <= now {
        return Err((Confirmation::Expired, false));
    }
    let Check::Accepted { step } =
        totp::check(&pending.secret, pending.params, code, now, skew, None)
    else {
        pending.tries_left = pending.tries_left.saturating_sub(1);
        if pending.tries_left == 0 {
            return Err((Confirmation::TooManyTries, false));
        }
        return Err((Confirmation::WrongCode { tries_left: pending.tries_left }, true));
    };
    Ok(Account {
        secret: crate::uri::base32(&pending.secret),
        algorithm: pending.params.algorithm.as_str().into(),
        digits: pending.params.digits,
        period: pending.params.period,
        enrolled_at: now,
        // The confirming code is used: it cannot also sign in.
        last_step: Some(step),
        limits: LimitState::default(),
        skew: None,
        max_failures: None,
        lockout_seconds: None,
        recovery,
        remembered: Vec::new(),
        push_blocked_since: 0,
        limits_by_address: BTreeMap::new(),
        phones: Vec::new(),
    })
}
