//! Where enrollments are kept, as the rules need it: each operation of
//! [`Storage`] is one atomic unit (one transaction in a database), so that
//! racing checks of one user, in one process or on many hosts, see each
//! other's effects: one code, one success; every failure counted.
//!
//! The code check itself is an operation, not "load, then save": in a
//! fleet the secret never leaves the database (the design's rule 9), so
//! the comparison must happen where the secret is, inside the transaction.
//!
//! [`Locked`] makes a [`Storage`] out of a plain keeper of whole accounts
//! ([`Records`]: a directory of files, a map in memory) by running every
//! operation under the user's lock in this process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use pam_mfa_protocol::username::Username;
use zeroize::Zeroizing;

use crate::challenge::{Approver, Challenge, NotTaken, SessionRule};
use crate::challenges::{Announced, Budget, ChallengeBook, Ender, Listed, Refused, Waiter};
use crate::passkey::{self, Evidence, Phone};
use pam_mfa_protocol::wire::ChallengeOutcome;

use crate::account::{
    self, Account, Attempt, Confirmation, Device, Durability, Pending, RecoveryHashes, Rules,
    Verdict,
};

/// Why the storage could not do what was asked (never the user's doing).
#[derive(Debug)]
pub enum StorageError {
    /// The storage could not be reached or written (`place`: a path, a server).
    Io { place: String, error: std::io::Error },
    /// Something stored does not parse: reported, never overwritten silently.
    Corrupt { place: String, message: String },
    /// The account parses but cannot be used (e.g. a hand-edited period of 0).
    Unusable { user: String, message: String },
    /// A database could not be reached, or did not answer in time.
    Unreachable { place: String, message: String },
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageError::Io { place, error } => write!(f, "{place}: {error}"),
            StorageError::Corrupt { place, message } => {
                write!(f, "{place}: unreadable store file: {message}")
            }
            StorageError::Unusable { user, message } => {
                write!(f, "unusable enrollment of {user}: {message}")
            }
            StorageError::Unreachable { place, message } => {
                write!(f, "{place} cannot be reached: {message}")
            }
        }
    }
}

impl std::error::Error for StorageError {}

/// What may be told of an account without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub enrolled_at: u64,
    pub recovery_left: u32,
    /// Seconds left of the longest running lockout (0: none).
    pub locked_for: u64,
    /// Since when push requests are blocked (0: they are not).
    pub push_blocked_since: u64,
}

/// The operations the rules need, each atomic. `Ok(None)` where an
/// account is needed means the user is not enrolled.
pub trait Storage: Send + Sync {
    fn summary(&self, user: &Username, now: u64) -> Result<Option<Summary>, StorageError>;

    /// Every enrolled user with the time they enrolled, sorted by name.
    fn users(&self) -> Result<Vec<(Username, u64)>, StorageError>;

    /// Checks a code and keeps its effect before answering: an accepted
    /// step (a step at or before it is never accepted again), a spent
    /// recovery code, a counted failure or lockout, a remembered device.
    fn verify(
        &self,
        user: &Username,
        attempt: &Attempt,
        rules: &Rules,
        now: u64,
    ) -> Result<Option<Verdict>, StorageError>;

    fn is_remembered(
        &self,
        user: &Username,
        device: &Device,
        now: u64,
    ) -> Result<bool, StorageError>;

    /// Forgets every remembered device; returns how many were still valid.
    fn forget_devices(&self, user: &Username, now: u64) -> Result<Option<u32>, StorageError>;

    /// Blocks (`Some(since)`) or unblocks push requests; returns whether
    /// they were blocked before.
    fn set_push_blocked(
        &self,
        user: &Username,
        since: Option<u64>,
    ) -> Result<Option<bool>, StorageError>;

    /// Keeps a started enrollment (replacing any other pending one of the
    /// user) until it is confirmed or expires. The active one is untouched.
    /// Returns the secret kept: a store may make its own in place of
    /// `pending.secret` (a database makes it where it stays).
    fn begin_enrollment(
        &self,
        user: &Username,
        pending: Pending,
        now: u64,
    ) -> Result<Zeroizing<Vec<u8>>, StorageError>;

