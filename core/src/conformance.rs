//! The conformance suite every [`Storage`] must pass: the rules' effects,
//! kept; and racing tasks on one user seeing each other (one code, one
//! success; no failure lost; one confirmation). A store runs it with
//! [`crate::storage_conformance!`], which makes each case a test:
//!
//! ```ignore
//! pam_mfa_core::storage_conformance!(|| {
//!     let dir = tempfile::tempdir().unwrap();
//!     let store = FileStore::open(&dir.path().join("state")).unwrap();
//!     Subject::new(store, dir)
//! });
//! ```

use std::sync::{Arc, Barrier};

use pam_mfa_config::schema::{Algorithm, LimitScope, Limits, Ranged};
use pam_mfa_protocol::username::Username;
use pam_mfa_protocol::wire::VerifyOutcome;
use zeroize::Zeroizing;

use crate::challenge::{Approver, Challenge, NotTaken, SessionRule};
use crate::challenges::{Budget, Ender, Refused};
use pam_mfa_protocol::wire::ChallengeOutcome;

use crate::account::{
    Account, Attempt, Confirmation, Device, Pending, RecoveryHashes, Rules, Verdict,
};
use crate::limits::LimitState;
use crate::passkey::Phone;
use crate::recovery;
use crate::storage::{Storage, StorageError};
use crate::totp::{self, Params};

/// A store under test, with whatever must live as long as it (a temp dir).
pub struct Subject {
    pub store: Arc<dyn Storage>,
    _keep: Box<dyn std::any::Any>,
}

impl Subject {
    pub fn new(store: impl Storage + 'static, keep: impl std::any::Any) -> Subject {
        Subject { store: Arc::new(store), _keep: Box::new(keep) }
    }
}

/// Makes each case of the suite a `#[test]` of the calling crate, run on
/// stores made by `$make` (an expression of type `impl Fn() -> Subject`).
#[macro_export]
macro_rules! storage_conformance {
    ($make:expr) => {
        $crate::storage_conformance!(@cases $make;
            nobody_is_enrolled_until_installed,
            an_installed_account_is_kept_whole,
            a_step_is_accepted_once,
            failures_lock_out_and_a_lockout_is_not_checked,
            a_recovery_code_is_spent_once,
            failures_count_per_address_when_scoped,
            a_code_remembers_a_device_and_a_recovery_code_does_not,
            a_push_block_is_kept_and_a_code_login_ends_it,
            an_enrollment_is_active_only_once_confirmed,
            wrong_first_codes_are_bounded_and_expiry_ends_it,
            removing_drops_active_and_pending,
            racing_tasks_accept_one_code_once,
            racing_wrong_codes_get_no_more_guesses_than_allowed,
            racing_tasks_spend_a_recovery_code_once,
            racing_confirmations_confirm_once,
            racing_users_do_not_lose_each_others_changes,
            a_challenge_ends_once_and_wakes_its_waiter,
            only_who_may_ends_a_challenge_and_time_ends_it_too,
            requests_are_refused_while_one_waits_and_beyond_the_budget,
            racing_approvals_approve_once,
            racing_requests_make_one_challenge,
            phones_are_kept_until_removed_with_their_user,
            racing_uses_of_a_phone_advance_its_counter_once,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::$case(&$make);
            }
        )*
    };
}

/// A fixed 160-bit secret, base32.
const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
/// A time in the middle of a step.
const T: u64 = 1_700_000_010;
const THREADS: usize = 24;

fn ok<V>(result: Result<V, StorageError>) -> V {
    match result {
        Ok(v) => v,
        Err(e) => panic!("the store failed: {e}"),
    }
}

fn user(name: &str) -> Username {
    match Username::parse(name) {
        Ok(u) => u,
        Err(e) => panic!("{name}: {e}"),
    }
}

fn params() -> Params {
    Params { algorithm: Algorithm::Sha1, digits: 6, period: 30 }
}

fn secret() -> Vec<u8> {
    match totp_rs::Secret::try_from_base32(SECRET) {
        Ok(s) => s.as_ref().to_vec(),
        Err(_) => panic!("the test secret is base32"),
    }
}

fn code(at: u64) -> String {
    code_of(&secret(), at)
}

fn code_of(secret: &[u8], at: u64) -> String {
    totp::code_at(secret, params(), at)
}

/// A right-length code that is not the one of `at` (nor its neighbours').
fn wrong(at: u64) -> String {
    wrong_of(&secret(), at)
}

