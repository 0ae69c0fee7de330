//! What mfad does, apart from any transport: verify a code, run an
//! enrollment from start to confirmed first code, recovery codes, import,
//! reset. Time and randomness are arguments; every change to an account
//! is one atomic operation of the [`Storage`] it was given.

use std::sync::Arc;

use pam_mfa_config::schema::Config;
use pam_mfa_protocol::username::Username;
use pam_mfa_protocol::wire::VerifyOutcome;
use zeroize::Zeroizing;

use crate::account::{Account, Attempt, Confirmation, Pending, RecoveryHashes, Rules};
pub use crate::account::{Device, Verdict};
use crate::challenge::{self, Challenge, Context, SessionId};
use crate::challenges::{Budget, Refused};
use crate::ga_import::GoogleAuthenticator;
use crate::limits;
use crate::random::Random;
use crate::recovery;
use crate::storage::{Storage, StorageError};
use crate::totp::Params;
use crate::uri;

/// Bytes of a new TOTP secret: 160 bits, as RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;
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
    Store(StorageError),
    Random(std::io::Error),
    /// The request was refused (the user's doing, not mfad's).
    Refused(Refusal),
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceError::Store(e) => write!(f, "{e}"),
            ServiceError::Random(e) => write!(f, "no randomness from the OS: {e}"),
            ServiceError::Refused(r) => write!(f, "{r}"),
        }
    }
}

impl std::error::Error for ServiceError {}

impl From<StorageError> for ServiceError {
    fn from(e: StorageError) -> Self {
        ServiceError::Store(e)
    }
}

impl From<Refusal> for ServiceError {
    fn from(r: Refusal) -> Self {
        ServiceError::Refused(r)
    }
}

/// What `begin` hands back: the URI (once) and how the app will name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub uri: Zeroizing<String>,
    pub account: String,
    pub expires_in: u64,
}

/// What a new number-matching challenge is for, and who asks.
pub struct NewChallenge {
    pub user: Username,
    pub context: Context,
    /// The requester, as its transport names it (opaque here): only it may
    /// wait for or cancel the challenge.
    pub creator: String,
    pub requester_session: SessionId,
    /// A test from `mfa-approve --test`: unlocks nothing.
    pub test: bool,
}

/// Bytes of a challenge id (hex in the API).
const CHALLENGE_ID_BYTES: usize = 16;

/// What `status` tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub enrolled_at: u64,
    pub recovery_left: u32,
    pub locked_for: u64,
}

pub struct Service {
    config: Config,
    store: Arc<dyn Storage>,
    random: Box<dyn Random>,
    host: String,
}