    fn has_pending(&self, user: &Username, now: u64) -> Result<bool, StorageError>;

    /// Confirms the pending enrollment with its first code: on success it
    /// becomes the active one (replacing any old one) with `recovery`.
    fn confirm_enrollment(
        &self,
        user: &Username,
        code: &str,
        skew: u64,
        recovery: RecoveryHashes,
        now: u64,
    ) -> Result<Confirmation, StorageError>;

    /// Makes `account` the user's active enrollment (an import).
    fn install(&self, user: &Username, account: Account) -> Result<(), StorageError>;

    /// Replaces the recovery codes; `false` when the user is not enrolled.
    fn replace_recovery(
        &self,
        user: &Username,
        recovery: RecoveryHashes,
    ) -> Result<bool, StorageError>;

    /// Removes the active and any pending enrollment; `false` when there was neither.
    fn remove(&self, user: &Username) -> Result<bool, StorageError>;

    /// Adds a number-matching challenge within the user's `budget`, unless
    /// one of the user's is still pending (the newcomer is refused).
    fn create_challenge(
        &self,
        challenge: Challenge,
        budget: Budget,
        now: u64,
    ) -> Result<Result<(), Refused>, StorageError>;

    /// Lets the challenge's creator wait for its outcome (woken when it
    /// ends, never polled); also its expiry time.
    fn watch_challenge(
        &self,
        id: &str,
        creator: &str,
    ) -> Result<Result<(Waiter, u64), NotTaken>, StorageError>;

    /// The outcome at `now`, ending the challenge as expired if its time is up.
    fn settle_challenge(&self, id: &str, now: u64) -> Result<ChallengeOutcome, StorageError>;

    /// An approver of `user` answers with `number` (a wrong one ends it).
    fn answer_challenge(
        &self,
        id: &str,
        user: &str,
        number: u32,
        approver: Approver,
        rule: SessionRule,
        now: u64,
    ) -> Result<Result<(ChallengeOutcome, Challenge), NotTaken>, StorageError>;

    /// Ends a pending challenge with `outcome`, if `by` may.
    fn end_challenge(
        &self,
        id: &str,
        outcome: ChallengeOutcome,
        by: Ender<'_>,
        now: u64,
    ) -> Result<Result<(ChallengeOutcome, Challenge), NotTaken>, StorageError>;

    /// The pending challenges of `user` (or of everyone).
    fn pending_challenges(&self, user: Option<&str>, now: u64)
        -> Result<Vec<Listed>, StorageError>;

    /// The requester `creator` is gone: its pending challenges end as cancelled.
    fn cancel_challenges_of(&self, creator: &str, now: u64) -> Result<Vec<String>, StorageError>;

    /// The user's registered phones (none when not enrolled).
    fn phones(&self, user: &Username) -> Result<Vec<Phone>, StorageError>;

    /// Registers `phone` for an enrolled user, replacing one with the
    /// same credential id; `false` when the user is not enrolled.
    fn add_phone(&self, user: &Username, phone: Phone) -> Result<bool, StorageError>;

    /// `false` when the user has no such phone.
    fn remove_phone(&self, user: &Username, credential_id: &[u8]) -> Result<bool, StorageError>;

    /// Notes a checked use of a phone, keeping its counter if it advances
    /// (in the same atomic step as the check); `false`, and nothing kept,
    /// when it does not advance or the phone is gone.
    fn phone_used(
        &self,
        user: &Username,
        credential_id: &[u8],
        counter: u32,
        now: u64,
    ) -> Result<bool, StorageError>;

    /// The user a passkey belongs to.
    fn phone_owner(&self, credential_id: &[u8]) -> Result<Option<Username>, StorageError>;

