//! Number-matching challenges kept in memory: the pending challenge of
//! each user, who may wait on it, and each user's budget of new requests
//! ([`crate::flood`]). The challenge half of the stores that keep nothing
//! of a challenge across a restart (files, memory). Waiters are woken
//! through a watch channel the moment a challenge ends: nobody polls.
//! Decisions are [`Challenge`]'s; this only keeps and wakes.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use pam_mfa_protocol::wire::ChallengeOutcome;
use tokio::sync::watch;

use crate::challenge::{Approver, Challenge, Context, NotTaken, SessionRule};
use crate::flood::Bucket;

/// Ended challenges are kept this long (seconds) so a late waiter or
/// approver gets the real outcome rather than "unknown".
const KEEP_ENDED: u64 = 300;

/// Sees a challenge's outcome once it ends.
pub type Waiter = watch::Receiver<Option<ChallengeOutcome>>;

/// A pending challenge as an approver sees it: id, context, seconds left.
pub type Listed = (String, Context, u64);

/// A challenge made elsewhere (by another host of a fleet), for this
/// host's approvers of its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    pub id: String,
    pub user: String,
    pub context: Context,
    pub expires_in: u64,
}

struct Entry {
    challenge: Challenge,
    ended_at: Option<u64>,
    wake: watch::Sender<Option<ChallengeOutcome>>,
}

#[derive(Default)]
struct State {
    challenges: HashMap<String, Entry>,
    /// user -> the id of the user's current challenge
    current: HashMap<String, String>,
    /// user -> budget of new requests
    buckets: HashMap<String, Bucket>,
}

/// Why a new request was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The user made too many just now: one more in this many seconds.
    TooMany(u64),
    /// One of the user's requests is still waiting (its id). A newcomer
    /// never ends it: a flood cannot cancel the user's own request.
    Pending(String),
}

/// The per-user budget of new requests: `burst`, then one every `every` s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub burst: u64,
    pub every: u64,
}

