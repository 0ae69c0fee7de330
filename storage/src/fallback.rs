//! Break-glass for a fleet host (`[store] fallback = "local"`): while the
//! database cannot be reached, codes of users enrolled in this host's own
//! file store are checked there; nobody else gets in. Everything else
//! (enrollment, challenges, resets) needs the database: the local store
//! is the administrators' emergency account, not a second copy.

use pam_mfa_core::account::{
    Account, Attempt, Confirmation, Device, Pending, RecoveryHashes, Rules, Verdict,
};
use pam_mfa_core::challenge::{Approver, Challenge, NotTaken, SessionRule};
use pam_mfa_core::challenges::{Announced, Budget, Ender, Listed, Refused, Waiter};
use pam_mfa_core::passkey::Phone;
use pam_mfa_core::storage::{SharedLinks, Storage, StorageError, Summary};
use pam_mfa_protocol::username::Username;
use pam_mfa_protocol::wire::ChallengeOutcome;
use zeroize::Zeroizing;

pub struct Fallback<P, L> {
    pub primary: P,
    pub local: L,
}

impl<P: Storage, L: Storage> Fallback<P, L> {
    /// `work` on the primary store, or on the local one while the primary
    /// cannot be reached (said in the log each time). A user the local
    /// store does not have is not "not enrolled" (nullok would let them
    /// in): the primary's error stands.
    fn either<T>(
        &self,
        what: &str,
        work: impl Fn(&dyn Storage) -> Result<Option<T>, StorageError>,
    ) -> Result<Option<T>, StorageError> {
        match work(&self.primary) {
            Err(e @ StorageError::Unreachable { .. }) => match work(&self.local)? {
                Some(found) => {
                    tracing::warn!(error = %e, operation = what, "store-fallback-local");
                    Ok(Some(found))
                }
                None => Err(e),
            },
            other => other,
        }
    }
}

impl<P: Storage, L: Storage> Storage for Fallback<P, L> {
    fn summary(&self, user: &Username, now: u64) -> Result<Option<Summary>, StorageError> {
        self.either("summary", |s| s.summary(user, now))
    }
    fn users(&self) -> Result<Vec<(Username, u64)>, StorageError> {
        self.primary.users()
    }
    fn verify(
        &self,
        user: &Username,
        attempt: &Attempt,
        rules: &Rules,
        now: u64,
    ) -> Result<Option<Verdict>, StorageError> {
        self.either("verify", |s| s.verify(user, attempt, rules, now))
    }
    fn is_remembered(
        &self,
        user: &Username,
        device: &Device,
        now: u64,
    ) -> Result<bool, StorageError> {
        let remembered = |s: &dyn Storage| Ok(s.is_remembered(user, device, now)?.then_some(()));
        Ok(self.either("is-remembered", remembered)?.is_some())
    }
    fn forget_devices(&self, user: &Username, now: u64) -> Result<Option<u32>, StorageError> {
        self.primary.forget_devices(user, now)
    }
    fn set_push_blocked(
        &self,
        user: &Username,
        since: Option<u64>,
    ) -> Result<Option<bool>, StorageError> {
        self.primary.set_push_blocked(user, since)
    }
    fn begin_enrollment(
        &self,
        user: &Username,
        pending: Pending,
        now: u64,
    ) -> Result<Zeroizing<Vec<u8>>, StorageError> {
        self.primary.begin_enrollment(user, pending, now)
    }
    fn has_pending(&self, user: &Username, now: u64) -> Result<bool, StorageError> {
        self.primary.has_pending(user, now)
    }
    fn confirm_enrollment(
        &self,
        user: &Username,
        code: &str,
        skew: u64,
        recovery: RecoveryHashes,
        now: u64,
    ) -> Result<Confirmation, StorageError> {
        self.primary.confirm_enrollment(user, code, skew, recovery, now)
    }
    fn install(&self, user: &Username, account: Account) -> Result<(), StorageError> {
        self.primary.install(user, account)
    }
    fn replace_recovery(
        &self,
        user: &Username,
        recovery: RecoveryHashes,
    ) -> Result<bool, StorageError> {
        self.primary.replace_recovery(user, recovery)
    }
    fn remove(&self, user: &Username) -> Result<bool, StorageError> {
        self.primary.remove(user)
    }
    fn create_challenge(
        &self,
        challenge: Challenge,
        budget: Budget,
        now: u64,
    ) -> Result<Result<(), Refused>, StorageError> {
        self.primary.create_challenge(challenge, budget, now)
    }
    fn watch_challenge(
        &self,
        id: &str,
        creator: &str,
    ) -> Result<Result<(Waiter, u64), NotTaken>, StorageError> {
        self.primary.watch_challenge(id, creator)
    }
    fn settle_challenge(&self, id: &str, now: u64) -> Result<ChallengeOutcome, StorageError> {
        self.primary.settle_challenge(id, now)
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
        self.primary.answer_challenge(id, user, number, approver, rule, now)
    }
    fn end_challenge(
        &self,
        id: &str,
        outcome: ChallengeOutcome,
        by: Ender<'_>,
        now: u64,
    ) -> Result<Result<(ChallengeOutcome, Challenge), NotTaken>, StorageError> {
        self.primary.end_challenge(id, outcome, by, now)
    }
    fn pending_challenges(
        &self,
        user: Option<&str>,
        now: u64,
    ) -> Result<Vec<Listed>, StorageError> {
        self.primary.pending_challenges(user, now)
    }
    fn cancel_challenges_of(&self, creator: &str, now: u64) -> Result<Vec<String>, StorageError> {
        self.primary.cancel_challenges_of(creator, now)
    }
    fn phones(&self, user: &Username) -> Result<Vec<Phone>, StorageError> {
        self.primary.phones(user)
    }
    fn add_phone(&self, user: &Username, phone: Phone) -> Result<bool, StorageError> {
        self.primary.add_phone(user, phone)
    }
    fn remove_phone(&self, user: &Username, credential_id: &[u8]) -> Result<bool, StorageError> {
        self.primary.remove_phone(user, credential_id)
    }
    fn phone_used(
        &self,
        user: &Username,
        credential_id: &[u8],
        counter: u32,
        now: u64,
    ) -> Result<bool, StorageError> {
        self.primary.phone_used(user, credential_id, counter, now)
    }
    fn phone_owner(&self, credential_id: &[u8]) -> Result<Option<Username>, StorageError> {
        self.primary.phone_owner(credential_id)
    }
    fn shared_links(&self) -> Option<&dyn SharedLinks> {
        self.primary.shared_links()
    }
    fn made_elsewhere(&self) -> Option<tokio::sync::broadcast::Receiver<Announced>> {
        self.primary.made_elsewhere()
    }
}