    /// Challenges made elsewhere (another host of a fleet) as they are
    /// made, for this host to tell its approvers; `None` for a store that
    /// has no elsewhere.
    fn made_elsewhere(&self) -> Option<tokio::sync::broadcast::Receiver<Announced>> {
        None
    }

    /// The links of `mfa-enroll --add-phone`, when the store keeps them
    /// for a web approver elsewhere (a fleet's database); `None`: mfad
    /// keeps them itself, for the web approver on its own bus.
    fn shared_links(&self) -> Option<&dyn SharedLinks> {
        None
    }
}

/// What the maker of an add-phone link learns once a phone used it: the
/// phone's test request (id, the number to show, seconds to answer) and
/// the phone's name.
pub type LinkUsed = (String, u32, u64, String);

/// What the store keeps for a web approver on another machine: add-phone
/// links (a host's mfad opens them and shows the test number; the web
/// approver registers the phone) and the signatures of phones' answers.
pub trait SharedLinks: Send + Sync {
    /// Opens a link of `user` for `creator` (a bus name of this host), by
    /// the SHA-256 of its token; `false`: the user is not enrolled.
    fn open_link(
        &self,
        token_hash: &[u8; 32],
        user: &Username,
        creator: &str,
        seconds: u64,
    ) -> Result<bool, StorageError>;

    /// `None`: no open link of this creator (expired, replaced, never
    /// made); `Some(None)`: no phone used it yet.
    fn link_state(
        &self,
        token_hash: &[u8; 32],
        creator: &str,
    ) -> Result<Option<Option<LinkUsed>>, StorageError>;

    /// Whether `challenge` is a phone's test, which that phone alone answers.
    fn is_phone_test(&self, challenge: &str) -> Result<bool, StorageError>;

    /// The signature of the phone that approved `challenge` (one this host
    /// made); `None` when no phone did. `Some` without a key: the phone is
    /// gone.
    fn phone_evidence(&self, challenge: &str) -> Result<Option<Option<Evidence>>, StorageError>;
}

/// A keeper of whole accounts, one per user, with no rules of its own.
pub trait Records: Send + Sync {
    fn load(&self, user: &Username) -> Result<Option<Account>, StorageError>;
    /// Keeps `account` at least as durably as asked.
    fn save(
        &self,
        user: &Username,
        account: &Account,
        durability: Durability,
    ) -> Result<(), StorageError>;
    /// `false` when there was none.
    fn remove(&self, user: &Username) -> Result<bool, StorageError>;
    /// Every user with an account and when they enrolled, sorted by name;
    /// one that cannot be read is left out (and said in the log).
    fn users(&self) -> Result<Vec<(Username, u64)>, StorageError>;
}