/// Who ends a challenge: only they may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ender<'a> {
    /// The requester that created it (a cancel): its opaque creator name.
    Creator(&'a str),
    /// An approver of the user it is for (a denial).
    User(&'a str),
    /// The user's approver saying "not me" (a test challenge cannot be reported).
    Reporter(&'a str),
}

impl Ender<'_> {
    fn may_end(&self, c: &Challenge) -> bool {
        match self {
            Ender::Creator(creator) => c.creator == *creator,
            Ender::User(user) => c.user == *user,
            Ender::Reporter(user) => c.user == *user && !c.test,
        }
    }
}

#[derive(Default)]
pub struct ChallengeBook {
    state: Mutex<State>,
}

fn end(entry: &mut Entry, outcome: ChallengeOutcome, now: u64) -> ChallengeOutcome {
    let ended = entry.challenge.end(outcome, now);
    entry.ended_at.get_or_insert(now);
    let _ = entry.wake.send(Some(ended));
    ended
}

fn listed(c: &Challenge, now: u64) -> Listed {
    (c.id.clone(), c.context.clone(), c.expires_at.saturating_sub(now))
}

impl ChallengeBook {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a challenge, within the user's budget and unless one of the
    /// user's is still pending (then the newcomer is refused, and the
    /// pending one goes on).
    pub fn create(&self, challenge: Challenge, budget: Budget, now: u64) -> Result<(), Refused> {
        let mut state = self.state();
        state.challenges.retain(|_, e| {
            e.ended_at.is_none_or(|t| t + KEEP_ENDED > now)
                && e.challenge.expires_at + KEEP_ENDED > now
        });
        let user = challenge.user.clone();
        let bucket =
            state.buckets.entry(user.clone()).or_insert_with(|| Bucket::full(budget.burst, now));
        bucket.take(budget.burst, budget.every, now).map_err(Refused::TooMany)?;
        // Buckets of quiet users are full again: forget them.
        state.buckets.retain(|_, b| !b.is_full_at(budget.burst, budget.every, now));
        if let Some(old) = state.current.get(&user) {
            if state.challenges.get(old).is_some_and(|e| e.challenge.outcome_at(now).is_none()) {
                return Err(Refused::Pending(old.clone()));
            }
        }
        let id = challenge.id.clone();
        let (wake, _) = watch::channel(None);
        state.current.insert(user, id.clone());
        state.challenges.insert(id, Entry { challenge, ended_at: None, wake });
        Ok(())
    }

    /// A receiver that sees the outcome once the challenge ends; only its
    /// creator may wait. Also returns its expiry time.
    pub fn watch(&self, id: &str, creator: &str) -> Result<(Waiter, u64), NotTaken> {
        let state = self.state();
        let entry = state.challenges.get(id).ok_or(NotTaken::Unknown)?;
        if entry.challenge.creator != creator {
            return Err(NotTaken::Unknown);
        }
        Ok((entry.wake.subscribe(), entry.challenge.expires_at))
    }

    /// The outcome at `now`, ending the challenge as expired if its time is up.
    pub fn settle(&self, id: &str, now: u64) -> ChallengeOutcome {
        let mut state = self.state();
        match state.challenges.get_mut(id) {
            Some(entry) => match entry.challenge.outcome_at(now) {
                Some(outcome) => end(entry, outcome, now),
                None => ChallengeOutcome::Pending,
            },
            None => ChallengeOutcome::Cancelled,
        }
    }

    /// An approver of `user` answers challenge `id` with `number`.
    pub fn answer(
        &self,
        id: &str,
        user: &str,
        number: u32,
        approver: Approver,
        rule: SessionRule,
        now: u64,
    ) -> Result<(ChallengeOutcome, Challenge), NotTaken> {
        let mut state = self.state();
        let entry = state.challenges.get_mut(id).ok_or(NotTaken::Unknown)?;
        if entry.challenge.user != user {
            return Err(NotTaken::Unknown);
        }
        let outcome = entry.challenge.answer(number, approver, rule, now)?;
        end(entry, outcome, now);
        Ok((outcome, entry.challenge.clone()))
    }

    /// Ends `id` with `outcome` if `by` may (a denial by the user's
    /// approver, a cancel by the creator).
    pub fn end(
        &self,
        id: &str,
        outcome: ChallengeOutcome,
        by: Ender<'_>,
        now: u64,
    ) -> Result<(ChallengeOutcome, Challenge), NotTaken> {
        let mut state = self.state();
        let entry = state.challenges.get_mut(id).ok_or(NotTaken::Unknown)?;
        if !by.may_end(&entry.challenge) {
            return Err(NotTaken::Unknown);
        }
        if let Some(ended) = entry.challenge.outcome_at(now) {
            end(entry, ended, now);
            return Err(NotTaken::Ended(ended));
        }
        Ok((end(entry, outcome, now), entry.challenge.clone()))
    }

    /// The pending challenges of `user` (at most one), or of everyone.
    pub fn pending(&self, user: Option<&str>, now: u64) -> Vec<Listed> {
        let state = self.state();
        let pending = |e: &&Entry| e.challenge.outcome_at(now).is_none();
        match user {
            Some(user) => state
                .current
                .get(user)
                .and_then(|id| state.challenges.get(id))
                .filter(pending)
                .map(|e| listed(&e.challenge, now))
                .into_iter()
                .collect(),
            None => state
                .challenges
                .values()
                .filter(pending)
                .map(|e| listed(&e.challenge, now))
                .collect(),
        }
    }

    /// The requester `creator` is gone: its pending challenges end as
    /// cancelled. Returns their ids.
    pub fn cancel_created_by(&self, creator: &str, now: u64) -> Vec<String> {
        let mut state = self.state();
        let mut cancelled = Vec::new();
        for entry in state.challenges.values_mut() {
            if entry.challenge.creator == creator && entry.challenge.outcome_at(now).is_none() {
                end(entry, ChallengeOutcome::Cancelled, now);
                cancelled.push(entry.challenge.id.clone());
            }
        }
        cancelled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(id: &str, user: &str) -> Challenge {
        Challenge {
            id: id.into(),
            user: user.into(),
            number: 42,
            context: Context::new(),
            created_at: 0,
            expires_at: 60,
            requester_session: Some(1),
            creator: ":1.1".into(),
            test: false,
            outcome: None,
        }
    }

    const BUDGET: Budget = Budget { burst: 3, every: 20 };

    #[test]
    fn a_new_request_is_refused_while_one_waits_and_the_waiting_one_goes_on() {
        let reg = ChallengeBook::default();
        reg.create(challenge("a", "alice"), BUDGET, 0).unwrap();
        let (rx, _) = reg.watch("a", ":1.1").unwrap();
        assert_eq!(
            reg.create(challenge("b", "alice"), BUDGET, 1),
            Err(Refused::Pending("a".into()))
        );
        assert_eq!(*rx.borrow(), None, "the waiting request was not ended");
        assert_eq!(reg.pending(Some("alice"), 1)[0].0, "a");
        assert!(
            reg.create(challenge("c", "bob"), BUDGET, 1).is_ok(),
            "other users are not held up"
        );
        // Once it has ended, the next may come.
        reg.settle("a", 60);
        assert!(reg.create(challenge("d", "alice"), BUDGET, 61).is_ok());
    }

    #[test]
    fn a_flood_of_requests_gets_the_burst_and_then_waits() {
        let reg = ChallengeBook::default();
        for (i, at) in [0u64, 0, 0].iter().enumerate() {
            let id = format!("r{i}");
            reg.create(challenge(&id, "alice"), BUDGET, *at).unwrap();
            reg.end(&id, ChallengeOutcome::Cancelled, Ender::Creator(":1.1"), *at).unwrap();
        }
        assert_eq!(reg.create(challenge("r3", "alice"), BUDGET, 5), Err(Refused::TooMany(15)));
        assert!(reg.create(challenge("r4", "alice"), BUDGET, 20).is_ok());
    }

    #[test]
    fn only_the_creator_may_wait_and_only_the_user_may_answer() {
        let reg = ChallengeBook::default();
        reg.create(challenge("a", "alice"), BUDGET, 0).unwrap();
        assert!(reg.watch("a", ":1.2").is_err());
        assert_eq!(
            reg.answer(
                "a",
                "bob",
                42,
                Approver { session: Some(2), verified: true },
                SessionRule::Different,
                1
            )
            .unwrap_err(),
            NotTaken::Unknown
        );
        assert!(reg.pending(Some("bob"), 1).is_empty());
        let (outcome, _) = reg
            .answer(
                "a",
                "alice",
                42,
                Approver { session: Some(2), verified: true },
                SessionRule::Different,
                1,
            )
            .unwrap();
        assert_eq!(outcome, ChallengeOutcome::Approved);
    }

    #[test]
    fn a_creator_leaving_cancels_its_challenges_only() {
        let reg = ChallengeBook::default();
        reg.create(challenge("a", "alice"), BUDGET, 0).unwrap();
        let mut other = challenge("b", "bob");
        other.creator = ":1.2".into();
        reg.create(other, BUDGET, 0).unwrap();
        assert_eq!(reg.cancel_created_by(":1.1", 1), vec!["a".to_string()]);
        assert_eq!(reg.settle("a", 1), ChallengeOutcome::Cancelled);
        assert_eq!(reg.settle("b", 1), ChallengeOutcome::Pending);
        assert_eq!(
            reg.end("b", ChallengeOutcome::Denied, Ender::User("alice"), 1).unwrap_err(),
            NotTaken::Unknown,
            "only bob's approver denies bob's request"
        );
        assert_eq!(
            reg.end("b", ChallengeOutcome::Denied, Ender::User("bob"), 1).unwrap().0,
            ChallengeOutcome::Denied
        );
    }

    #[test]
    fn settle_expires_on_time() {
        let reg = ChallengeBook::default();
        reg.create(challenge("a", "alice"), BUDGET, 0).unwrap();
        assert_eq!(reg.settle("a", 59), ChallengeOutcome::Pending);
        assert_eq!(reg.settle("a", 60), ChallengeOutcome::Expired);
    }
}
