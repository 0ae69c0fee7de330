//! The errors mfad returns, named `io.github.pam_mfa.Error.<Name>`. Their
//! data is typed: the first argument of every error reply is an English
//! sentence for people reading a log or `busctl`; a count or a time an
//! error carries is a second argument (`u` or `t`), read as a number and
//! never parsed out of the sentence. Clients say them in the user's
//! language from the name and the number alone (`Texts::refusal` of the
//! config crate).

use zbus::message::{Header, Message};
use zbus::names::ErrorName;

use crate::names::ERROR_PREFIX;

/// Errors mfad returns.
#[derive(Debug)]
pub enum MfaError {
    /// Not mfad's: the bus or the connection failed.
    ZBus(zbus::Error),
    /// The caller may not do this (for this user).
    AccessDenied(String),
    /// An argument is malformed; nothing was changed.
    InvalidArgument(String),
    /// mfad could not do it (store unreadable, …); see its log.
    Internal(String),
    /// The user is enrolled already (since this unix time); replacing
    /// needs `replace` and proof.
    AlreadyEnrolled { since: u64 },
    /// Replacing or renewing needs a current code (or a recovery code),
    /// and none, or a wrong one, was given.
    ProofRefused,
    /// Too many wrong codes: nothing is checked for this many seconds.
    LockedOut { retry_after: u64 },
    /// The user has no active enrollment.
    NotEnrolled,
    /// Confirm without a started enrollment (or after its last try).
    NoPendingEnrollment,
    /// The started enrollment expired before its first code.
    PendingExpired,
    /// The first code of a started enrollment was wrong; this many tries are left.
    WrongCode { tries_left: u32 },
    /// No such challenge (for this user).
    NoSuchChallenge,
    /// The challenge has already ended, with this outcome (a
    /// [`crate::wire::ChallengeOutcome`] as a number).
    ChallengeEnded { outcome: u32 },
    /// The approval came from the requesting login session.
    SameSession,
    /// The approval came from a login session that never passed a second factor.
    SessionNotVerified,
    /// Too many requests of this user just now: one more in this many seconds.
    TooManyRequests { retry_after: u64 },
    /// Push requests of this user are blocked (since this unix time) after
    /// a "not me" report.
    PushBlocked { since: u64 },
    /// Another request of this user is waiting for approval.
    RequestPending,
}

/// The number an error carries as its second argument, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Datum {
    None,
    Count(u32),
    Time(u64),
}