/// A [`Storage`] over [`Records`]: every operation runs under its user's
/// lock, so it is atomic within this process (the only one that opens the
/// records). Pending enrollments and challenges live in memory: a restart
/// drops them, and the user starts again.
pub struct Locked<R> {
    records: R,
    challenges: ChallengeBook,
    locks: Mutex<HashMap<Username, Weak<Mutex<()>>>>,
    pending: Mutex<HashMap<Username, Pending>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<R: Records> Locked<R> {
    pub fn new(records: R) -> Locked<R> {
        Locked {
            records,
            challenges: ChallengeBook::default(),
            locks: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `work` under `user`'s lock.
    fn locked<T>(&self, user: &Username, work: impl FnOnce() -> T) -> T {
        let user_lock = {
            let mut locks = lock(&self.locks);
            match locks.get(user).and_then(Weak::upgrade) {
                Some(l) => l,
                None => {
                    locks.retain(|_, weak| weak.strong_count() > 0);
                    let l = Arc::new(Mutex::new(()));
                    locks.insert(user.clone(), Arc::downgrade(&l));
                    l
                }
            }
        };
        let _guard = lock(&user_lock);
        work()
    }

    /// Loads, changes and saves `user`'s account under its lock.
    fn update<T>(
        &self,
        user: &Username,
        change: impl FnOnce(&mut Account) -> Result<(T, Durability), StorageError>,
    ) -> Result<Option<T>, StorageError> {
        self.locked(user, || {
            let Some(mut account) = self.records.load(user)? else { return Ok(None) };
            let (answer, durability) = change(&mut account)?;
            if durability != Durability::Unchanged {
                self.records.save(user, &account, durability)?;
            }
            Ok(Some(answer))
        })
    }
}

impl<R: Records> Storage for Locked<R> {
    fn summary(&self, user: &Username, now: u64) -> Result<Option<Summary>, StorageError> {
        Ok(self.records.load(user)?.map(|a| Summary {
            enrolled_at: a.enrolled_at,
            recovery_left: u32::try_from(a.recovery.hashes.len()).unwrap_or(u32::MAX),
            locked_for: a.locked_for(now),
            push_blocked_since: a.push_blocked_since,
        }))
    }

    fn users(&self) -> Result<Vec<(Username, u64)>, StorageError> {
        self.records.users()
    }

    fn verify(
        &self,
        user: &Username,
        attempt: &Attempt,
        rules: &Rules,
        now: u64,
    ) -> Result<Option<Verdict>, StorageError> {
        self.update(user, |account| {
            account
                .verify(attempt, rules, now)
                .map_err(|message| StorageError::Unusable { user: user.to_string(), message })
        })
    }

    fn is_remembered(
        &self,
        user: &Username,
        device: &Device,
        now: u64,
    ) -> Result<bool, StorageError> {
        Ok(self.records.load(user)?.is_some_and(|a| a.remembers(device, now)))
    }

    fn forget_devices(&self, user: &Username, now: u64) -> Result<Option<u32>, StorageError> {
        self.update(user, |account| {
            let count = account.remembered.iter().filter(|r| r.until > now).count();
            account.remembered.clear();
            Ok((u32::try_from(count).unwrap_or(u32::MAX), Durability::Durable))
        })
    }

    fn set_push_blocked(
        &self,
        user: &Username,
        since: Option<u64>,
    ) -> Result<Option<bool>, StorageError> {
        self.update(user, |account| {
            let was = account.push_blocked_since != 0;
            // 0 means "not blocked": a block at time 0 is kept as 1.
            account.push_blocked_since = since.map_or(0, |t| t.max(1));
            Ok((was, Durability::Durable))
        })
    }

    fn begin_enrollment(
        &self,
        user: &Username,
        pending: Pending,
        now: u64,
    ) -> Result<Zeroizing<Vec<u8>>, StorageError> {
        let secret = pending.secret.clone();
        self.locked(user, || {
            let mut all = lock(&self.pending);
            all.retain(|_, p| p.expires_at > now);
            all.insert(user.clone(), pending);
        });
        Ok(secret)
    }

    fn has_pending(&self, user: &Username, now: u64) -> Result<bool, StorageError> {
        Ok(lock(&self.pending).get(user).is_some_and(|p| p.expires_at > now))
    }

    fn confirm_enrollment(
        &self,
        user: &Username,
        code: &str,
        skew: u64,
        recovery: RecoveryHashes,
        now: u64,
    ) -> Result<Confirmation, StorageError> {
        self.locked(user, || {
            let mut all = lock(&self.pending);
            let Some(pending) = all.get_mut(user) else { return Ok(Confirmation::NoPending) };
            match account::confirm(pending, code, skew, recovery, now) {
                Ok(account) => {
                    self.records.save(user, &account, Durability::Durable)?;
                    all.remove(user);
                    Ok(Confirmation::Confirmed)
                }
                Err((refusal, keep)) => {
                    if !keep {
                        all.remove(user);
                    }
                    Ok(refusal)
                }
            }
        })
    }

    fn install(&self, user: &Username, account: Account) -> Result<(), StorageError> {
        self.locked(user, || self.records.save(user, &account, Durability::Durable))
    }

    fn replace_recovery(
        &self,
        user: &Username,
        recovery: RecoveryHashes,
    ) -> Result<bool, StorageError> {
        let done = self.update(user, |account| {
            account.recovery = recovery;
            Ok(((), Durability::Durable))
        })?;
        Ok(done.is_some())
    }

    fn remove(&self, user: &Username) -> Result<bool, StorageError> {
        self.locked(user, || {
            let had_pending = lock(&self.pending).remove(user).is_some();
            Ok(self.records.remove(user)? || had_pending)
        })
    }

    fn create_challenge(
        &self,
        challenge: Challenge,
        budget: Budget,
        now: u64,
    ) -> Result<Result<(), Refused>, StorageError> {
        Ok(self.challenges.create(challenge, budget, now))
    }

    fn watch_challenge(
        &self,
        id: &str,
        creator: &str,
    ) -> Result<Result<(Waiter, u64), NotTaken>, StorageError> {
        Ok(self.challenges.watch(id, creator))
    }

    fn settle_challenge(&self, id: &str, now: u64) -> Result<ChallengeOutcome, StorageError> {
        Ok(self.challenges.settle(id, now))
    }

    fn answer_challenge(
        &self,
        id: &str,
        user: &str,
        number: u32,
        approver: Approver,
        rule: SessionRule,
        now: u64,
    ) -> Result<Result<(ChallengeOutcome, Challenge), NotTaken>, StorageError> {
        Ok(self.challenges.answer(id, user, number, approver, rule, now))
    }

    fn end_challenge(
        &self,
        id: &str,
        outcome: ChallengeOutcome,
        by: Ender<'_>,
        now: u64,
    ) -> Result<Result<(ChallengeOutcome, Challenge), NotTaken>, StorageError> {
        Ok(self.challenges.end(id, outcome, by, now))
    }

    fn pending_challenges(
        &self,
        user: Option<&str>,
        now: u64,
    ) -> Result<Vec<Listed>, StorageError> {
        Ok(self.challenges.pending(user, now))
    }

    fn cancel_challenges_of(&self, creator: &str, now: u64) -> Result<Vec<String>, StorageError> {
        Ok(self.challenges.cancel_created_by(creator, now))
    }

    fn phones(&self, user: &Username) -> Result<Vec<Phone>, StorageError> {
        Ok(self.records.load(user)?.map(|a| a.phones.clone()).unwrap_or_default())
    }

    fn add_phone(&self, user: &Username, phone: Phone) -> Result<bool, StorageError> {
        let added = self.update(user, |account| {
            account.phones.retain(|p| p.credential_id != phone.credential_id);
            account.phones.push(phone);
            Ok(((), Durability::Durable))
        })?;
        Ok(added.is_some())
    }

    fn remove_phone(&self, user: &Username, credential_id: &[u8]) -> Result<bool, StorageError> {
        let removed = self.update(user, |account| {
            let before = account.phones.len();
            account.phones.retain(|p| p.credential_id != credential_id);
            let gone = account.phones.len() < before;
            Ok((gone, if gone { Durability::Durable } else { Durability::Unchanged }))
        })?;
        Ok(removed == Some(true))
    }

    fn phone_used(
        &self,
        user: &Username,
        credential_id: &[u8],
        counter: u32,
        now: u64,
    ) -> Result<bool, StorageError> {
        let used = self.update(user, |account| {
            let phone = account.phones.iter_mut().find(|p| p.credential_id == credential_id);
            match phone {
                Some(p) if passkey::counter_advances(p.sign_count, counter) => {
                    p.sign_count = counter;
                    p.last_used = now;
                    Ok((true, Durability::Durable))
                }
                _ => Ok((false, Durability::Unchanged)),
            }
        })?;
        Ok(used == Some(true))
    }

    fn phone_owner(&self, credential_id: &[u8]) -> Result<Option<Username>, StorageError> {
        for (user, _) in self.records.users()? {
            let has = self
                .records
                .load(&user)?
                .is_some_and(|a| a.phones.iter().any(|p| p.credential_id == credential_id));
            if has {
                return Ok(Some(user));
            }
        }
        Ok(None)
    }
}