fn wrong_of(secret: &[u8], at: u64) -> String {
    let neighbours: Vec<String> = (0..3).map(|i| code_of(secret, at - 30 + i * 30)).collect();
    (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .find(|c| !neighbours.contains(c))
        .unwrap_or_default()
}

/// The recovery codes the suite's accounts start with, and their hashes.
fn recovery_set() -> (Vec<String>, RecoveryHashes) {
    let codes = vec!["AAAA-BBBB-CCCC-DDDD".to_string(), "EEEE-FFFF-GGGG-HHHH".to_string()];
    let salt = "5a17".to_string();
    let hashes = codes
        .iter()
        .filter_map(|c| recovery::normalize(c))
        .map(|c| recovery::hash(&salt, &c))
        .collect();
    (codes, RecoveryHashes { salt, hashes })
}

fn account(enrolled_at: u64) -> Account {
    Account {
        secret: SECRET.into(),
        algorithm: "SHA1".into(),
        digits: 6,
        period: 30,
        enrolled_at,
        last_step: None,
        limits: LimitState::default(),
        skew: None,
        max_failures: None,
        lockout_seconds: None,
        recovery: recovery_set().1,
        remembered: Vec::new(),
        push_blocked_since: 0,
        limits_by_address: Default::default(),
        phones: Vec::new(),
    }
}

fn rules() -> Rules {
    let limits = Limits {
        max_failures: Ranged::clamped(5),
        lockout_seconds: Ranged::clamped(60),
        ..Limits::default()
    };
    Rules { skew: 1, limits, scope: LimitScope::User, remember_seconds: 0 }
}

fn attempt(code: &str) -> Attempt {
    Attempt {
        code: Zeroizing::new(code.to_string()),
        rhost: String::new(),
        service: "sshd".into(),
        device: None,
    }
}

fn verify(store: &dyn Storage, who: &Username, a: &Attempt, rules: &Rules, now: u64) -> Verdict {
    match ok(store.verify(who, a, rules, now)) {
        Some(v) => v,
        None => panic!("{who} is enrolled"),
    }
}

fn outcome(store: &dyn Storage, who: &Username, code: &str, now: u64) -> VerifyOutcome {
    verify(store, who, &attempt(code), &rules(), now).outcome
}

fn installed(make: &dyn Fn() -> Subject, name: &str) -> (Subject, Username) {
    let subject = make();
    let who = user(name);
    ok(subject.store.install(&who, account(T - 1000)));
    (subject, who)
}

pub fn nobody_is_enrolled_until_installed(make: &dyn Fn() -> Subject) {
    let s = make();
    let store = s.store.as_ref();
    let alice = user("alice");
    assert_eq!(ok(store.summary(&alice, T)), None);
    assert_eq!(ok(store.verify(&alice, &attempt(&code(T)), &rules(), T)), None);
    assert_eq!(ok(store.forget_devices(&alice, T)), None);
    assert_eq!(ok(store.set_push_blocked(&alice, Some(T))), None);
    assert!(!ok(store.replace_recovery(&alice, RecoveryHashes::default())));
    assert!(!ok(store.remove(&alice)));
    assert!(!ok(store.has_pending(&alice, T)));
    assert!(ok(store.users()).is_empty());
}

pub fn an_installed_account_is_kept_whole(make: &dyn Fn() -> Subject) {
    let (s, alice) = installed(make, "alice");
    let store = s.store.as_ref();
    ok(store.install(&user("bob"), account(T - 5)));
    let summary = ok(store.summary(&alice, T));
    assert_eq!(
        summary.map(|s| (s.enrolled_at, s.recovery_left, s.locked_for)),
        Some((T - 1000, 2, 0))
    );
    assert_eq!(ok(store.users()), vec![(alice.clone(), T - 1000), (user("bob"), T - 5)]);
    // Installing again replaces (an import over an old enrollment), with
    // the phones of the account installed, their counters too.
    let mut moved = account(T);
    let mut pixel = phone(5, "pixel");
    pixel.sign_count = 7;
    moved.phones.push(pixel.clone());
    ok(store.install(&alice, moved));
    assert_eq!(ok(store.summary(&alice, T)).map(|s| s.enrolled_at), Some(T));
    let phones = ok(store.phones(&alice));
    assert_eq!(
        phones.iter().map(|p| (&p.name, p.sign_count)).collect::<Vec<_>>(),
        [(&pixel.name, 7)]
    );
    assert!(!ok(store.phone_used(&alice, &[5; 16], 7, T)), "its counter came along");
}

pub fn a_step_is_accepted_once(make: &dyn Fn() -> Subject) {
    let (s, alice) = installed(make, "alice");
    let store = s.store.as_ref();
    assert_eq!(outcome(store, &alice, &code(T), T), VerifyOutcome::Accepted);
    assert_eq!(outcome(store, &alice, &code(T), T), VerifyOutcome::Replayed);
    // The step before (still inside the skew) is older than the accepted one.
    assert_eq!(outcome(store, &alice, &code(T - 30), T), VerifyOutcome::Replayed);
    assert_eq!(outcome(store, &alice, &code(T + 30), T + 30), VerifyOutcome::Accepted);
}

pub fn failures_lock_out_and_a_lockout_is_not_checked(make: &dyn Fn() -> Subject) {
    let (s, alice) = installed(make, "alice");
    let store = s.store.as_ref();
    for _ in 0..4 {
        let v = verify(store, &alice, &attempt(&wrong(T)), &rules(), T);
        assert_eq!((v.outcome, v.retry_after), (VerifyOutcome::Rejected, 0));
    }
    let fifth = verify(store, &alice, &attempt(&wrong(T)), &rules(), T);
    assert_eq!((fifth.outcome, fifth.retry_after), (VerifyOutcome::Rejected, 60));
    assert_eq!(ok(store.summary(&alice, T + 1)).map(|s| s.locked_for), Some(59));
    let locked = verify(store, &alice, &attempt(&code(T + 1)), &rules(), T + 1);
    assert_eq!((locked.outcome, locked.retry_after), (VerifyOutcome::LockedOut, 59));
    assert_eq!(outcome(store, &alice, &code(T + 60), T + 60), VerifyOutcome::Accepted);
    assert_eq!(ok(store.summary(&alice, T + 60)).map(|s| s.locked_for), Some(0));
}

pub fn a_recovery_code_is_spent_once(make: &dyn Fn() -> Subject) {
    let (s, alice) = installed(make, "alice");
    let store = s.store.as_ref();
    let (codes, _) = recovery_set();
    let typed = codes[1].to_lowercase().replace('-', " ");
    assert_eq!(outcome(store, &alice, &typed, T), VerifyOutcome::RecoveryAccepted);
    assert_eq!(outcome(store, &alice, &codes[1], T), VerifyOutcome::Rejected);
    assert_eq!(ok(store.summary(&alice, T)).map(|s| s.recovery_left), Some(1));
    assert!(ok(store.replace_recovery(&alice, RecoveryHashes::default())));
    assert_eq!(outcome(store, &alice, &codes[0], T), VerifyOutcome::Rejected);
}

pub fn failures_count_per_address_when_scoped(make: &dyn Fn() -> Subject) {
    let (s, alice) = installed(make, "alice");
    let store = s.store.as_ref();
    let scoped = Rules { scope: LimitScope::UserAddress, ..rules() };
    let from = |rhost: &str, code: String| Attempt { rhost: rhost.into(), ..attempt(&code) };
    for _ in 0..5 {
        verify(store, &alice, &from("192.0.2.66", wrong(T)), &scoped, T);
    }
    let attacker = verify(store, &alice, &from("192.0.2.66", code(T)), &scoped, T);
    assert_eq!(attacker.outcome, VerifyOutcome::LockedOut);
    let owner = verify(store, &alice, &from("198.51.100.7", code(T)), &scoped, T);
    assert_eq!(owner.outcome, VerifyOutcome::Accepted, "another address is not locked out");
    assert_eq!(ok(store.summary(&alice, T)).map(|s| s.locked_for), Some(60));
}

pub fn a_code_remembers_a_device_and_a_recovery_code_does_not(make: &dyn Fn() -> Subject) {
    let (s, alice) = installed(make, "alice");
    let store = s.store.as_ref();
    let context = |key: &str| {
        std::collections::HashMap::from([
            ("ssh_key".to_string(), key.to_string()),
            ("rhost".to_string(), "192.0.2.7".to_string()),
            ("service".to_string(), "sshd".to_string()),
        ])
    };
    let (laptop, other) = match (
        Device::of(&context("ssh-ed25519 AAAA1")),
        Device::of(&context("ssh-ed25519 AAAA2")),
    ) {
        (Some(a), Some(b)) => (a, b),
        _ => panic!("a key and an address make a device"),
    };
    let remembering = Rules { remember_seconds: 3600, ..rules() };
    let by =
        |code: String, device: &Device| Attempt { device: Some(device.clone()), ..attempt(&code) };
    let (codes, _) = recovery_set();
    verify(store, &alice, &by(codes[0].clone(), &other), &remembering, T);
    assert!(!ok(store.is_remembered(&alice, &other, T)), "a recovery code remembers nothing");
    verify(store, &alice, &by(code(T), &laptop), &remembering, T);
    assert!(ok(store.is_remembered(&alice, &laptop, T + 3599)));
    assert!(!ok(store.is_remembered(&alice, &laptop, T + 3600)), "until the time is up");
    assert!(!ok(store.is_remembered(&alice, &other, T)));
    assert_eq!(ok(store.forget_devices(&alice, T)), Some(1));
    assert!(!ok(store.is_remembered(&alice, &laptop, T)));
}

pub fn a_push_block_is_kept_and_a_code_login_ends_it(make: &dyn Fn() -> Subject) {
    let (s, alice) = installed(make, "alice");
    let store = s.store.as_ref();
    assert_eq!(ok(store.set_push_blocked(&alice, Some(0))), Some(false));
    assert_eq!(ok(store.summary(&alice, T)).map(|s| s.push_blocked_since), Some(1));
    assert_eq!(ok(store.set_push_blocked(&alice, Some(T))), Some(true));
    assert_eq!(outcome(store, &alice, &wrong(T), T), VerifyOutcome::Rejected);
    assert_eq!(ok(store.summary(&alice, T)).map(|s| s.push_blocked_since), Some(T));
    let login = verify(store, &alice, &attempt(&code(T)), &rules(), T);
    assert_eq!((login.outcome, login.unblocked), (VerifyOutcome::Accepted, true));
    assert_eq!(ok(store.summary(&alice, T)).map(|s| s.push_blocked_since), Some(0));
}

fn pending(expires_at: u64, tries_left: u32) -> Pending {
    Pending { secret: Zeroizing::new(secret()), params: params(), expires_at, tries_left }
}

/// Begins an enrollment; the secret the store kept (its own, maybe).
fn begun(store: &dyn Storage, who: &Username, pending: Pending, now: u64) -> Vec<u8> {
    let secret = ok(store.begin_enrollment(who, pending, now)).to_vec();
    assert!(secret.len() >= 16, "a secret of {} bytes", secret.len());
    secret
}

pub fn an_enrollment_is_active_only_once_confirmed(make: &dyn Fn() -> Subject) {
    let s = make();
    let store = s.store.as_ref();
    let carol = user("carol");
    let confirm =
        |code: &str, now| ok(store.confirm_enrollment(&carol, code, 1, recovery_set().1, now));
    assert_eq!(confirm(&code(T), T), Confirmation::NoPending);
    let first = begun(store, &carol, pending(T + 300, 3), T);
    assert!(ok(store.has_pending(&carol, T)));
    assert_eq!(ok(store.summary(&carol, T)), None, "not active before the first code");
    assert_eq!(confirm(&code_of(&first, T), T), Confirmation::Confirmed);
    assert!(!ok(store.has_pending(&carol, T)));
    assert_eq!(
        ok(store.summary(&carol, T)).map(|s| (s.enrolled_at, s.recovery_left)),
        Some((T, 2))
    );
    assert_eq!(
        outcome(store, &carol, &code_of(&first, T), T),
        VerifyOutcome::Replayed,
        "the first code is used"
    );
    assert_eq!(
        confirm(&code_of(&first, T + 30), T + 30),
        Confirmation::NoPending,
        "confirmed once"
    );
    // A replacement leaves the active enrollment alone until it is confirmed.
    let mut other = pending(T + 300, 3);
    other.secret = Zeroizing::new(vec![7u8; 20]);
    let second = begun(store, &carol, other, T + 30);
    assert_ne!(first, second);
    assert_eq!(outcome(store, &carol, &code_of(&first, T + 30), T + 30), VerifyOutcome::Accepted);
    assert_eq!(ok(store.summary(&carol, T + 30)).map(|s| s.enrolled_at), Some(T));
    assert_eq!(confirm(&code_of(&second, T + 60), T + 60), Confirmation::Confirmed);
    assert_eq!(ok(store.summary(&carol, T + 60)).map(|s| s.enrolled_at), Some(T + 60));
    assert_eq!(outcome(store, &carol, &code_of(&first, T + 90), T + 90), VerifyOutcome::Rejected);
    assert_eq!(outcome(store, &carol, &code_of(&second, T + 90), T + 90), VerifyOutcome::Accepted);
}

pub fn wrong_first_codes_are_bounded_and_expiry_ends_it(make: &dyn Fn() -> Subject) {
    let s = make();
    let store = s.store.as_ref();
    let carol = user("carol");
    let confirm =
        |code: &str, now| ok(store.confirm_enrollment(&carol, code, 1, recovery_set().1, now));
    let first = begun(store, &carol, pending(T + 300, 2), T);
    assert_eq!(confirm(&wrong_of(&first, T), T), Confirmation::WrongCode { tries_left: 1 });
    assert_eq!(confirm(&wrong_of(&first, T), T), Confirmation::TooManyTries);
    assert_eq!(
        confirm(&code_of(&first, T), T),
        Confirmation::NoPending,
        "dropped after the last try"
    );
    let second = begun(store, &carol, pending(T + 300, 2), T);
    assert!(!ok(store.has_pending(&carol, T + 300)));
    assert_eq!(confirm(&code_of(&second, T + 300), T + 300), Confirmation::Expired);
    assert_eq!(confirm(&code_of(&second, T + 300), T + 300), Confirmation::NoPending);
    assert_eq!(ok(store.summary(&carol, T + 300)), None);
}

pub fn removing_drops_active_and_pending(make: &dyn Fn() -> Subject) {
    let (s, alice) = installed(make, "alice");
    let store = s.store.as_ref();
    ok(store.begin_enrollment(&alice, pending(T + 300, 3), T));
    assert!(ok(store.remove(&alice)));
    assert_eq!(ok(store.summary(&alice, T)), None);
    assert!(!ok(store.has_pending(&alice, T)));
    assert!(!ok(store.remove(&alice)));
    let dave = user("dave");
    ok(store.begin_enrollment(&dave, pending(T + 300, 3), T));
    assert!(ok(store.remove(&dave)), "a pending enrollment alone counts");
}

/// Runs `work(i)` on [`THREADS`] threads released at once; their answers in order.
fn race<V: Send>(work: impl Fn(usize) -> V + Sync) -> Vec<V> {
    let start = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let (start, work) = (&start, &work);
                scope.spawn(move || {
                    start.wait();
                    work(i)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| panic!("a racer panicked")))
            .collect()
    })
}

