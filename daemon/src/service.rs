//! What mfad does, without the bus: verify a code, run an enrollment from
//! start to confirmed first code, recovery codes, import, reset. Each
//! operation on a user runs under that user's lock, so that concurrent
//! attempts see each other's effects (one code, one success).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use pam_mfa_config::schema::{Config, LimitScope, Limits, Ranged};
use pam_mfa_config::username::Username;
use pam_mfa_config::wire::VerifyOutcome;
use zeroize::Zeroizing;

use crate::ga_import::GoogleAuthenticator;
use crate::limits;
use crate::random::Random;
use crate::recovery;
use crate::store::{Record, Remembered, Store, StoreError, FORMAT_VERSION};
use crate::totp::{self, Check, Params};
use crate::uri;

/// Bytes of a new TOTP secret: 160 bits, as RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;

/// The answer to a code check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub outcome: VerifyOutcome,
    /// Seconds until a lockout ends (0 when not locked).
    pub retry_after: u64,
}

/// Why an enrollment step was refused; each becomes a D-Bus error name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Active since this unix time; replacing needs `replace` (and proof).
    AlreadyEnrolled {
        since: u64,
    },
    /// Replacing needs a current code or a recovery code.
    ProofRequired,
    /// The proof given was not a valid current or recovery code.
    ProofRefused {
        outcome: VerifyOutcome,
        retry_after: u64,
    },
    NotEnrolled,
    NoPendingEnrollment,
    PendingExpired,
    /// The first code was wrong; the pending enrollment stays.
    WrongCode {
        tries_left: u32,
    },
    /// Too many wrong first codes: the pending enrollment was dropped.
    TooManyTries,
    /// The google-authenticator file could not be used.
    BadImport(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::AlreadyEnrolled { since } => write!(
                f,
                "already enrolled since {since} (unix time); replacing needs --replace and a current code or a recovery code, or an administrator's reset"
            ),
            Refusal::ProofRequired => {
                f.write_str("replacing an enrollment needs a current code or a recovery code")
            }
            Refusal::ProofRefused { outcome: VerifyOutcome::LockedOut, retry_after } => {
                write!(f, "too many wrong codes: try again in {retry_after} seconds")
            }
            Refusal::ProofRefused { .. } => {
                f.write_str("that is not a current code or an unused recovery code")
            }
            Refusal::NotEnrolled => f.write_str("not enrolled"),
            Refusal::NoPendingEnrollment => {
                f.write_str("no enrollment was started (or it was already confirmed)")
            }
            Refusal::PendingExpired => {
                f.write_str("the enrollment expired before it was confirmed: start again")
            }
            Refusal::WrongCode { tries_left } => write!(
                f,
                "wrong code ({tries_left} tries left); check that the phone's clock is right"
            ),
            Refusal::TooManyTries => {
                f.write_str("too many wrong codes: the enrollment was dropped; start again")
            }
            Refusal::BadImport(e) => write!(f, "cannot import: {e}"),
        }
    }
}

/// Failures of the service itself (not of the user).
#[derive(Debug)]
pub enum ServiceError {
    Store(StoreError),
    /// The user's record exists but cannot be used.
    BadRecord(String),
    Random(std::io::Error),
    /// The request was refused (the user's doing, not mfad's).
    Refused(Refusal),
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceError::Store(e) => write!(f, "{e}"),
            ServiceError::BadRecord(e) => write!(f, "unusable enrollment: {e}"),
            ServiceError::Random(e) => write!(f, "no randomness from the OS: {e}"),
            ServiceError::Refused(r) => write!(f, "{r}"),
        }
    }
}

impl std::error::Error for ServiceError {}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        ServiceError::Store(e)
    }
}

impl From<Refusal> for ServiceError {
    fn from(r: Refusal) -> Self {
        ServiceError::Refused(r)
    }
}

/// A started enrollment waiting for its first code (memory only: a
/// restart of mfad drops it, and the user starts again).
struct Pending {
    secret: Zeroizing<Vec<u8>>,
    params: Params,
    expires_at: u64,
    tries_left: u32,
}

