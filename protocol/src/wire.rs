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
        matches!(self, VerifyOutcome::Accepted | VerifyOutcome::RecoveryAccepted)
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
        VerifyOutcome::ALL.into_iter().find(|o| *o as u32 == v).ok_or(v)
    }
}

/// How a number-matching challenge ended. Stable numbers (D-Bus `u`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ChallengeOutcome {
    /// The approver typed the right number: the sign-in may go ahead.
    Approved = 0,
    /// The approver said no.
    Denied = 1,
    /// The approver typed another number: ended at once.
    WrongNumber = 2,
    /// Nobody answered in time.
    Expired = 3,
    /// A newer request for the same user replaced it.
    Superseded = 4,
    /// The requester gave up (left the bus, or typed a code instead).
    Cancelled = 5,
    /// Still waiting (a wait that ended before the challenge did).
    Pending = 6,
}

impl ChallengeOutcome {
    pub const ALL: [ChallengeOutcome; 7] = [
        ChallengeOutcome::Approved,
        ChallengeOutcome::Denied,
        ChallengeOutcome::WrongNumber,
        ChallengeOutcome::Expired,
        ChallengeOutcome::Superseded,
        ChallengeOutcome::Cancelled,
        ChallengeOutcome::Pending,
    ];

    /// The word used in logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeOutcome::Approved => "approved",
            ChallengeOutcome::Denied => "denied",
            ChallengeOutcome::WrongNumber => "wrong-number",
            ChallengeOutcome::Expired => "expired",
            ChallengeOutcome::Superseded => "superseded",
            ChallengeOutcome::Cancelled => "cancelled",
            ChallengeOutcome::Pending => "pending",
        }
    }
}

impl From<ChallengeOutcome> for u32 {
    fn from(o: ChallengeOutcome) -> u32 {
        o as u32
    }
}

impl TryFrom<u32> for ChallengeOutcome {
    type Error = u32;
    fn try_from(v: u32) -> Result<Self, u32> {
        ChallengeOutcome::ALL.into_iter().find(|o| *o as u32 == v).ok_or(v)
    }
}

/// Keys of the context dictionary sent with an attempt (all optional).
pub mod context {
    pub const SERVICE: &str = "service";
    pub const RHOST: &str = "rhost";
    pub const TTY: &str = "tty";
    /// The command being approved (for sudo, its command line).
    pub const COMMAND: &str = "command";
    /// The host the request is made on (added by mfad).
    pub const HOST: &str = "host";
    /// Unix time the request was made (added by mfad).
    pub const TIME: &str = "time";
    /// The user the approval is for (added by mfad).
    pub const USER: &str = "user";
    /// The SSH public key that authenticated before the code ("TYPE
    /// BASE64", from sshd's SSH_AUTH_INFO_0 in the PAM environment), in
    /// services the config names as SSH: what a remembered device is.
    pub const SSH_KEY: &str = "ssh_key";
}

/// The first public key in sshd's `SSH_AUTH_INFO_0` ("publickey TYPE
/// BASE64 ..." lines, one per method that passed), as "TYPE BASE64"; `None`
/// when no key authenticated (a password, or keyboard-interactive alone).
pub fn ssh_key_of(auth_info: &str) -> Option<String> {
    auth_info.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next() != Some("publickey") {
            return None;
        }
        let (kind, blob) = (words.next()?, words.next()?);
        let plausible = |w: &str, extra: &[u8]| {
            !w.is_empty()
                && w.len() <= 8192
                && w.bytes().all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
        };
        (plausible(kind, b"-@.") && plausible(blob, b"+/=")).then(|| format!("{kind} {blob}"))
    })
}

#[cfg(test)]
mod ssh_key_tests {
    use super::ssh_key_of;

    #[test]
    fn the_key_is_found_and_nothing_else_counts() {
        let info = "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIabc+/=\nkeyboard-interactive\n";
        assert_eq!(
            ssh_key_of(info).as_deref(),
            Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIabc+/=")
        );
        assert_eq!(ssh_key_of("password\n"), None);
        assert_eq!(ssh_key_of("keyboard-interactive\n"), None);
        assert_eq!(ssh_key_of(""), None);
        assert_eq!(ssh_key_of("publickey ssh-ed25519\n"), None, "no key blob");
        assert_eq!(ssh_key_of("publickey ssh\u{0}ed25519 AAAA\n"), None);
    }
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

    #[test]
    fn challenge_outcome_round_trips_through_its_number() {
        for o in ChallengeOutcome::ALL {
            assert_eq!(ChallengeOutcome::try_from(u32::from(o)), Ok(o));
        }
        assert_eq!(ChallengeOutcome::try_from(7), Err(7));
    }
}
