//! Values that cross the bus: result codes and the context of an attempt.

/// The answer to a code check. Stable numbers: they are part of the D-Bus
/// API (`VerifyCode` returns one as `u`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum VerifyOutcome {
    /// The code was right and had not been used: the user is in.
    Accepted = 0,
    /// The code was wrong.
    Rejected = 1,
    /// The code was right but its time step was already used (replay).
    Replayed = 2,
    /// Too many failures: refused without checking until the lockout ends.
    LockedOut = 3,
    /// The user has no active enrollment.
    NotEnrolled = 4,
    /// An unused recovery code was given in place of a code: the user is
    /// in, and that recovery code is spent.
    RecoveryAccepted = 5,
}

impl VerifyOutcome {
    pub const ALL: [VerifyOutcome; 6] = [
        VerifyOutcome::Accepted,
        VerifyOutcome::Rejected,
        VerifyOutcome::Replayed,
        VerifyOutcome::LockedOut,
        VerifyOutcome::NotEnrolled,
        VerifyOutcome::RecoveryAccepted,
    ];

    /// Whether the user is in.
    pub fn is_success(self) -> bool {
        matches!(
            self,
            VerifyOutcome::Accepted | VerifyOutcome::RecoveryAccepted
        )
    }

    /// The word used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyOutcome::Accepted => "accepted",
            VerifyOutcome::Rejected => "rejected",
            VerifyOutcome::Replayed => "replayed",
            VerifyOutcome::LockedOut => "locked-out",
            VerifyOutcome::NotEnrolled => "not-enrolled",
            VerifyOutcome::RecoveryAccepted => "recovery-accepted",
        }
    }
}

impl From<VerifyOutcome> for u32 {
    fn from(o: VerifyOutcome) -> u32 {
        o as u32
    }
}

impl TryFrom<u32> for VerifyOutcome {
    type Error = u32;
    fn try_from(v: u32) -> Result<Self, u32> {
        VerifyOutcome::ALL
            .into_iter()
            .find(|o| *o as u32 == v)
            .ok_or(v)
    }
}

/// Keys of the context dictionary sent with an attempt (all optional).
pub mod context {
    pub const SERVICE: &str = "service";
    pub const RHOST: &str = "rhost";
    pub const TTY: &str = "tty";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_round_trips_through_its_number() {
        for o in VerifyOutcome::ALL {
            assert_eq!(VerifyOutcome::try_from(u32::from(o)), Ok(o));
        }
        assert_eq!(VerifyOutcome::try_from(99), Err(99));
    }
}