/// What `begin` hands back: the URI (once) and how the app will name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub uri: Zeroizing<String>,
    pub account: String,
    pub expires_in: u64,
}

/// New recovery codes (shown once), their salt and their hashes (stored).
type RecoverySet = (Vec<Zeroizing<String>>, String, Vec<String>);

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
        use pam_mfa_config::wire::context as keys;
        use sha2::Digest;
        let key = context.get(keys::SSH_KEY).filter(|k| !k.is_empty())?;
        let rhost = context.get(keys::RHOST).filter(|r| !r.is_empty())?;
        let hash = sha2::Sha256::digest(key.as_bytes());
        Some(Device {
            key: uri::hex(&hash),
            rhost: rhost.clone(),
            service: context.get(keys::SERVICE).cloned().unwrap_or_default(),
        })
    }

    fn is(&self, r: &Remembered) -> bool {
        !r.key.is_empty() && r.key == self.key && r.rhost == self.rhost && r.service == self.service
    }
}

/// What `status` tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub enrolled_at: u64,
    pub recovery_left: u32,
    pub locked_for: u64,
}

pub struct Service {
    config: Config,
    store: Store,
    random: Box<dyn Random>,
    host: String,
    locks: Mutex<HashMap<Username, Weak<Mutex<()>>>>,
    pending: Mutex<HashMap<Username, Pending>>,
}

/// Addresses whose failures a record keeps under `scope = "user+address"`.
const MAX_ADDRESSES: usize = 256;

/// The record's limits: the config's, or the user's imported ones.
fn limits_of(config: &Config, record: &Record) -> Limits {
    let mut limits = config.limits.clone();
    if let Some(n) = record.max_failures {
        limits.max_failures = Ranged::clamped(n);
    }
    if let Some(s) = record.lockout_seconds {
        limits.lockout_seconds = Ranged::clamped(s);
    }
    limits
}

impl Service {
    pub fn new(config: Config, store: Store, random: Box<dyn Random>, host: &str) -> Service {
        Service {
            config,
            store,
            random,
            host: host.to_string(),
            locks: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The host name shown in URIs and to approvers.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `n` secret random bytes.
    pub fn random_bytes(&self, n: usize) -> Result<Vec<u8>, ServiceError> {
        let mut bytes = vec![0u8; n];
        self.random.fill(&mut bytes).map_err(ServiceError::Random)?;
        Ok(bytes)
    }

    /// The lock that serialises all work on one user's record.
    fn user_lock(&self, user: &Username) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lock) = locks.get(user).and_then(Weak::upgrade) {
            return lock;
        }
        locks.retain(|_, weak| weak.strong_count() > 0);
        let lock = Arc::new(Mutex::new(()));
        locks.insert(user.clone(), Arc::downgrade(&lock));
        lock
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<Username, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_enrolled(&self, user: &Username) -> Result<bool, ServiceError> {
        Ok(self.store.load(user)?.is_some())
    }

    /// Checks `code` (a current code or a recovery code) for `user` at time
    /// `now`. A success is on disk before this returns, so the same step or
    /// recovery code can never be accepted twice.
    pub fn verify(&self, user: &Username, code: &str, now: u64) -> Result<Verdict, ServiceError> {
        self.verify_from(user, code, "", None, now)
    }

    /// [`Service::verify`] for a login from remote host `rhost` (may be
    /// empty; it counts under `[limits] scope = "user+address"`) and
    /// `device` (an SSH key, address and service; `None` for anything
    /// else): with `[remember] seconds`, a code (never a recovery code)
    /// remembers the device.
    pub fn verify_from(
        &self,
        user: &Username,
        code: &str,
        rhost: &str,
        device: Option<&Device>,
        now: u64,
    ) -> Result<Verdict, ServiceError> {
        let lock = self.user_lock(user);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mut record) = self.store.load(user)? else {
            return Ok(Verdict { outcome: VerifyOutcome::NotEnrolled, retry_after: 0 });
        };
        let verdict = self.check_and_record(&mut record, code, rhost, now)?;
        let keep = self.config.remember.seconds.get();
        if let Some(device) =
            device.filter(|_| verdict.outcome == VerifyOutcome::Accepted && keep > 0)
        {
            record.remembered.retain(|r| r.until > now && !device.is(r));
            record.remembered.push(Remembered {
                rhost: device.rhost.clone(),
                until: now + keep,
                key: device.key.clone(),
                service: device.service.clone(),
            });
            // Bounded: the oldest go first.
            let excess = record.remembered.len().saturating_sub(32);
            record.remembered.drain(..excess);
        }
        if verdict.outcome.is_success() && record.push_blocked_since != 0 {
            // A code login: the user is back in control of the account.
            tracing::info!(user = %user, "push-unblocked-by-code-login");
            record.push_blocked_since = 0;
        }
        if verdict.outcome.is_success() {
            // The used step or recovery code must be on disk before success.
            self.store.save(user, &record)?;
        } else if verdict.outcome != VerifyOutcome::LockedOut {
            // A counted failure: complete on disk, its directory entry
            // synced with the next durable write.
            self.store.save_atomic(user, &record)?;
        }
        Ok(verdict)
    }