impl Service {
    pub fn new(
        config: Config,
        store: Arc<dyn Storage>,
        random: Box<dyn Random>,
        host: &str,
    ) -> Service {
        Service { config, store, random, host: host.to_string() }
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

    /// The store, for the operations the service adds nothing to.
    pub fn store(&self) -> &dyn Storage {
        self.store.as_ref()
    }

    /// Makes a number-matching challenge (a fresh id and number, the
    /// host, time and user in its context) and keeps it, within the
    /// user's budget of requests (`[push]`). `Ok(Err(_))`: refused.
    pub fn open_challenge(
        &self,
        new: NewChallenge,
        now: u64,
    ) -> Result<Result<Challenge, Refused>, ServiceError> {
        use pam_mfa_protocol::wire::context as keys;
        let NewChallenge { user, mut context, creator, requester_session, test } = new;
        let push = &self.config.push;
        let random = self.random_bytes(CHALLENGE_ID_BYTES + 32)?;
        let (id_bytes, number_bytes) = random.split_at(CHALLENGE_ID_BYTES);
        let mut bytes = number_bytes.iter().copied();
        let mut spare = 0u8;
        let number = challenge::draw_number(|| {
            bytes.next().unwrap_or_else(|| {
                // 32 bytes run out with odds below 2^-96; fall back to a
                // counter over fresh randomness rather than fail.
                spare = spare.wrapping_add(97);
                spare
            })
        });
        context.insert(keys::HOST.into(), self.host.clone());
        context.insert(keys::TIME.into(), now.to_string());
        context.insert(keys::USER.into(), user.to_string());
        let challenge = Challenge {
            id: uri::hex(id_bytes),
            user: user.to_string(),
            number,
            context,
            created_at: now,
            expires_at: now.saturating_add(push.timeout_seconds.get()),
            requester_session,
            creator,
            test,
            outcome: None,
        };
        let budget =
            Budget { burst: push.request_burst.get(), every: push.request_every_seconds.get() };
        Ok(self.store.create_challenge(challenge.clone(), budget, now)?.map(|()| challenge))
    }

    /// The rules a code check obeys, from the config.
    fn rules(&self) -> Rules {
        Rules {
            skew: self.config.totp.skew.get(),
            limits: self.config.limits.clone(),
            scope: self.config.limits.scope,
            remember_seconds: self.config.remember.seconds.get(),
        }
    }

    pub fn is_enrolled(&self, user: &Username) -> Result<bool, ServiceError> {
        Ok(self.store.summary(user, 0)?.is_some())
    }

    /// Checks `code` (a current code or a recovery code) for `user` at time
    /// `now`. A success is kept before this returns, so the same step or
    /// recovery code can never be accepted twice.
    pub fn verify(&self, user: &Username, code: &str, now: u64) -> Result<Verdict, ServiceError> {
        self.verify_from(user, code, "", "", None, now)
    }

    /// [`Service::verify`] for a login from remote host `rhost` (may be
    /// empty; it counts under `[limits] scope = "user+address"`), through
    /// PAM service `pam_service` (for the audit of a store that keeps one) and
    /// `device` (an SSH key, address and service; `None` for anything
    /// else): with `[remember] seconds`, a code (never a recovery code)
    /// remembers the device.
    pub fn verify_from(
        &self,
        user: &Username,
        code: &str,
        rhost: &str,
        pam_service: &str,
        device: Option<&Device>,
        now: u64,
    ) -> Result<Verdict, ServiceError> {
        let attempt = Attempt {
            code: Zeroizing::new(code.to_string()),
            rhost: rhost.to_string(),
            service: pam_service.to_string(),
            device: device.cloned(),
        };
        let Some(verdict) = self.store.verify(user, &attempt, &self.rules(), now)? else {
            let outcome = VerifyOutcome::NotEnrolled;
            return Ok(Verdict { outcome, retry_after: 0, unblocked: false });
        };
        if verdict.unblocked {
            tracing::info!(user = %user, "push-unblocked-by-code-login");
        }
        Ok(verdict)
    }

    /// Checks the proof needed to replace an enrollment; its effect (a
    /// used code, a counted failure) is kept either way.
    fn require_proof(&self, user: &Username, proof: &str, now: u64) -> Result<(), ServiceError> {
        if proof.is_empty() {
            return Err(Refusal::ProofRequired.into());
        }
        let verdict = self.verify(user, proof, now)?;
        match verdict.outcome {
            outcome if outcome.is_success() => Ok(()),
            VerifyOutcome::NotEnrolled => Err(Refusal::NotEnrolled.into()),
            outcome => {
                Err(Refusal::ProofRefused { outcome, retry_after: verdict.retry_after }.into())
            }
        }
    }

    /// Whether a new enrollment may replace `user`'s active one, if any:
    /// only when asked to (`replace`) and, unless `admin`, with a current or
    /// recovery code as `proof`.
    fn may_enroll(
        &self,
        user: &Username,
        replace: bool,
        proof: &str,
        admin: bool,
        now: u64,
    ) -> Result<(), ServiceError> {
        let Some(summary) = self.store.summary(user, now)? else {
            return Ok(());
        };
        if !replace {
            return Err(Refusal::AlreadyEnrolled { since: summary.enrolled_at }.into());
        }
        if !admin {
            self.require_proof(user, proof, now)?;
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
        self.may_enroll(user, replace, proof, admin, now)?;
        let mut secret = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        self.random.fill(&mut secret).map_err(ServiceError::Random)?;
        let totp = &self.config.totp;
        let params = Params {
            algorithm: totp.algorithm,
            digits: u8::try_from(totp.digits.get()).unwrap_or(6),
            period: totp.period.get(),
        };
        let expires_in = self.config.enroll.pending_seconds.get();
        let tries_left = u32::try_from(self.config.enroll.confirm_tries.get()).unwrap_or(5);
        let expires_at = now.saturating_add(expires_in);
        let pending = Pending { secret, params, expires_at, tries_left };
        // The store may keep a secret of its own making: the QR shows that one.
        let secret = self.store.begin_enrollment(user, pending, now)?;
        let account = format!("{user}@{}", self.host);
        let uri = Zeroizing::new(uri::otpauth(
            self.config.issuer.as_str(),
            &account,
            &uri::base32(&secret),
            params,
        ));
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
        let (codes, recovery) = self.new_recovery_set()?;
        let skew = self.config.totp.skew.get();
        match self.store.confirm_enrollment(user, code, skew, recovery, now)? {
            Confirmation::Confirmed => Ok(codes),
            other => Err(refusal_of(other).into()),
        }
    }

    /// A fresh set of recovery codes and what the store keeps of them.
    fn new_recovery_set(&self) -> Result<(Vec<Zeroizing<String>>, RecoveryHashes), ServiceError> {
        let codes = recovery::generate(self.random.as_ref()).map_err(ServiceError::Random)?;
        let hashes = self.salted_hashes(&codes)?;
        Ok((codes, hashes))
    }

    /// A fresh salt and the salted hashes of `codes` (what the store keeps).
    fn salted_hashes(&self, codes: &[Zeroizing<String>]) -> Result<RecoveryHashes, ServiceError> {
        let mut salt = [0u8; 16];
        self.random.fill(&mut salt).map_err(ServiceError::Random)?;
        let salt = uri::hex(&salt);
        let hashes = codes
            .iter()
            .filter_map(|c| recovery::normalize(c))
            .map(|c| recovery::hash(&salt, &c))
            .collect();
        Ok(RecoveryHashes { salt, hashes })
    }

    /// Replaces the recovery codes; unless `admin`, after a current code
    /// (a recovery code cannot renew the set it belongs to).
    /// Whether `user` may add a phone: enrolled, and unless `admin` with
    /// a current code (it is used up like any code).
    pub fn may_add_phone(
        &self,
        user: &Username,
        proof: &str,
        admin: bool,
        now: u64,
    ) -> Result<(), ServiceError> {
        if self.store.summary(user, now)?.is_none() {
            return Err(Refusal::NotEnrolled.into());
        }
        if !admin {
            self.require_proof(user, proof, now)?;
        }
        Ok(())
    }

    pub fn new_recovery_codes(
        &self,
        user: &Username,
        proof: &str,
        admin: bool,
        now: u64,
    ) -> Result<Vec<Zeroizing<String>>, ServiceError> {
        if self.store.summary(user, now)?.is_none() {
            return Err(Refusal::NotEnrolled.into());
        }
        if !admin {
            if recovery::normalize(proof).is_some() && !proof.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Refusal::ProofRequired.into());
            }
            self.require_proof(user, proof, now)?;
        }
        let (codes, recovery) = self.new_recovery_set()?;
        if !self.store.replace_recovery(user, recovery)? {
            return Err(Refusal::NotEnrolled.into());
        }
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
        self.may_enroll(user, replace, proof, admin, now)?;
        let recovery = self.salted_hashes(&file.scratch_codes)?;
        let count = u32::try_from(recovery.hashes.len()).unwrap_or(u32::MAX);
        let account = Account {
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
            recovery,
            remembered: Vec::new(),
            push_blocked_since: 0,
            limits_by_address: Default::default(),
            phones: Vec::new(),
        };
        self.store.install(user, account)?;
        Ok(count)
    }