impl MfaError {
    /// Every error name mfad returns (after `io.github.pam_mfa.Error.`):
    /// what the `io.github.pam_mfa.Errors` annotations of the committed
    /// XML may list. A unit test holds it to [`MfaError::short_name`].
    pub const NAMES: &'static [&'static str] = &[
        "AccessDenied",
        "InvalidArgument",
        "Internal",
        "AlreadyEnrolled",
        "ProofRefused",
        "LockedOut",
        "NotEnrolled",
        "NoPendingEnrollment",
        "PendingExpired",
        "WrongCode",
        "NoSuchChallenge",
        "ChallengeEnded",
        "SameSession",
        "SessionNotVerified",
        "TooManyRequests",
        "PushBlocked",
        "RequestPending",
    ];

    /// This error's name after `io.github.pam_mfa.Error.` (`None` for a
    /// bus error, which is not mfad's).
    pub fn short_name(&self) -> Option<&'static str> {
        Some(match self {
            MfaError::ZBus(_) => return None,
            MfaError::AccessDenied(_) => "AccessDenied",
            MfaError::InvalidArgument(_) => "InvalidArgument",
            MfaError::Internal(_) => "Internal",
            MfaError::AlreadyEnrolled { .. } => "AlreadyEnrolled",
            MfaError::ProofRefused => "ProofRefused",
            MfaError::LockedOut { .. } => "LockedOut",
            MfaError::NotEnrolled => "NotEnrolled",
            MfaError::NoPendingEnrollment => "NoPendingEnrollment",
            MfaError::PendingExpired => "PendingExpired",
            MfaError::WrongCode { .. } => "WrongCode",
            MfaError::NoSuchChallenge => "NoSuchChallenge",
            MfaError::ChallengeEnded { .. } => "ChallengeEnded",
            MfaError::SameSession => "SameSession",
            MfaError::SessionNotVerified => "SessionNotVerified",
            MfaError::TooManyRequests { .. } => "TooManyRequests",
            MfaError::PushBlocked { .. } => "PushBlocked",
            MfaError::RequestPending => "RequestPending",
        })
    }

    fn datum(&self) -> Datum {
        match self {
            MfaError::AlreadyEnrolled { since } | MfaError::PushBlocked { since } => {
                Datum::Time(*since)
            }
            MfaError::LockedOut { retry_after } | MfaError::TooManyRequests { retry_after } => {
                Datum::Time(*retry_after)
            }
            MfaError::WrongCode { tries_left } => Datum::Count(*tries_left),
            MfaError::ChallengeEnded { outcome } => Datum::Count(*outcome),
            _ => Datum::None,
        }
    }

    /// The sentence for logs and people reading the bus (English).
    pub fn message(&self) -> String {
        match self {
            MfaError::ZBus(e) => e.to_string(),
            MfaError::AccessDenied(m) | MfaError::InvalidArgument(m) | MfaError::Internal(m) => {
                m.clone()
            }
            MfaError::AlreadyEnrolled { since } => format!(
                "already enrolled (since unix time {since}); replacing needs --replace and a current code or a recovery code, or an administrator's reset"
            ),
            MfaError::ProofRefused => {
                "that is not a current code or an unused recovery code".into()
            }
            MfaError::LockedOut { retry_after } => {
                format!("too many wrong codes: try again in {retry_after} seconds")
            }
            MfaError::NotEnrolled => "not enrolled".into(),
            MfaError::NoPendingEnrollment => {
                "no enrollment was started (or it was already confirmed, or dropped after too many wrong codes)".into()
            }
            MfaError::PendingExpired => {
                "the enrollment expired before it was confirmed: start again".into()
            }
            MfaError::WrongCode { tries_left } => format!(
                "wrong code ({tries_left} tries left); check that the phone's clock is right"
            ),
            MfaError::NoSuchChallenge => "no such request (for this user)".into(),
            MfaError::ChallengeEnded { outcome } => {
                let outcome = crate::wire::ChallengeOutcome::try_from(*outcome)
                    .map_or("unknown", |o| o.as_str());
                format!("the request has already ended: {outcome}")
            }
            MfaError::SameSession => {
                "an approval must come from another login session than the request's".into()
            }
            MfaError::SessionNotVerified => {
                "an approval must come from a login session that passed a second factor".into()
            }
            MfaError::TooManyRequests { retry_after } => {
                format!("too many sign-in requests: one more in {retry_after} seconds")
            }
            MfaError::PushBlocked { since } => format!(
                "sign-in requests are blocked since unix time {since} (reported as not the user's)"
            ),
            MfaError::RequestPending => {
                "another sign-in request of this user is waiting for approval".into()
            }
        }
    }

    /// The error named `short` with its arguments (`None` for a name that
    /// is not mfad's). An argument missing or of the wrong type reads as 0.
    fn from_reply(short: &str, message: String, reply: &Message) -> Option<MfaError> {
        let time = || reply.body().deserialize::<(String, u64)>().map_or(0, |(_, t)| t);
        let count = || reply.body().deserialize::<(String, u32)>().map_or(0, |(_, n)| n);
        Some(match short {
            "AccessDenied" => MfaError::AccessDenied(message),
            "InvalidArgument" => MfaError::InvalidArgument(message),
            "Internal" => MfaError::Internal(message),
            "AlreadyEnrolled" => MfaError::AlreadyEnrolled { since: time() },
            "ProofRefused" => MfaError::ProofRefused,
            "LockedOut" => MfaError::LockedOut { retry_after: time() },
            "NotEnrolled" => MfaError::NotEnrolled,
            "NoPendingEnrollment" => MfaError::NoPendingEnrollment,
            "PendingExpired" => MfaError::PendingExpired,
            "WrongCode" => MfaError::WrongCode { tries_left: count() },
            "NoSuchChallenge" => MfaError::NoSuchChallenge,
            "ChallengeEnded" => MfaError::ChallengeEnded { outcome: count() },
            "SameSession" => MfaError::SameSession,
            "SessionNotVerified" => MfaError::SessionNotVerified,
            "TooManyRequests" => MfaError::TooManyRequests { retry_after: time() },
            "PushBlocked" => MfaError::PushBlocked { since: time() },
            "RequestPending" => MfaError::RequestPending,
            _ => return None,
        })
    }
}