    /// The verification rules applied to `record` in memory (the caller
    /// saves), failures counted for the user or for the user and `rhost`
    /// (`[limits] scope`).
    fn check_and_record(
        &self,
        record: &mut Record,
        code: &str,
        rhost: &str,
        now: u64,
    ) -> Result<Verdict, ServiceError> {
        let address = (self.config.limits.scope == LimitScope::UserAddress)
            .then(|| limits::address_key(rhost));
        let state = match &address {
            Some(key) => record.limits_by_address.get(key).copied().unwrap_or_default(),
            None => record.limits,
        };
        if let Some(left) = limits::locked_for(&state, now) {
            return Ok(Verdict { outcome: VerifyOutcome::LockedOut, retry_after: left });
        }
        let params = record.params().map_err(ServiceError::BadRecord)?;
        let secret = Zeroizing::new(record.secret_bytes().map_err(ServiceError::BadRecord)?);
        let skew = record.skew.unwrap_or(self.config.totp.skew.get()).min(10);
        let mut outcome = match totp::check(&secret, params, code, now, skew, record.last_step) {
            Check::Accepted { step } => {
                record.last_step = Some(step);
                VerifyOutcome::Accepted
            }
            Check::Replayed => VerifyOutcome::Replayed,
            Check::Rejected => VerifyOutcome::Rejected,
        };
        if outcome == VerifyOutcome::Rejected {
            if let Some(i) = recovery::find(&record.recovery, &record.recovery_salt, code) {
                record.recovery.remove(i);
                outcome = VerifyOutcome::RecoveryAccepted;
            }
        }
        let state = if outcome.is_success() {
            limits::after_success()
        } else {
            limits::after_failure(&state, &limits_of(&self.config, record), now)
        };
        match address {
            Some(key) => {
                let by_address = &mut record.limits_by_address;
                if state == limits::LimitState::default() {
                    by_address.remove(&key);
                } else {
                    by_address.insert(key, state);
                }
                // Bounded: addresses that stopped counting go first, then
                // the lockouts that end soonest.
                if by_address.len() > MAX_ADDRESSES {
                    by_address.retain(|_, s| s.failures > 0 || s.locked_until > now);
                }
                while by_address.len() > MAX_ADDRESSES {
                    let first = by_address.iter().min_by_key(|(_, s)| s.locked_until);
                    let Some(key) = first.map(|(k, _)| k.clone()) else { break };
                    by_address.remove(&key);
                }
            }
            None => record.limits = state,
        }
        let retry_after = limits::locked_for(&state, now).unwrap_or(0);
        Ok(Verdict { outcome, retry_after })
    }

    /// Checks the proof needed to replace an enrollment, saving its effect
    /// (a used code, a counted failure) either way.
    fn require_proof(
        &self,
        user: &Username,
        record: &mut Record,
        proof: &str,
        now: u64,
    ) -> Result<(), ServiceError> {
        if proof.is_empty() {
            return Err(Refusal::ProofRequired.into());
        }
        let verdict = self.check_and_record(record, proof, "", now)?;
        self.store.save(user, record)?;
        if verdict.outcome.is_success() {
            Ok(())
        } else {
            Err(Refusal::ProofRefused {
                outcome: verdict.outcome,
                retry_after: verdict.retry_after,
            }
            .into())
        }
    }