fn count(outcomes: &[VerifyOutcome], wanted: VerifyOutcome) -> usize {
    outcomes.iter().filter(|o| **o == wanted).count()
}

pub fn racing_tasks_accept_one_code_once(make: &dyn Fn() -> Subject) {
    let (s, alice) = installed(make, "alice");
    let store = s.store.as_ref();
    let outcomes = race(|_| outcome(store, &alice, &code(T), T));
    assert_eq!(count(&outcomes, VerifyOutcome::Accepted), 1, "{outcomes:?}");
    // A replay is a failure too: after max_failures of them, a lockout.
    let refused =
        count(&outcomes, VerifyOutcome::Replayed) + count(&outcomes, VerifyOutcome::LockedOut);
    assert_eq!(refused, THREADS - 1, "{outcomes:?}");
    assert_eq!(count(&outcomes, VerifyOutcome::Replayed), 5, "{outcomes:?}");
}

pub fn racing_wrong_codes_get_no_more_guesses_than_allowed(make: &dyn Fn() -> Subject) {
    let (s, alice) = installed(make, "alice");
    let store = s.store.as_ref();
    let bad = wrong(T);
    let outcomes = race(|_| outcome(store, &alice, &bad, T));
    assert_eq!(count(&outcomes, VerifyOutcome::Rejected), 5, "checked: max_failures, {outcomes:?}");
    assert_eq!(count(&outcomes, VerifyOutcome::LockedOut), THREADS - 5, "{outcomes:?}");
    assert_eq!(ok(store.summary(&alice, T)).map(|s| s.locked_for), Some(60));
}

