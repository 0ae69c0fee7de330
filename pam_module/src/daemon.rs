//! What the module asks of mfad, as a trait: `bus.rs` is the real one,
//! the unit tests of `authenticate.rs` script their own.

use std::collections::HashMap;

use pam_mfa_protocol::wire::{ChallengeOutcome, VerifyOutcome};

/// Why mfad gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonError {
    /// Not reachable, no owner of the name, or no answer within the bound.
    Unavailable(String),
    /// mfad answered with an error (refused, bad input, internal).
    Refused(String),
    /// mfad made no push request; a code may still be typed.
    PushRefused(PushRefusal),
}

/// Why mfad made no push request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushRefusal {
    /// Too many just now: another in this many seconds.
    TooMany(u64),
    /// Another request of the user is waiting.
    Pending,
    /// Blocked after a "not me" report, until a code login.
    Blocked,
}

impl PushRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            PushRefusal::TooMany(_) => "too-many-requests",
            PushRefusal::Pending => "another-request-waiting",
            PushRefusal::Blocked => "blocked-after-report",
        }
    }
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DaemonError::Unavailable(e) => write!(f, "mfad unavailable: {e}"),
            DaemonError::Refused(e) => write!(f, "mfad refused: {e}"),
            DaemonError::PushRefused(why) => write!(f, "mfad made no request: {}", why.as_str()),
        }
    }
}

/// What the module asks of mfad.
pub trait Daemon {
    fn is_enrolled(&mut self, user: &str) -> Result<bool, DaemonError>;
    fn verify_code(
        &mut self,
        user: &str,
        code: &str,
        context: &HashMap<String, String>,
    ) -> Result<(VerifyOutcome, u64), DaemonError>;
    fn has_approver(&mut self, user: &str) -> Result<bool, DaemonError>;
    /// Whether `user` approves on a phone (one registered, the web approver online).
    fn has_phone(&mut self, user: &str) -> Result<bool, DaemonError>;
    /// (challenge id, number to show, seconds to expiry)
    fn create_challenge(
        &mut self,
        user: &str,
        context: &HashMap<String, String>,
    ) -> Result<(String, u32, u64), DaemonError>;
    fn wait_challenge(
        &mut self,
        id: &str,
        wait: std::time::Duration,
    ) -> Result<ChallengeOutcome, DaemonError>;
    fn cancel_challenge(&mut self, id: &str) -> Result<(), DaemonError>;
    /// Whether this device (SSH key, remote host, service) is remembered for `user`.
    fn is_remembered(
        &mut self,
        user: &str,
        device: &HashMap<String, String>,
    ) -> Result<bool, DaemonError>;
    /// Whether `user` must use a second factor under these lists.
    fn covered(
        &mut self,
        user: &str,
        require_groups: &[String],
        exempt_users: &[String],
        exempt_groups: &[String],
    ) -> Result<bool, DaemonError>;
}