    /// Whether a new enrollment may replace `user`'s active one, if any:
    /// only when asked to (`replace`) and, unless `admin`, with a current or
    /// recovery code as `proof`. The caller holds the user's lock.
    fn may_enroll(
        &self,
        user: &Username,
        replace: bool,
        proof: &str,
        admin: bool,
        now: u64,
    ) -> Result<(), ServiceError> {
        let Some(mut record) = self.store.load(user)? else {
            return Ok(());
        };
        if !replace {
            return Err(Refusal::AlreadyEnrolled { since: record.enrolled_at }.into());
        }
        if !admin {
            self.require_proof(user, &mut record, proof, now)?;
        }
        Ok(())
    }

    /// Starts an enrollment: a pending secret that becomes active only when
    /// [`Service::confirm`] sees a right code from it. An active enrollment
    /// stays untouched until then. Replacing one needs `replace`, and unless
    /// `admin`, a current or recovery code as `proof`.
    pub fn begin(
        &self,
        user: &Username,
        replace: bool,
        proof: &str,
        admin: bool,
        now: u64,
    ) -> Result<Started, ServiceError> {
        let lock = self.user_lock(user);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        self.may_enroll(user, replace, proof, admin, now)?;
        let mut secret = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        self.random.fill(&mut secret).map_err(ServiceError::Random)?;
        let totp = &self.config.totp;
        let params = Params {
            algorithm: totp.algorithm,
            digits: u8::try_from(totp.digits.get()).unwrap_or(6),
            period: totp.period.get(),
        };
        let account = format!("{user}@{}", self.host);
        let uri = Zeroizing::new(uri::otpauth(
            self.config.issuer.as_str(),
            &account,
            &uri::base32(&secret),
            params,
        ));
        let expires_in = self.config.enroll.pending_seconds.get();
        let tries = u32::try_from(self.config.enroll.confirm_tries.get()).unwrap_or(5);
        let mut pending = self.pending();
        pending.retain(|_, p| p.expires_at > now);
        pending.insert(
            user.clone(),
            Pending {
                secret,
                params,
                expires_at: now.saturating_add(expires_in),
                tries_left: tries,
            },
        );
        Ok(Started { uri, account, expires_in })
    }

    /// Confirms a started enrollment with its first code: makes it active
    /// (replacing any old one) and returns new recovery codes, once.
    pub fn confirm(
        &self,
        user: &Username,
        code: &str,
        now: u64,
    ) -> Result<Vec<Zeroizing<String>>, ServiceError> {
        let lock = self.user_lock(user);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut pending = self.pending();
        let Some(entry) = pending.get_mut(user) else {
            return Err(Refusal::NoPendingEnrollment.into());
        };
        if entry.expires_at <= now {
            pending.remove(user);
            return Err(Refusal::PendingExpired.into());
        }
        let skew = self.config.totp.skew.get();
        let Check::Accepted { step } =
            totp::check(&entry.secret, entry.params, code, now, skew, None)
        else {
            entry.tries_left = entry.tries_left.saturating_sub(1);
            if entry.tries_left == 0 {
                pending.remove(user);
                return Err(Refusal::TooManyTries.into());
            }
            return Err(Refusal::WrongCode { tries_left: entry.tries_left }.into());
        };
        let (codes, salt, hashes) = self.new_recovery_set()?;
        let record = Record {
            version: FORMAT_VERSION,
            secret: uri::base32(&entry.secret),
            algorithm: entry.params.algorithm.as_str().into(),
            digits: entry.params.digits,
            period: entry.params.period,
            enrolled_at: now,
            // The confirming code is used: it cannot also sign in.
            last_step: Some(step),
            limits: limits::LimitState::default(),
            skew: None,
            max_failures: None,
            lockout_seconds: None,
            recovery_salt: salt,
            recovery: hashes,
            remembered: Vec::new(),
            push_blocked_since: 0,
            limits_by_address: Default::default(),
        };
        self.store.save(user, &record)?;
        pending.remove(user);
        Ok(codes)
    }