pub fn racing_tasks_spend_a_recovery_code_once(make: &dyn Fn() -> Subject) {
    let (s, alice) = installed(make, "alice");
    let store = s.store.as_ref();
    let (codes, _) = recovery_set();
    let outcomes = race(|_| outcome(store, &alice, &codes[0], T));
    assert_eq!(count(&outcomes, VerifyOutcome::RecoveryAccepted), 1, "{outcomes:?}");
    assert_eq!(ok(store.summary(&alice, T)).map(|s| s.recovery_left), Some(1));
}

pub fn racing_confirmations_confirm_once(make: &dyn Fn() -> Subject) {
    let s = make();
    let store = s.store.as_ref();
    let carol = user("carol");
    let secret = begun(store, &carol, pending(T + 300, 3), T);
    let first = code_of(&secret, T);
    let answers = race(|_| ok(store.confirm_enrollment(&carol, &first, 1, recovery_set().1, T)));
    let confirmed = answers.iter().filter(|a| **a == Confirmation::Confirmed).count();
    let none = answers.iter().filter(|a| **a == Confirmation::NoPending).count();
    assert_eq!((confirmed, none), (1, THREADS - 1), "{answers:?}");
}

pub fn racing_users_do_not_lose_each_others_changes(make: &dyn Fn() -> Subject) {
    let s = make();
    let store = s.store.as_ref();
    let users: Vec<Username> = (0..THREADS).map(|i| user(&format!("user{i}"))).collect();
    for who in &users {
        ok(store.install(who, account(T - 1000)));
    }
    let outcomes = race(|i| {
        let (codes, _) = recovery_set();
        // Each user spends a recovery code and then signs in with a code.
        let first = outcome(store, &users[i], &codes[0], T);
        let second = outcome(store, &users[i], &code(T), T);
        (first, second)
    });
    for (i, (first, second)) in outcomes.into_iter().enumerate() {
        assert_eq!(
            (first, second),
            (VerifyOutcome::RecoveryAccepted, VerifyOutcome::Accepted),
            "user{i}"
        );
        let left = ok(store.summary(&users[i], T)).map(|s| s.recovery_left);
        assert_eq!(left, Some(1), "user{i} kept the spent code spent");
        assert_eq!(outcome(store, &users[i], &code(T), T), VerifyOutcome::Replayed, "user{i}");
    }
    assert_eq!(ok(store.users()).len(), THREADS);
}

