//! What mfad does, without the bus: verify a code, enroll, reset. Each
//! operation on a user runs under that user's lock, so that concurrent
//! attempts see each other's effects (one code, one success).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use pam_mfa_config::schema::Config;
use pam_mfa_config::username::Username;
use pam_mfa_config::wire::VerifyOutcome;

use crate::limits;
use crate::store::{Record, Store, StoreError, FORMAT_VERSION};
use crate::totp::{self, Check};
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

/// Failures of the service itself (not of the user).
#[derive(Debug)]
pub enum ServiceError {
    Store(StoreError),
    /// The user's record exists but cannot be used.
    BadRecord(String),
    Random(std::io::Error),
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceError::Store(e) => write!(f, "{e}"),
            ServiceError::BadRecord(e) => write!(f, "unusable enrollment: {e}"),
            ServiceError::Random(e) => write!(f, "no randomness from the OS: {e}"),
        }
    }
}

impl std::error::Error for ServiceError {}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        ServiceError::Store(e)
    }
}

/// A source of secret randomness (the OS CSPRNG; tests may script it).
pub trait Random: Send + Sync {
    fn fill(&self, buf: &mut [u8]) -> std::io::Result<()>;
}

/// The kernel's CSPRNG.
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> std::io::Result<()> {
        use std::io::Read;
        std::fs::File::open("/dev/urandom")?.read_exact(buf)
    }
}

pub struct Service {
    config: Config,
    store: Store,
    random: Box<dyn Random>,
    locks: Mutex<HashMap<Username, Weak<Mutex<()>>>>,
}

impl Service {
    pub fn new(config: Config, store: Store, random: Box<dyn Random>) -> Service {
        Service {
            config,
            store,
            random,
            locks: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
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

    pub fn is_enrolled(&self, user: &Username) -> Result<bool, ServiceError> {
        Ok(self.store.load(user)?.is_some())
    }

    /// Checks `code` for `user` at time `now`. A success is on disk before
    /// this returns, so the same step can never be accepted twice.
    pub fn verify(&self, user: &Username, code: &str, now: u64) -> Result<Verdict, ServiceError> {
        let lock = self.user_lock(user);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mut record) = self.store.load(user)? else {
            return Ok(Verdict {
                outcome: VerifyOutcome::NotEnrolled,
                retry_after: 0,
            });
        };
        if let Some(left) = limits::locked_for(&record.limits, now) {
            return Ok(Verdict {
                outcome: VerifyOutcome::LockedOut,
                retry_after: left,
            });
        }
        let params = record.params().map_err(ServiceError::BadRecord)?;
        let secret = record.secret_bytes().map_err(ServiceError::BadRecord)?;
        let skew = self.config.totp.skew.get();
        let outcome = match totp::check(&secret, params, code, now, skew, record.last_step) {
            Check::Accepted { step } => {
                record.last_step = Some(step);
                record.limits = limits::after_success();
                VerifyOutcome::Accepted
            }
            Check::Replayed => VerifyOutcome::Replayed,
            Check::Rejected => VerifyOutcome::Rejected,
        };
        if outcome != VerifyOutcome::Accepted {
            record.limits = limits::after_failure(&record.limits, &self.config.limits, now);
        }
        self.store.save(user, &record)?;
        let retry_after = limits::locked_for(&record.limits, now).unwrap_or(0);
        Ok(Verdict {
            outcome,
            retry_after,
        })
    }

    /// Enrolls `user` with a fresh secret (replacing any enrollment) and
    /// returns the otpauth URI. Administrators only; the self-service flow
    /// with a confirmed first code builds on this.
    pub fn enroll(&self, user: &Username, host: &str, now: u64) -> Result<String, ServiceError> {
        let lock = self.user_lock(user);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut secret = [0u8; SECRET_BYTES];
        self.random
            .fill(&mut secret)
            .map_err(ServiceError::Random)?;
        let totp = &self.config.totp;
        let record = Record {
            version: FORMAT_VERSION,
            secret: uri::base32(&secret),
            algorithm: totp.algorithm.as_str().into(),
            digits: u8::try_from(totp.digits.get()).unwrap_or(6),
            period: totp.period.get(),
            enrolled_at: now,
            last_step: None,
            limits: limits::LimitState::default(),
        };
        self.store.save(user, &record)?;
        let account = format!("{user}@{host}");
        Ok(uri::otpauth(self.config.issuer.as_str(), &account, &record))
    }

    /// Removes `user`'s enrollment; `false` when there was none.
    pub fn reset(&self, user: &Username) -> Result<bool, ServiceError> {
        let lock = self.user_lock(user);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        Ok(self.store.remove(user)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pam_mfa_config::schema::Ranged;

    struct Fixed(u8);
    impl Random for Fixed {
        fn fill(&self, buf: &mut [u8]) -> std::io::Result<()> {
            buf.fill(self.0);
            Ok(())
        }
    }

    fn service(dir: &std::path::Path) -> Service {
        let mut config = Config::default();
        config.limits.max_failures = Ranged::clamped(3);
        Service::new(config, Store::open(dir).unwrap(), Box::new(Fixed(7)))
    }

    fn code_for(svc: &Service, user: &Username, t: u64) -> String {
        let rec = svc.store.load(user).unwrap().unwrap();
        totp::code_at(&rec.secret_bytes().unwrap(), rec.params().unwrap(), t)
    }

    #[test]
    fn enrolled_user_signs_in_once_per_code() {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path());
        let alice = Username::parse("alice").unwrap();
        let uri = svc.enroll(&alice, "host", 1000).unwrap();
        assert!(
            uri.starts_with("otpauth://totp/pam-mfa:alice%40host?secret="),
            "{uri}"
        );
        let code = code_for(&svc, &alice, 2000);
        assert_eq!(
            svc.verify(&alice, &code, 2000).unwrap().outcome,
            VerifyOutcome::Accepted
        );
        assert_eq!(
            svc.verify(&alice, &code, 2000).unwrap().outcome,
            VerifyOutcome::Replayed
        );
    }

    #[test]
    fn wrong_codes_lock_out_and_a_locked_user_is_not_checked() {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path());
        let bob = Username::parse("bob").unwrap();
        svc.enroll(&bob, "h", 0).unwrap();
        let right = code_for(&svc, &bob, 100);
        let wrong = if right == "000000" {
            "111111"
        } else {
            "000000"
        };
        for _ in 0..2 {
            assert_eq!(
                svc.verify(&bob, wrong, 100).unwrap().outcome,
                VerifyOutcome::Rejected
            );
        }
        let third = svc.verify(&bob, wrong, 100).unwrap();
        assert_eq!(third.outcome, VerifyOutcome::Rejected);
        assert_eq!(third.retry_after, 30);
        let locked = svc.verify(&bob, &right, 100).unwrap();
        assert_eq!(locked.outcome, VerifyOutcome::LockedOut);
        // After the lockout the right code works again.
        let later = code_for(&svc, &bob, 131);
        assert_eq!(
            svc.verify(&bob, &later, 131).unwrap().outcome,
            VerifyOutcome::Accepted
        );
    }

    #[test]
    fn unknown_user_is_not_enrolled() {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path());
        let nobody = Username::parse("nobody").unwrap();
        assert_eq!(
            svc.verify(&nobody, "123456", 0).unwrap().outcome,
            VerifyOutcome::NotEnrolled
        );
        assert!(!svc.reset(&nobody).unwrap());
    }
}