    /// A fresh set of recovery codes: (codes, salt, hashes).
    fn new_recovery_set(&self) -> Result<RecoverySet, ServiceError> {
        let codes = recovery::generate(self.random.as_ref()).map_err(ServiceError::Random)?;
        let (salt, hashes) = self.salted_hashes(&codes)?;
        Ok((codes, salt, hashes))
    }

    /// A fresh salt and the salted hashes of `codes` (what the store keeps).
    fn salted_hashes(
        &self,
        codes: &[Zeroizing<String>],
    ) -> Result<(String, Vec<String>), ServiceError> {
        let mut salt = [0u8; 16];
        self.random.fill(&mut salt).map_err(ServiceError::Random)?;
        let salt = uri::hex(&salt);
        let hashes = codes
            .iter()
            .filter_map(|c| recovery::normalize(c))
            .map(|c| recovery::hash(&salt, &c))
            .collect();
        Ok((salt, hashes))
    }

    /// Replaces the recovery codes; unless `admin`, after a current code
    /// (a recovery code cannot renew the set it belongs to).
    pub fn new_recovery_codes(
        &self,
        user: &Username,
        proof: &str,
        admin: bool,
        now: u64,
    ) -> Result<Vec<Zeroizing<String>>, ServiceError> {
        let lock = self.user_lock(user);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mut record) = self.store.load(user)? else {
            return Err(Refusal::NotEnrolled.into());
        };
        if !admin {
            if recovery::normalize(proof).is_some() && !proof.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Refusal::ProofRequired.into());
            }
            self.require_proof(user, &mut record, proof, now)?;
        }
        let (codes, salt, hashes) = self.new_recovery_set()?;
        record.recovery_salt = salt;
        record.recovery = hashes;
        self.store.save(user, &record)?;
        Ok(codes)
    }

    /// Enrolls from a `~/.google_authenticator` file: same secret (the app
    /// entry keeps working), its window and rate limit, its scratch codes as
    /// recovery codes. Replacing follows the rules of [`Service::begin`].
    /// Returns how many scratch codes became recovery codes.
    pub fn import(
        &self,
        user: &Username,
        file: &GoogleAuthenticator,
        replace: bool,
        proof: &str,
        admin: bool,
        now: u64,
    ) -> Result<u32, ServiceError> {
        let lock = self.user_lock(user);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        self.may_enroll(user, replace, proof, admin, now)?;
        let (salt, recovery) = self.salted_hashes(&file.scratch_codes)?;
        let count = u32::try_from(recovery.len()).unwrap_or(u32::MAX);
        let record = Record {
            version: FORMAT_VERSION,
            secret: uri::base32(&file.secret),
            algorithm: "SHA1".into(),
            digits: 6,
            period: file.period,
            enrolled_at: now,
            // Steps google-authenticator recorded as used stay refused.
            last_step: file.last_used_step,
            limits: limits::LimitState::default(),
            skew: file.skew,
            max_failures: file.rate_limit.map(|(n, _)| n),
            lockout_seconds: file.rate_limit.map(|(_, s)| s),
            recovery_salt: salt,
            recovery,
            remembered: Vec::new(),
            push_blocked_since: 0,
            limits_by_address: Default::default(),
        };
        self.store.save(user, &record)?;
        Ok(count)
    }

    pub fn status(&self, user: &Username, now: u64) -> Result<Option<Status>, ServiceError> {
        Ok(self.store.load(user)?.map(|record| Status {
            enrolled_at: record.enrolled_at,
            recovery_left: u32::try_from(record.recovery.len()).unwrap_or(u32::MAX),
            locked_for: std::iter::once(&record.limits)
                .chain(record.limits_by_address.values())
                .filter_map(|s| limits::locked_for(s, now))
                .max()
                .unwrap_or(0),
        }))
    }

    /// Whether `device` is remembered for `user` at `now` (and remembering is on).
    pub fn is_remembered(
        &self,
        user: &Username,
        device: &Device,
        now: u64,
    ) -> Result<bool, ServiceError> {
        if self.config.remember.seconds.get() == 0 {
            return Ok(false);
        }
        Ok(self
            .store
            .load(user)?
            .is_some_and(|r| r.remembered.iter().any(|d| device.is(d) && d.until > now)))
    }

    /// Forgets every remembered address of `user`; returns how many there were.
    pub fn forget_devices(&self, user: &Username, now: u64) -> Result<u32, ServiceError> {
        let lock = self.user_lock(user);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mut record) = self.store.load(user)? else {
            return Err(Refusal::NotEnrolled.into());
        };
        let count = record.remembered.iter().filter(|r| r.until > now).count();
        record.remembered.clear();
        self.store.save(user, &record)?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    /// Since when push requests of `user` are blocked (after a "not me"
    /// report); `None` when they are not.
    pub fn push_blocked(&self, user: &Username) -> Result<Option<u64>, ServiceError> {
        Ok(self.store.load(user)?.map(|r| r.push_blocked_since).filter(|since| *since != 0))
    }

    /// Blocks (`Some(now)`) or unblocks (`None`) push requests of `user`;
    /// returns whether they were blocked before.
    pub fn set_push_blocked(
        &self,
        user: &Username,
        since: Option<u64>,
    ) -> Result<bool, ServiceError> {
        let lock = self.user_lock(user);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mut record) = self.store.load(user)? else {
            return Err(Refusal::NotEnrolled.into());
        };
        let was = record.push_blocked_since != 0;
        // 0 means "not blocked": a block at time 0 is kept as 1.
        record.push_blocked_since = since.map_or(0, |t| t.max(1));
        self.store.save(user, &record)?;
        Ok(was)
    }

    /// Whether an enrollment is waiting for its first code.
    pub fn has_pending(&self, user: &Username, now: u64) -> bool {
        self.pending().get(user).is_some_and(|p| p.expires_at > now)
    }

    /// All enrolled users with the time they enrolled.
    pub fn list(&self) -> Result<Vec<(Username, u64)>, ServiceError> {
        let mut out = Vec::new();
        for user in self.store.users()? {
            match self.store.load(&user) {
                Ok(Some(record)) => out.push((user, record.enrolled_at)),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(user = %user, error = %e, "skipping unreadable store file")
                }
            }
        }
        Ok(out)
    }

    /// Removes `user`'s enrollment (and any pending one); `false` when there was none.
    pub fn reset(&self, user: &Username) -> Result<bool, ServiceError> {
        let lock = self.user_lock(user);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let had_pending = self.pending().remove(user).is_some();
        Ok(self.store.remove(user)? || had_pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    fn service(dir: &std::path::Path) -> Service {
        let mut config = Config::default();
        config.limits.max_failures = Ranged::clamped(3);
        config.enroll.pending_seconds = Ranged::clamped(300);
        config.enroll.confirm_tries = Ranged::clamped(2);
        Service::new(config, Store::open(&dir.join("state")).unwrap(), Box::new(OsRandom), "host")
    }

    fn secret_of(uri: &str) -> Vec<u8> {
        let secret = uri.split("secret=").nth(1).unwrap().split('&').next().unwrap();
        totp_rs::Secret::try_from_base32(secret).unwrap().as_ref().to_vec()
    }

    fn params() -> Params {
        Params { algorithm: pam_mfa_config::schema::Algorithm::Sha1, digits: 6, period: 30 }
    }

    fn enrolled(svc: &Service, user: &Username, t: u64) -> (Vec<u8>, Vec<Zeroizing<String>>) {
        let started = svc.begin(user, false, "", false, t).unwrap();
        let secret = secret_of(&started.uri);
        let codes = svc.confirm(user, &totp::code_at(&secret, params(), t), t).unwrap();
        (secret, codes)
    }

    fn wrong(code: &str) -> String {
        code.bytes().map(|b| char::from(b'0' + (b - b'0' + 5) % 10)).collect()
    }

    #[test]
    fn a_confirmed_enrollment_signs_in_once_per_code() {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path());
        let alice = Username::parse("alice").unwrap();
        let started = svc.begin(&alice, false, "", false, 1000).unwrap();
        assert!(started.uri.starts_with("otpauth://totp/pam-mfa:alice%40host?secret="));
        assert_eq!(started.account, "alice@host");
        assert!(!svc.is_enrolled(&alice).unwrap(), "not active before the first code");
        let secret = secret_of(&started.uri);
        let codes = svc.confirm(&alice, &totp::code_at(&secret, params(), 1000), 1000).unwrap();
        assert_eq!(codes.len(), recovery::COUNT);
        // The confirming code cannot sign in again; the next step's can, once.
        let first = totp::code_at(&secret, params(), 1000);
        assert_eq!(svc.verify(&alice, &first, 1000).unwrap().outcome, VerifyOutcome::Replayed);
        let next = totp::code_at(&secret, params(), 1030);
        assert_eq!(svc.verify(&alice, &next, 1030).unwrap().outcome, VerifyOutcome::Accepted);
        assert_eq!(svc.verify(&alice, &next, 1030).unwrap().outcome, VerifyOutcome::Replayed);
    }

    #[test]
    fn refusals_that_carry_a_count_put_it_first() {
        // Clients say these in the user's language from the count alone.
        use pam_mfa_config::wire::first_number;
        assert_eq!(first_number(&Refusal::WrongCode { tries_left: 4 }.to_string()), Some(4));
        let locked = Refusal::ProofRefused { outcome: VerifyOutcome::LockedOut, retry_after: 90 };
        assert_eq!(first_number(&locked.to_string()), Some(90));
        let refused = Refusal::ProofRefused { outcome: VerifyOutcome::Rejected, retry_after: 0 };
        assert_eq!(first_number(&refused.to_string()), None);
        assert_eq!(first_number(&Refusal::ProofRequired.to_string()), None);
    }

    #[test]
    fn a_recovery_code_works_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path());
        let bob = Username::parse("bob").unwrap();
        let (_, codes) = enrolled(&svc, &bob, 1000);
        let code = codes[3].to_lowercase();
        assert_eq!(svc.verify(&bob, &code, 2000).unwrap().outcome, VerifyOutcome::RecoveryAccepted);
        assert_eq!(svc.verify(&bob, &code, 2000).unwrap().outcome, VerifyOutcome::Rejected);
        assert_eq!(svc.status(&bob, 2000).unwrap().unwrap().recovery_left, 9);
        let stored = std::fs::read_to_string(dir.path().join("state/users/bob.toml")).unwrap();
        assert!(!stored.contains(codes[0].as_str()), "codes are stored hashed");
    }

    #[test]
    fn wrong_first_codes_are_bounded_and_expiry_ends_the_enrollment() {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path());
        let carol = Username::parse("carol").unwrap();
        let started = svc.begin(&carol, false, "", false, 0).unwrap();
        let right = totp::code_at(&secret_of(&started.uri), params(), 0);
        let err = svc.confirm(&carol, &wrong(&right), 0).unwrap_err();
        assert!(matches!(err, ServiceError::Refused(Refusal::WrongCode { tries_left: 1 })));
        let err = svc.confirm(&carol, &wrong(&right), 0).unwrap_err();
        assert!(matches!(err, ServiceError::Refused(Refusal::TooManyTries)));
        let err = svc.confirm(&carol, &right, 0).unwrap_err();
        assert!(matches!(err, ServiceError::Refused(Refusal::NoPendingEnrollment)));

        let started = svc.begin(&carol, false, "", false, 0).unwrap();
        let right = totp::code_at(&secret_of(&started.uri), params(), 300);
        let err = svc.confirm(&carol, &right, 300).unwrap_err();
        assert!(matches!(err, ServiceError::Refused(Refusal::PendingExpired)));
        assert!(!svc.is_enrolled(&carol).unwrap());
    }

    #[test]
    fn replacing_needs_a_current_code_and_an_abandoned_one_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path());
        let dave = Username::parse("dave").unwrap();
        let (secret, _) = enrolled(&svc, &dave, 1000);
        let err = svc.begin(&dave, false, "", false, 1100).unwrap_err();
        assert!(matches!(err, ServiceError::Refused(Refusal::AlreadyEnrolled { since: 1000 })));
        let err = svc.begin(&dave, true, "", false, 1100).unwrap_err();
        assert!(matches!(err, ServiceError::Refused(Refusal::ProofRequired)));
        let bad = wrong(&totp::code_at(&secret, params(), 1100));
        let err = svc.begin(&dave, true, &bad, false, 1100).unwrap_err();
        assert!(matches!(err, ServiceError::Refused(Refusal::ProofRefused { .. })));
        // With a current code a replacement starts, and is then abandoned:
        let proof = totp::code_at(&secret, params(), 1100);
        svc.begin(&dave, true, &proof, false, 1100).unwrap();
        let later = totp::code_at(&secret, params(), 1200);
        assert_eq!(svc.verify(&dave, &later, 1200).unwrap().outcome, VerifyOutcome::Accepted);
        // An administrator needs no proof.
        svc.begin(&dave, true, "", true, 1300).unwrap();
    }

    #[test]
    fn new_recovery_codes_need_a_current_code_and_retire_the_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path());
        let erin = Username::parse("erin").unwrap();
        let (secret, old) = enrolled(&svc, &erin, 1000);
        let err = svc.new_recovery_codes(&erin, old[0].as_str(), false, 1100).unwrap_err();
        assert!(matches!(err, ServiceError::Refused(Refusal::ProofRequired)));
        let proof = totp::code_at(&secret, params(), 1100);
        let new = svc.new_recovery_codes(&erin, &proof, false, 1100).unwrap();
        assert_eq!(svc.verify(&erin, &old[1], 1200).unwrap().outcome, VerifyOutcome::Rejected);
        assert_eq!(
            svc.verify(&erin, &new[1], 1200).unwrap().outcome,
            VerifyOutcome::RecoveryAccepted
        );
    }

    #[test]
    fn an_imported_file_keeps_the_secret_window_and_scratch_codes() {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path());
        let frank = Username::parse("frank").unwrap();
        let file = crate::ga_import::parse(
            "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n\" RATE_LIMIT 3 30\n\" WINDOW_SIZE 5\n\" TOTP_AUTH\n11223344\n",
        )
        .unwrap();
        assert_eq!(svc.import(&frank, &file, false, "", false, 10_000).unwrap(), 1);
        let code = totp::code_at(&file.secret, params(), 10_000 + 60);
        assert_eq!(svc.verify(&frank, &code, 10_000).unwrap().outcome, VerifyOutcome::Accepted);
        assert_eq!(
            svc.verify(&frank, "11223344", 10_000).unwrap().outcome,
            VerifyOutcome::RecoveryAccepted
        );
    }

    #[test]
    fn unknown_user_is_not_enrolled() {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path());
        let nobody = Username::parse("nobody").unwrap();
        assert_eq!(svc.verify(&nobody, "123456", 0).unwrap().outcome, VerifyOutcome::NotEnrolled);
        assert!(!svc.reset(&nobody).unwrap());
    }

    #[test]
    fn wrong_codes_lock_out_and_a_locked_user_is_not_checked() {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path());
        let bob = Username::parse("bob").unwrap();
        let (secret, _) = enrolled(&svc, &bob, 0);
        let right = totp::code_at(&secret, params(), 100);
        let bad = wrong(&right);
        for _ in 0..2 {
            assert_eq!(svc.verify(&bob, &bad, 100).unwrap().outcome, VerifyOutcome::Rejected);
        }
        let third = svc.verify(&bob, &bad, 100).unwrap();
        assert_eq!((third.outcome, third.retry_after), (VerifyOutcome::Rejected, 30));
        assert_eq!(svc.verify(&bob, &right, 100).unwrap().outcome, VerifyOutcome::LockedOut);
        let later = totp::code_at(&secret, params(), 131);
        assert_eq!(svc.verify(&bob, &later, 131).unwrap().outcome, VerifyOutcome::Accepted);
    }
}