/// A challenge made at `T`.
fn challenge(id: &str, user: &str, test: bool) -> Challenge {
    challenge_at(id, user, test, T)
}

fn challenge_at(id: &str, user: &str, test: bool, at: u64) -> Challenge {
    Challenge {
        id: id.into(),
        user: user.into(),
        number: 71,
        context: std::collections::HashMap::from([("service".to_string(), "sudo".to_string())]),
        created_at: at,
        expires_at: at + 60,
        requester_session: Some(5),
        creator: ":1.7".into(),
        test,
        outcome: None,
    }
}

const BUDGET: Budget = Budget { burst: 3, every: 20 };

/// An approver in another login session that passed a second factor.
const ELSEWHERE: Approver = Approver { session: Some(6), verified: true };

/// What `waiter` sees once woken, within 5 s: a store may wake it from
/// elsewhere (a database's notice), not before the answer returns.
fn woken(waiter: &crate::challenges::Waiter) -> Option<ChallengeOutcome> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while waiter.borrow().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    *waiter.borrow()
}

fn created(store: &dyn Storage, c: Challenge, now: u64) {
    let id = c.id.clone();
    if let Err(refused) = ok(store.create_challenge(c, BUDGET, now)) {
        panic!("{id} refused: {refused:?}");
    }
}

