//! Number matching: one pending challenge per user, its number drawn from
//! the CSPRNG, ended by the right number, a wrong one, a denial, expiry, or
//! a newer request. Pure functions of (state, input, now); `bus.rs` wakes
//! the waiting creator.

use std::collections::HashMap;

use pam_mfa_protocol::wire::ChallengeOutcome;

/// Where a request came from, as shown to the approver (never the number).
pub type Context = HashMap<String, String>;

/// An audit session id (`/proc/PID/sessionid`); `None` when unreadable.
/// The kernel's "unset" value (4294967295) is a session like any other:
/// two processes outside any login session count as the same session.
pub type SessionId = Option<u32>;

/// Who may approve relative to the request's login session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRule {
    /// The approver's audit session must differ from the requester's and
    /// must itself have passed pam_mfa's second factor (default).
    Mfa,
    /// The approver's audit session must differ from the requester's.
    Different,
    /// Any session of the user (weaker: a script in the requesting session
    /// could approve its own sudo).
    Any,
}

/// The login session an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Approver {
    pub session: SessionId,
    /// Whether that session passed pam_mfa's second factor as the user.
    pub verified: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub id: String,
    pub user: String,
    pub number: u32,
    pub context: Context,
    pub created_at: u64,
    pub expires_at: u64,
    pub requester_session: SessionId,
    /// The D-Bus unique name of the creator: the challenge ends when it leaves.
    pub creator: String,
    /// A test from `mfa-approve --test`: unlocks nothing, any session may answer.
    pub test: bool,
    pub outcome: Option<ChallengeOutcome>,
}

/// Why an approver's answer was not taken (the challenge stays as it was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotTaken {
    /// No such challenge for this user (or it belongs to another user).
    Unknown,
    /// Already ended, with this outcome.
    Ended(ChallengeOutcome),
    /// The approval came from the requesting login session.
    SameSession,
    /// The approver's login session never passed a second factor.
    NotVerified,
}

/// Draws the number shown to the user: 10 to 99, uniformly, by rejection
/// sampling over random bytes from `next_byte`.
pub fn draw_number(mut next_byte: impl FnMut() -> u8) -> u32 {
    loop {
        let b = next_byte();
        // 180 = 2 * 90: the largest multiple of 90 below 256.
        if b < 180 {
            return 10 + u32::from(b) % 90;
        }
    }
}

impl Challenge {
    /// What its creator is told: (id, number to show, seconds to answer).
    pub fn reply(self) -> (String, u32, u64) {
        let expires_in = self.expires_at.saturating_sub(self.created_at);
        (self.id, self.number, expires_in)
    }

    /// The outcome, counting expiry at `now`.
    pub fn outcome_at(&self, now: u64) -> Option<ChallengeOutcome> {
        self.outcome.or_else(|| (now >= self.expires_at).then_some(ChallengeOutcome::Expired))
    }

    /// Ends the challenge (if still pending) with `outcome`.
    pub fn end(&mut self, outcome: ChallengeOutcome, now: u64) -> ChallengeOutcome {
        let ended = self.outcome_at(now).unwrap_or(outcome);
        self.outcome = Some(ended);
        ended
    }

