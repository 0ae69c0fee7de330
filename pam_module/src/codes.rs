//! PAM return codes (Linux-PAM's numbering), mapped both ways through one enum.

/// A Linux-PAM return value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum PamCode {
    Success = 0,
    OpenErr = 1,
    SymbolErr = 2,
    ServiceErr = 3,
    SystemErr = 4,
    BufErr = 5,
    PermDenied = 6,
    AuthErr = 7,
    CredInsufficient = 8,
    AuthinfoUnavail = 9,
    UserUnknown = 10,
    Maxtries = 11,
    NewAuthtokReqd = 12,
    AcctExpired = 13,
    SessionErr = 14,
    CredUnavail = 15,
    CredExpired = 16,
    CredErr = 17,
    NoModuleData = 18,
    ConvErr = 19,
    AuthtokErr = 20,
    AuthtokRecoveryErr = 21,
    AuthtokLockBusy = 22,
    AuthtokDisableAging = 23,
    TryAgain = 24,
    Ignore = 25,
    Abort = 26,
    AuthtokExpired = 27,
    ModuleUnknown = 28,
    BadItem = 29,
    ConvAgain = 30,
    Incomplete = 31,
}

impl PamCode {
    pub const ALL: [PamCode; 32] = [
        PamCode::Success,
        PamCode::OpenErr,
        PamCode::SymbolErr,
        PamCode::ServiceErr,
        PamCode::SystemErr,
        PamCode::BufErr,
        PamCode::PermDenied,
        PamCode::AuthErr,
        PamCode::CredInsufficient,
        PamCode::AuthinfoUnavail,
        PamCode::UserUnknown,
        PamCode::Maxtries,
        PamCode::NewAuthtokReqd,
        PamCode::AcctExpired,
        PamCode::SessionErr,
        PamCode::CredUnavail,
        PamCode::CredExpired,
        PamCode::CredErr,
        PamCode::NoModuleData,
        PamCode::ConvErr,
        PamCode::AuthtokErr,
        PamCode::AuthtokRecoveryErr,
        PamCode::AuthtokLockBusy,
        PamCode::AuthtokDisableAging,
        PamCode::TryAgain,
        PamCode::Ignore,
        PamCode::Abort,
        PamCode::AuthtokExpired,
        PamCode::ModuleUnknown,
        PamCode::BadItem,
        PamCode::ConvAgain,
        PamCode::Incomplete,
    ];

    /// The C macro name, for logs and tests.
    pub fn name(self) -> &'static str {
        match self {
            PamCode::Success => "PAM_SUCCESS",
            PamCode::OpenErr => "PAM_OPEN_ERR",
            PamCode::SymbolErr => "PAM_SYMBOL_ERR",
            PamCode::ServiceErr => "PAM_SERVICE_ERR",
            PamCode::SystemErr => "PAM_SYSTEM_ERR",
            PamCode::BufErr => "PAM_BUF_ERR",
            PamCode::PermDenied => "PAM_PERM_DENIED",
            PamCode::AuthErr => "PAM_AUTH_ERR",
            PamCode::CredInsufficient => "PAM_CRED_INSUFFICIENT",
            PamCode::AuthinfoUnavail => "PAM_AUTHINFO_UNAVAIL",
            PamCode::UserUnknown => "PAM_USER_UNKNOWN",
            PamCode::Maxtries => "PAM_MAXTRIES",
            PamCode::NewAuthtokReqd => "PAM_NEW_AUTHTOK_REQD",
            PamCode::AcctExpired => "PAM_ACCT_EXPIRED",
            PamCode::SessionErr => "PAM_SESSION_ERR",
            PamCode::CredUnavail => "PAM_CRED_UNAVAIL",
            PamCode::CredExpired => "PAM_CRED_EXPIRED",
            PamCode::CredErr => "PAM_CRED_ERR",
            PamCode::NoModuleData => "PAM_NO_MODULE_DATA",
            PamCode::ConvErr => "PAM_CONV_ERR",
            PamCode::AuthtokErr => "PAM_AUTHTOK_ERR",
            PamCode::AuthtokRecoveryErr => "PAM_AUTHTOK_RECOVERY_ERR",
            PamCode::AuthtokLockBusy => "PAM_AUTHTOK_LOCK_BUSY",
            PamCode::AuthtokDisableAging => "PAM_AUTHTOK_DISABLE_AGING",
            PamCode::TryAgain => "PAM_TRY_AGAIN",
            PamCode::Ignore => "PAM_IGNORE",
            PamCode::Abort => "PAM_ABORT",
            PamCode::AuthtokExpired => "PAM_AUTHTOK_EXPIRED",
            PamCode::ModuleUnknown => "PAM_MODULE_UNKNOWN",
            PamCode::BadItem => "PAM_BAD_ITEM",
            PamCode::ConvAgain => "PAM_CONV_AGAIN",
            PamCode::Incomplete => "PAM_INCOMPLETE",
        }
    }
}

impl From<PamCode> for i32 {
    fn from(code: PamCode) -> i32 {
        code as i32
    }
}

impl TryFrom<i32> for PamCode {
    type Error = i32;
    fn try_from(value: i32) -> Result<Self, i32> {
        PamCode::ALL.into_iter().find(|c| *c as i32 == value).ok_or(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for (i, code) in PamCode::ALL.into_iter().enumerate() {
            assert_eq!(i32::from(code), i as i32, "{} is out of order", code.name());
            assert_eq!(PamCode::try_from(i32::from(code)), Ok(code));
        }
        assert_eq!(PamCode::try_from(32), Err(32));
        assert_eq!(PamCode::try_from(-1), Err(-1));
    }
}