pub fn a_challenge_ends_once_and_wakes_its_waiter(make: &dyn Fn() -> Subject) {
    let s = make();
    let store = s.store.as_ref();
    created(store, challenge("c1", "alice", false), T);
    assert!(
        matches!(ok(store.watch_challenge("c1", ":1.8")), Err(NotTaken::Unknown)),
        "only its creator waits"
    );
    let (waiter, expires_at) = match ok(store.watch_challenge("c1", ":1.7")) {
        Ok(w) => w,
        Err(e) => panic!("{e:?}"),
    };
    assert_eq!((expires_at, *waiter.borrow()), (T + 60, None));
    let listed = ok(store.pending_challenges(Some("alice"), T + 10));
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].0.as_str(), listed[0].2), ("c1", 50));
    assert!(ok(store.pending_challenges(Some("bob"), T)).is_empty());
    let same = Approver { session: Some(5), verified: true };
    let answer = |number, approver, rule| {
        ok(store.answer_challenge("c1", "alice", number, approver, rule, T + 1))
    };
    assert_eq!(answer(71, same, SessionRule::Mfa).map(|r| r.0), Err(NotTaken::SameSession));
    assert_eq!(*waiter.borrow(), None, "a refused approver changes nothing");
    assert!(matches!(
        ok(store.answer_challenge("c1", "bob", 71, ELSEWHERE, SessionRule::Mfa, T + 1)),
        Err(NotTaken::Unknown)
    ));
    assert_eq!(
        answer(71, ELSEWHERE, SessionRule::Mfa).map(|r| r.0),
        Ok(ChallengeOutcome::Approved)
    );
    assert_eq!(woken(&waiter), Some(ChallengeOutcome::Approved), "the waiter is woken");
    assert_eq!(
        answer(71, ELSEWHERE, SessionRule::Mfa).map(|r| r.0),
        Err(NotTaken::Ended(ChallengeOutcome::Approved))
    );
    assert_eq!(
        ok(store.settle_challenge("c1", T + 100)),
        ChallengeOutcome::Approved,
        "expiry does not undo it"
    );
    assert!(ok(store.pending_challenges(None, T + 2)).is_empty());
    // A wrong number ends the next one: no second guess.
    created(store, challenge("c2", "alice", false), T + 2);
    assert_eq!(
        ok(store.answer_challenge("c2", "alice", 17, ELSEWHERE, SessionRule::Mfa, T + 3))
            .map(|r| r.0),
        Ok(ChallengeOutcome::WrongNumber)
    );
    assert_eq!(ok(store.settle_challenge("c2", T + 4)), ChallengeOutcome::WrongNumber);
}