    /// An approver typed `number`. A wrong number ends the challenge at
    /// once (no second guess). Session rules are checked first, so a refused
    /// approver changes nothing.
    pub fn answer(
        &mut self,
        number: u32,
        approver: Approver,
        rule: SessionRule,
        now: u64,
    ) -> Result<ChallengeOutcome, NotTaken> {
        if let Some(ended) = self.outcome_at(now) {
            self.outcome = Some(ended);
            return Err(NotTaken::Ended(ended));
        }
        if !self.test && rule != SessionRule::Any {
            if approver.session.is_none() || approver.session == self.requester_session {
                return Err(NotTaken::SameSession);
            }
            if rule == SessionRule::Mfa && !approver.verified {
                return Err(NotTaken::NotVerified);
            }
        }
        let outcome = if number == self.number {
            ChallengeOutcome::Approved
        } else {
            ChallengeOutcome::WrongNumber
        };
        self.outcome = Some(outcome);
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(session: u32) -> Approver {
        Approver { session: Some(session), verified: true }
    }

    fn challenge() -> Challenge {
        Challenge {
            id: "c1".into(),
            user: "alice".into(),
            number: 71,
            context: Context::new(),
            created_at: 100,
            expires_at: 160,
            requester_session: Some(5),
            creator: ":1.7".into(),
            test: false,
            outcome: None,
        }
    }

    #[test]
    fn the_right_number_from_another_session_approves() {
        let mut c = challenge();
        assert_eq!(
            c.answer(71, from(6), SessionRule::Different, 120),
            Ok(ChallengeOutcome::Approved)
        );
        assert_eq!(c.outcome_at(200), Some(ChallengeOutcome::Approved), "expiry does not undo it");
    }

    #[test]
    fn a_wrong_number_ends_the_challenge() {
        let mut c = challenge();
        assert_eq!(
            c.answer(17, from(6), SessionRule::Different, 120),
            Ok(ChallengeOutcome::WrongNumber)
        );
        assert_eq!(
            c.answer(71, from(6), SessionRule::Different, 121),
            Err(NotTaken::Ended(ChallengeOutcome::WrongNumber))
        );
    }

    #[test]
    fn the_requesting_session_cannot_approve_unless_allowed() {
        let mut c = challenge();
        assert_eq!(c.answer(71, from(5), SessionRule::Different, 120), Err(NotTaken::SameSession));
        assert_eq!(
            c.answer(71, Approver { session: None, verified: true }, SessionRule::Different, 120),
            Err(NotTaken::SameSession)
        );
        assert_eq!(c.outcome, None, "a refused approver changes nothing");
        assert_eq!(c.answer(71, from(5), SessionRule::Any, 120), Ok(ChallengeOutcome::Approved));
    }

    #[test]
    fn by_default_only_a_session_that_passed_a_second_factor_approves() {
        let mut c = challenge();
        let unverified = Approver { session: Some(6), verified: false };
        assert_eq!(c.answer(71, unverified, SessionRule::Mfa, 120), Err(NotTaken::NotVerified));
        assert_eq!(c.answer(71, from(5), SessionRule::Mfa, 120), Err(NotTaken::SameSession));
        assert_eq!(c.outcome, None, "a refused approver changes nothing");
        assert_eq!(
            c.answer(71, unverified, SessionRule::Different, 120),
            Ok(ChallengeOutcome::Approved)
        );
        let mut c = challenge();
        assert_eq!(c.answer(71, from(6), SessionRule::Mfa, 120), Ok(ChallengeOutcome::Approved));
    }

    #[test]
    fn a_test_challenge_may_be_answered_from_the_same_session() {
        let mut c = Challenge { test: true, ..challenge() };
        assert_eq!(
            c.answer(71, from(5), SessionRule::Different, 120),
            Ok(ChallengeOutcome::Approved)
        );
    }

    #[test]
    fn expiry_ends_it_and_late_answers_are_not_taken() {
        let mut c = challenge();
        assert_eq!(c.outcome_at(159), None);
        assert_eq!(c.outcome_at(160), Some(ChallengeOutcome::Expired));
        assert_eq!(
            c.answer(71, from(6), SessionRule::Different, 160),
            Err(NotTaken::Ended(ChallengeOutcome::Expired))
        );
    }

    #[test]
    fn ending_keeps_the_first_outcome() {
        let mut c = challenge();
        assert_eq!(c.end(ChallengeOutcome::Denied, 120), ChallengeOutcome::Denied);
        assert_eq!(c.end(ChallengeOutcome::Superseded, 121), ChallengeOutcome::Denied);
    }

    #[test]
    fn numbers_are_two_digits_and_uniform() {
        let mut bytes = (0u8..=255).cycle();
        let mut counts = [0u32; 100];
        for _ in 0..(180 * 10) {
            let n = draw_number(|| bytes.next().unwrap_or(0));
            assert!((10..=99).contains(&n));
            counts[n as usize] += 1;
        }
        let used: Vec<u32> = counts[10..].to_vec();
        assert!(used.iter().all(|c| *c == used[0]), "{used:?}");
    }
}