impl zbus::DBusError for MfaError {
    fn create_reply(&self, call: &Header<'_>) -> zbus::Result<Message> {
        let builder = Message::error(call, self.name());
        let message = self.message();
        match self.datum() {
            Datum::None => builder.build(&(message,)),
            Datum::Count(n) => builder.build(&(message, n)),
            Datum::Time(t) => builder.build(&(message, t)),
        }
    }

    fn name(&self) -> ErrorName<'_> {
        match (self, self.short_name()) {
            (MfaError::ZBus(e), _) => {
                zbus::DBusError::name(&zbus::fdo::Error::Failed(e.to_string())).into_owned()
            }
            (_, Some(short)) => ErrorName::from_string_unchecked(format!("{ERROR_PREFIX}.{short}")),
            (_, None) => ErrorName::from_static_str_unchecked("org.freedesktop.DBus.Error.Failed"),
        }
    }

    fn description(&self) -> Option<&str> {
        match self {
            MfaError::AccessDenied(m) | MfaError::InvalidArgument(m) | MfaError::Internal(m) => {
                Some(m)
            }
            _ => None,
        }
    }
}

impl From<zbus::Error> for MfaError {
    fn from(error: zbus::Error) -> MfaError {
        if let zbus::Error::MethodError(name, description, reply) = &error {
            let short = name.as_str().strip_prefix(ERROR_PREFIX).and_then(|s| s.strip_prefix('.'));
            if let Some(short) = short {
                let message = description.clone().unwrap_or_default();
                if let Some(e) = MfaError::from_reply(short, message, reply) {
                    return e;
                }
            }
        }
        MfaError::ZBus(error)
    }
}

impl From<zbus::fdo::Error> for MfaError {
    fn from(e: zbus::fdo::Error) -> Self {
        MfaError::ZBus(e.into())
    }
}

impl std::fmt::Display for MfaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.short_name() {
            Some(short) => write!(f, "{ERROR_PREFIX}.{short}: {}", self.message()),
            None => write!(f, "{}", self.message()),
        }
    }
}

impl std::error::Error for MfaError {}

#[cfg(test)]
mod tests {
    use super::MfaError;

    fn each() -> Vec<MfaError> {
        vec![
            MfaError::AccessDenied(String::new()),
            MfaError::InvalidArgument(String::new()),
            MfaError::Internal(String::new()),
            MfaError::AlreadyEnrolled { since: 7 },
            MfaError::ProofRefused,
            MfaError::LockedOut { retry_after: 90 },
            MfaError::NotEnrolled,
            MfaError::NoPendingEnrollment,
            MfaError::PendingExpired,
            MfaError::WrongCode { tries_left: 4 },
            MfaError::NoSuchChallenge,
            MfaError::ChallengeEnded { outcome: 0 },
            MfaError::SameSession,
            MfaError::SessionNotVerified,
            MfaError::TooManyRequests { retry_after: 15 },
            MfaError::PushBlocked { since: 9 },
            MfaError::RequestPending,
        ]
    }

    #[test]
    fn every_error_has_its_name_in_the_list() {
        let each = each();
        let names: Vec<_> = each.iter().filter_map(MfaError::short_name).collect();
        assert_eq!(names, MfaError::NAMES);
        for e in &each {
            let full = zbus::DBusError::name(e).to_string();
            assert_eq!(
                Some(full.as_str().trim_start_matches("io.github.pam_mfa.Error.")),
                e.short_name()
            );
        }
    }
}