pub fn only_who_may_ends_a_challenge_and_time_ends_it_too(make: &dyn Fn() -> Subject) {
    let s = make();
    let store = s.store.as_ref();
    created(store, challenge("c1", "alice", false), T);
    let end = |id: &str, outcome, by| ok(store.end_challenge(id, outcome, by, T + 1)).map(|r| r.0);
    assert_eq!(
        end("c1", ChallengeOutcome::Cancelled, Ender::Creator(":1.8")),
        Err(NotTaken::Unknown)
    );
    assert_eq!(end("c1", ChallengeOutcome::Denied, Ender::User("bob")), Err(NotTaken::Unknown));
    assert_eq!(
        end("c1", ChallengeOutcome::Denied, Ender::User("alice")),
        Ok(ChallengeOutcome::Denied)
    );
    assert_eq!(
        end("c1", ChallengeOutcome::Cancelled, Ender::Creator(":1.7")),
        Err(NotTaken::Ended(ChallengeOutcome::Denied))
    );
    created(store, challenge("t1", "alice", true), T + 1);
    assert_eq!(
        end("t1", ChallengeOutcome::Denied, Ender::Reporter("alice")),
        Err(NotTaken::Unknown),
        "a test is not reported"
    );
    assert_eq!(
        end("t1", ChallengeOutcome::Cancelled, Ender::Creator(":1.7")),
        Ok(ChallengeOutcome::Cancelled)
    );
    created(store, challenge_at("c2", "alice", false, T + 2), T + 2);
    assert_eq!(ok(store.settle_challenge("c2", T + 61)), ChallengeOutcome::Pending);
    assert_eq!(ok(store.settle_challenge("c2", T + 62)), ChallengeOutcome::Expired);
    assert_eq!(ok(store.settle_challenge("unknown", T + 62)), ChallengeOutcome::Cancelled);
    let mut other = challenge_at("c3", "bob", false, T + 63);
    other.creator = ":1.9".into();
    created(store, other, T + 63);
    created(store, challenge_at("c4", "alice", false, T + 63), T + 63);
    assert_eq!(ok(store.cancel_challenges_of(":1.7", T + 64)), vec!["c4".to_string()]);
    assert_eq!(ok(store.settle_challenge("c3", T + 64)), ChallengeOutcome::Pending);
}

pub fn requests_are_refused_while_one_waits_and_beyond_the_budget(make: &dyn Fn() -> Subject) {
    let s = make();
    let store = s.store.as_ref();
    created(store, challenge("a", "alice", false), T);
    assert_eq!(
        ok(store.create_challenge(challenge("b", "alice", false), BUDGET, T)),
        Err(Refused::Pending("a".into()))
    );
    assert_eq!(
        ok(store.settle_challenge("a", T)),
        ChallengeOutcome::Pending,
        "the waiting one goes on"
    );
    created(store, challenge("x", "bob", false), T);
    assert_eq!(
        ok(store.create_challenge(challenge("c", "alice", false), BUDGET, T)),
        Err(Refused::Pending("a".into())),
        "a refused request still counts against the budget"
    );
    assert_eq!(
        ok(store.create_challenge(challenge("e", "alice", false), BUDGET, T)),
        Err(Refused::TooMany(20))
    );
    ok(store.end_challenge("a", ChallengeOutcome::Cancelled, Ender::Creator(":1.7"), T + 20)).ok();
    created(store, challenge_at("d", "alice", false, T + 20), T + 20);
}

pub fn racing_approvals_approve_once(make: &dyn Fn() -> Subject) {
    let s = make();
    let store = s.store.as_ref();
    created(store, challenge("c1", "alice", false), T);
    let answers = race(|_| {
        ok(store.answer_challenge("c1", "alice", 71, ELSEWHERE, SessionRule::Mfa, T + 1))
            .map(|r| r.0)
    });
    let approved = answers.iter().filter(|a| **a == Ok(ChallengeOutcome::Approved)).count();
    let ended =
        answers.iter().filter(|a| **a == Err(NotTaken::Ended(ChallengeOutcome::Approved))).count();
    assert_eq!((approved, ended), (1, THREADS - 1), "{answers:?}");
}

