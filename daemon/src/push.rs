//! The live number-matching state of mfad: pending challenges (one per
//! user), who waits on them, which approver connections are online, and
//! each user's budget of new requests ([`crate::flood`]).
//! Waiters are woken through a watch channel the moment a challenge ends:
//! nobody polls. Decisions are [`Challenge`]'s; this only keeps and wakes.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use pam_mfa_config::wire::ChallengeOutcome;
use tokio::sync::watch;

use crate::challenge::{Approver, Challenge, Context, NotTaken, SessionRule};
use crate::flood::Bucket;

/// Ended challenges are kept this long (seconds) so a late waiter or
/// approver gets the real outcome rather than "unknown".
const KEEP_ENDED: u64 = 300;

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
    /// approver connection (unique name) -> (user it approves for, whether
    /// its session may approve under `approver_session`)
    approvers: HashMap<String, (String, bool)>,
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

#[derive(Default)]
pub struct Registry {
    state: Mutex<State>,
}

fn end(entry: &mut Entry, outcome: ChallengeOutcome, now: u64) -> ChallengeOutcome {
    let ended = entry.challenge.end(outcome, now);
    entry.ended_at.get_or_insert(now);
    let _ = entry.wake.send(Some(ended));
    ended
}

impl Registry {
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

    /// A receiver that sees the outcome once the challenge ends; only the
    /// connection that created it may wait. Also returns its expiry time.
    pub fn watch(
        &self,
        id: &str,
        caller: &str,
    ) -> Result<(watch::Receiver<Option<ChallengeOutcome>>, u64), NotTaken> {
        let state = self.state();
        let entry = state.challenges.get(id).ok_or(NotTaken::Unknown)?;
        if entry.challenge.creator != caller {
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

    /// Ends `id` with `outcome` if `allowed` says the caller may (deny by
    /// the user's approver, cancel by the creator).
    pub fn end_if(
        &self,
        id: &str,
        outcome: ChallengeOutcome,
        now: u64,
        allowed: impl FnOnce(&Challenge) -> bool,
    ) -> Result<(ChallengeOutcome, Challenge), NotTaken> {
        let mut state = self.state();
        let entry = state.challenges.get_mut(id).ok_or(NotTaken::Unknown)?;
        if !allowed(&entry.challenge) {
            return Err(NotTaken::Unknown);
        }
        if let Some(ended) = entry.challenge.outcome_at(now) {
            end(entry, ended, now);
            return Err(NotTaken::Ended(ended));
        }
        Ok((end(entry, outcome, now), entry.challenge.clone()))
    }

    /// The user's pending challenges (at most one): id, context, seconds left.
    pub fn pending_for(&self, user: &str, now: u64) -> Vec<(String, Context, u64)> {
        let state = self.state();
        state
            .current
            .get(user)
            .and_then(|id| state.challenges.get(id))
            .filter(|e| e.challenge.outcome_at(now).is_none())
            .map(|e| {
                let c = &e.challenge;
                (c.id.clone(), c.context.clone(), c.expires_at.saturating_sub(now))
            })
            .into_iter()
            .collect()
    }

    /// Every pending challenge: id, context, seconds left.
    pub fn all_pending(&self, now: u64) -> Vec<(String, Context, u64)> {
        let state = self.state();
        state
            .challenges
            .values()
            .filter(|e| e.challenge.outcome_at(now).is_none())
            .map(|e| {
                let c = &e.challenge;
                (c.id.clone(), c.context.clone(), c.expires_at.saturating_sub(now))
            })
            .collect()
    }

    /// `connection` approves for `user`; `can_approve` when its session may
    /// (an agent in a session that passed no second factor is only told).
    pub fn register_approver(&self, connection: &str, user: &str, can_approve: bool) {
        self.state().approvers.insert(connection.to_string(), (user.to_string(), can_approve));
    }

    /// The connections of `user`'s approvers, all told of each request.
    pub fn approvers_of(&self, user: &str) -> Vec<String> {
        let state = self.state();
        state.approvers.iter().filter(|(_, (u, _))| u == user).map(|(c, _)| c.clone()).collect()
    }

    /// Whether an approver of `user` that may approve is online: what
    /// mode=auto pushes for (else it asks for a code, rather than wait for
    /// an approval nobody online can give).
    pub fn has_approver(&self, user: &str) -> bool {
        self.state().approvers.values().any(|(u, can)| u == user && *can)
    }

    /// A connection left the bus: its challenges end as cancelled, and it
    /// is no longer an approver. Returns the ids cancelled.
    pub fn forget_connection(&self, connection: &str, now: u64) -> Vec<String> {
        let mut state = self.state();
        state.approvers.remove(connection);
        let mut cancelled = Vec::new();
        for entry in state.challenges.values_mut() {
            if entry.challenge.creator == connection && entry.challenge.outcome_at(now).is_none() {
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
        let reg = Registry::default();
        reg.create(challenge("a", "alice"), BUDGET, 0).unwrap();
        let (rx, _) = reg.watch("a", ":1.1").unwrap();
        assert_eq!(
            reg.create(challenge("b", "alice"), BUDGET, 1),
            Err(Refused::Pending("a".into()))
        );
        assert_eq!(*rx.borrow(), None, "the waiting request was not ended");
        assert_eq!(reg.pending_for("alice", 1)[0].0, "a");
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
        let reg = Registry::default();
        for (i, at) in [0u64, 0, 0].iter().enumerate() {
            let id = format!("r{i}");
            reg.create(challenge(&id, "alice"), BUDGET, *at).unwrap();
            reg.end_if(&id, ChallengeOutcome::Cancelled, *at, |_| true).unwrap();
        }
        assert_eq!(reg.create(challenge("r3", "alice"), BUDGET, 5), Err(Refused::TooMany(15)));
        assert!(reg.create(challenge("r4", "alice"), BUDGET, 20).is_ok());
    }

    #[test]
    fn only_the_creator_may_wait_and_only_the_user_may_answer() {
        let reg = Registry::default();
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
        assert!(reg.pending_for("bob", 1).is_empty());
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
    fn a_creator_leaving_cancels_and_an_approver_leaving_goes_offline() {
        let reg = Registry::default();
        reg.create(challenge("a", "alice"), BUDGET, 0).unwrap();
        reg.register_approver(":1.8", "alice", false);
        assert!(!reg.has_approver("alice"), "an approver that may not approve does not count");
        assert_eq!(reg.approvers_of("alice"), vec![":1.8".to_string()], "but it is told");
        reg.register_approver(":1.9", "alice", true);
        assert!(reg.has_approver("alice"));
        assert_eq!(reg.forget_connection(":1.1", 1), vec!["a".to_string()]);
        assert_eq!(reg.settle("a", 1), ChallengeOutcome::Cancelled);
        reg.forget_connection(":1.9", 1);
        assert!(!reg.has_approver("alice"));
    }

    #[test]
    fn settle_expires_on_time() {
        let reg = Registry::default();
        reg.create(challenge("a", "alice"), BUDGET, 0).unwrap();
        assert_eq!(reg.settle("a", 59), ChallengeOutcome::Pending);
        assert_eq!(reg.settle("a", 60), ChallengeOutcome::Expired);
    }
}