    pub fn status(&self, user: &Username, now: u64) -> Result<Option<Status>, ServiceError> {
        Ok(self.store.summary(user, now)?.map(|s| Status {
            enrolled_at: s.enrolled_at,
            recovery_left: s.recovery_left,
            locked_for: s.locked_for,
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
        Ok(self.store.is_remembered(user, device, now)?)
    }

    /// Forgets every remembered device of `user`; returns how many there were.
    pub fn forget_devices(&self, user: &Username, now: u64) -> Result<u32, ServiceError> {
        self.store.forget_devices(user, now)?.ok_or_else(|| Refusal::NotEnrolled.into())
    }

    /// Since when push requests of `user` are blocked (after a "not me"
    /// report); `None` when they are not.
    pub fn push_blocked(&self, user: &Username) -> Result<Option<u64>, ServiceError> {
        Ok(self.store.summary(user, 0)?.map(|s| s.push_blocked_since).filter(|since| *since != 0))
    }

    /// Blocks (`Some(now)`) or unblocks (`None`) push requests of `user`;
    /// returns whether they were blocked before.
    pub fn set_push_blocked(
        &self,
        user: &Username,
        since: Option<u64>,
    ) -> Result<bool, ServiceError> {
        self.store.set_push_blocked(user, since)?.ok_or_else(|| Refusal::NotEnrolled.into())
    }

    /// Whether an enrollment is waiting for its first code.
    pub fn has_pending(&self, user: &Username, now: u64) -> Result<bool, ServiceError> {
        Ok(self.store.has_pending(user, now)?)
    }

    /// All enrolled users with the time they enrolled.
    pub fn list(&self) -> Result<Vec<(Username, u64)>, ServiceError> {
        Ok(self.store.users()?)
    }

    /// Removes `user`'s enrollment (and any pending one); `false` when there was none.
    pub fn reset(&self, user: &Username) -> Result<bool, ServiceError> {
        Ok(self.store.remove(user)?)
    }
}

/// The refusal a confirmation that did not confirm stands for.
fn refusal_of(confirmation: Confirmation) -> Refusal {
    match confirmation {
        Confirmation::NoPending | Confirmation::Confirmed => Refusal::NoPendingEnrollment,
        Confirmation::Expired => Refusal::PendingExpired,
        Confirmation::WrongCode { tries_left } => Refusal::WrongCode { tries_left },
        Confirmation::TooManyTries => Refusal::TooManyTries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::random::tests::TestRandom;
    use crate::totp;
    use pam_mfa_config::schema::Ranged;

    fn service() -> Service {
        let mut config = Config::default();
        config.limits.max_failures = Ranged::clamped(3);
        config.enroll.pending_seconds = Ranged::clamped(300);
        config.enroll.confirm_tries = Ranged::clamped(2);
        Service::new(
            config,
            Arc::new(MemoryStore::empty()),
            Box::new(TestRandom::default()),
            "host",
        )
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
        let svc = service();
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
    fn a_recovery_code_works_exactly_once() {
        let svc = service();
        let bob = Username::parse("bob").unwrap();
        let (_, codes) = enrolled(&svc, &bob, 1000);
        let code = codes[3].to_lowercase();
        assert_eq!(svc.verify(&bob, &code, 2000).unwrap().outcome, VerifyOutcome::RecoveryAccepted);
        assert_eq!(svc.verify(&bob, &code, 2000).unwrap().outcome, VerifyOutcome::Rejected);
        assert_eq!(svc.status(&bob, 2000).unwrap().unwrap().recovery_left, 9);
    }

    #[test]
    fn wrong_first_codes_are_bounded_and_expiry_ends_the_enrollment() {
        let svc = service();
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
        let svc = service();
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
        let svc = service();
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
        let svc = service();
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
        let svc = service();
        let nobody = Username::parse("nobody").unwrap();
        assert_eq!(svc.verify(&nobody, "123456", 0).unwrap().outcome, VerifyOutcome::NotEnrolled);
        assert!(!svc.reset(&nobody).unwrap());
    }

    #[test]
    fn wrong_codes_lock_out_and_a_locked_user_is_not_checked() {
        let svc = service();
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