pub fn racing_requests_make_one_challenge(make: &dyn Fn() -> Subject) {
    let s = make();
    let store = s.store.as_ref();
    let answers = race(|i| {
        ok(store.create_challenge(challenge(&format!("c{i}"), "alice", false), BUDGET, T))
    });
    let made = answers.iter().filter(|a| a.is_ok()).count();
    assert_eq!(made, 1, "{answers:?}");
    assert_eq!(ok(store.pending_challenges(Some("alice"), T)).len(), 1);
}

fn phone(id: u8, name: &str) -> Phone {
    Phone {
        credential_id: vec![id; 16],
        public_key: vec![4; 65],
        name: name.into(),
        added_at: T,
        sign_count: 0,
        last_used: 0,
    }
}

pub fn phones_are_kept_until_removed_with_their_user(make: &dyn Fn() -> Subject) {
    let s = make();
    let store = s.store.as_ref();
    let bob = user("bob");
    assert!(!ok(store.add_phone(&bob, phone(1, "x"))), "not enrolled: nothing to add to");
    assert!(ok(store.phones(&bob)).is_empty());
    let (s, alice) = installed(make, "alice");
    let store = s.store.as_ref();
    assert!(ok(store.add_phone(&alice, phone(1, "pixel"))));
    assert!(ok(store.add_phone(&alice, phone(2, "iphone"))));
    assert!(ok(store.add_phone(&alice, phone(1, "pixel again"))), "same passkey: replaced");
    let mut names: Vec<String> = ok(store.phones(&alice)).into_iter().map(|p| p.name).collect();
    names.sort();
    assert_eq!(names, ["iphone", "pixel again"]);
    assert_eq!(
        ok(store.phones(&alice)).iter().find(|p| p.name == "iphone"),
        Some(&phone(2, "iphone"))
    );
    assert_eq!(ok(store.phone_owner(&[2; 16])), Some(alice.clone()));
    assert_eq!(ok(store.phone_owner(&[3; 16])), None);

    assert!(ok(store.phone_used(&alice, &[2; 16], 0, T + 1)), "a passkey without a counter");
    assert!(ok(store.phone_used(&alice, &[2; 16], 5, T + 2)));
    assert!(!ok(store.phone_used(&alice, &[2; 16], 5, T + 3)), "the counter must advance");
    assert!(!ok(store.phone_used(&alice, &[2; 16], 0, T + 3)), "nor go back to 0");
    assert!(!ok(store.phone_used(&alice, &[3; 16], 9, T + 3)), "no such phone");
    let used = ok(store.phones(&alice)).into_iter().find(|p| p.name == "iphone");
    assert_eq!(used.map(|p| (p.sign_count, p.last_used)), Some((5, T + 2)));

    assert!(ok(store.remove_phone(&alice, &[1; 16])));
    assert!(!ok(store.remove_phone(&alice, &[1; 16])));
    assert!(!ok(store.remove_phone(&bob, &[2; 16])), "not another user's phone");
    assert_eq!(ok(store.phones(&alice)).len(), 1);
    assert!(ok(store.remove(&alice)));
    assert_eq!(ok(store.phone_owner(&[2; 16])), None, "an administrator's reset removes phones");
    ok(store.install(&alice, account(T)));
    assert!(ok(store.phones(&alice)).is_empty(), "a new enrollment starts with none");

    // Enrolling again (a new secret, confirmed) starts over, as it
    // forgets remembered devices: no phone of the old enrollment approves.
    assert!(ok(store.add_phone(&alice, phone(4, "old"))));
    let later = T + 600;
    let secret = begun(store, &alice, pending(later + 300, 3), later);
    let confirmed =
        ok(store.confirm_enrollment(&alice, &code_of(&secret, later), 1, recovery_set().1, later));
    assert_eq!(confirmed, Confirmation::Confirmed);
    assert!(ok(store.phones(&alice)).is_empty(), "enrolling again removes the phones");
    assert_eq!(ok(store.phone_owner(&[4; 16])), None);
}

pub fn racing_uses_of_a_phone_advance_its_counter_once(make: &dyn Fn() -> Subject) {
    let (s, alice) = installed(make, "alice");
    let store = s.store.as_ref();
    assert!(ok(store.add_phone(&alice, phone(1, "pixel"))));
    assert!(ok(store.phone_used(&alice, &[1; 16], 1, T)));
    let taken = race(|_| ok(store.phone_used(&alice, &[1; 16], 2, T)));
    assert_eq!(taken.iter().filter(|t| **t).count(), 1, "one signature, one use");
}
