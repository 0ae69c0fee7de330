//! The D-Bus face of mfad: translates calls into [`Service`] operations and
//! authorizes each from the caller's bus credentials. The bus policy is the
//! first fence; this is the second.

use std::collections::HashMap;
use std::sync::Arc;

use pam_mfa_config::client::MfaError;
use pam_mfa_config::username::Username;
use pam_mfa_config::wire::context;
use zbus::fdo::DBusProxy;
use zbus::message::Header;
use zbus::Connection;

use crate::clock;
use crate::service::{Refusal, Service, ServiceError};

/// Every method, for the authorization table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    // Pam1
    IsEnrolled,
    VerifyCode,
    // Enroll1
    Begin,
    Confirm,
    Status,
    NewRecoveryCodes,
    ImportGoogleAuthenticator,
    // Admin1
    ListUsers,
    Reset,
}

impl Method {
    pub const ALL: [Method; 9] = [
        Method::IsEnrolled,
        Method::VerifyCode,
        Method::Begin,
        Method::Confirm,
        Method::Status,
        Method::NewRecoveryCodes,
        Method::ImportGoogleAuthenticator,
        Method::ListUsers,
        Method::Reset,
    ];
}

/// Who may call a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Root for anyone; another user only for itself.
    RootOrSelf,
    /// Root only.
    RootOnly,
}

/// The authorization table (DESIGN.md rule 2).
pub const fn rule(method: Method) -> Rule {
    match method {
        Method::IsEnrolled
        | Method::VerifyCode
        | Method::Begin
        | Method::Confirm
        | Method::Status
        | Method::NewRecoveryCodes
        | Method::ImportGoogleAuthenticator => Rule::RootOrSelf,
        Method::ListUsers | Method::Reset => Rule::RootOnly,
    }
}

/// Decides from the caller's uid and the target user's uid (`None` when
/// the name has no account).
pub fn authorize(method: Method, caller: u32, target: Option<u32>) -> Result<(), MfaError> {
    let allowed = caller == 0
        || match rule(method) {
            Rule::RootOnly => false,
            Rule::RootOrSelf => target == Some(caller),
        };
    if allowed {
        Ok(())
    } else {
        Err(MfaError::AccessDenied(format!(
            "{method:?} for this user is not allowed to uid {caller}"
        )))
    }
}

/// The identity of the sender of the current message, from the bus daemon.
async fn caller_uid(header: &Header<'_>, conn: &Connection) -> Result<u32, MfaError> {
    let sender = header
        .sender()
        .ok_or_else(|| MfaError::AccessDenied("the message has no sender".into()))?;
    let dbus = DBusProxy::new(conn).await?;
    Ok(dbus.get_connection_unix_user(sender.clone().into()).await?)
}

fn parse_user(user: &str) -> Result<Username, MfaError> {
    Username::parse(user).map_err(|e| MfaError::InvalidArgument(e.to_string()))
}

fn uid_of(user: &Username) -> Option<u32> {
    nix::unistd::User::from_name(user.as_str())
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
}

/// Checks the caller against the table, logging refusals.
async fn check(
    method: Method,
    user: &Username,
    header: &Header<'_>,
    conn: &Connection,
) -> Result<u32, MfaError> {
    let caller = caller_uid(header, conn).await?;
    if let Err(e) = authorize(method, caller, uid_of(user)) {
        tracing::warn!(method = ?method, user = %user, caller_uid = caller, "refused: not authorized");
        return Err(e);
    }
    Ok(caller)
}

fn internal(e: ServiceError) -> MfaError {
    let refusal = match e {
        ServiceError::Refused(refusal) => refusal,
        other => {
            tracing::error!(error = %other, "operation failed");
            return MfaError::Internal("mfad could not complete this; its log says why".into());
        }
    };
    let text = refusal.to_string();
    match refusal {
        Refusal::AlreadyEnrolled { .. } => MfaError::AlreadyEnrolled(text),
        Refusal::ProofRequired | Refusal::ProofRefused { .. } => MfaError::ProofRefused(text),
        Refusal::NotEnrolled => MfaError::NotEnrolled(text),
        Refusal::NoPendingEnrollment => MfaError::NoPendingEnrollment(text),
        Refusal::PendingExpired => MfaError::PendingExpired(text),
        Refusal::WrongCode { .. } | Refusal::TooManyTries => MfaError::WrongCode(text),
        Refusal::BadImport(_) => MfaError::InvalidArgument(text),
    }
}

/// Runs blocking store work off the async executor.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, MfaError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(internal),
        Err(e) => Err(MfaError::Internal(format!("worker failed: {e}"))),
    }
}

/// Longest context value kept (service, rhost, tty).
const MAX_CONTEXT_VALUE: usize = 256;

fn checked_context(ctx: &HashMap<String, String>) -> Result<(), MfaError> {
    for (key, value) in ctx {
        if ![context::SERVICE, context::RHOST, context::TTY].contains(&key.as_str()) {
            return Err(MfaError::InvalidArgument(format!(
                "unknown context key {key:?}"
            )));
        }
        if value.len() > MAX_CONTEXT_VALUE {
            return Err(MfaError::InvalidArgument(format!(
                "context {key} is longer than {MAX_CONTEXT_VALUE} bytes"
            )));
        }
    }
    Ok(())
}

/// A code or recovery code: 1 to 32 ASCII letters, digits, '-' or ' '.
/// `allow_empty` for an optional proof.
fn checked_code(code: &str, allow_empty: bool) -> Result<(), MfaError> {
    let ok = code.len() <= 32
        && (allow_empty || !code.is_empty())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b' ');
    if !ok {
        return Err(MfaError::InvalidArgument(
            "a code is 6 to 8 digits, a recovery code 16 letters and digits".into(),
        ));
    }
    Ok(())
}

/// `io.github.pam_mfa.Pam1`: for the PAM module (root).
pub struct PamInterface {
    pub service: Arc<Service>,
}

#[zbus::interface(name = "io.github.pam_mfa.Pam1")]
impl PamInterface {
    /// Whether `user` has an active enrollment.
    async fn is_enrolled(
        &self,
        user: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<bool, MfaError> {
        let user = parse_user(user)?;
        check(Method::IsEnrolled, &user, &header, conn).await?;
        let service = Arc::clone(&self.service);
        blocking(move || service.is_enrolled(&user)).await
    }

    /// Checks a code: returns (outcome, seconds left of a lockout).
    async fn verify_code(
        &self,
        user: &str,
        code: &str,
        context: HashMap<String, String>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(u32, u64), MfaError> {
        let user = parse_user(user)?;
        checked_code(code, false)?;
        checked_context(&context)?;
        let caller = check(Method::VerifyCode, &user, &header, conn).await?;
        let service = Arc::clone(&self.service);
        let code = zeroize::Zeroizing::new(code.to_string());
        let logged_user = user.clone();
        let verdict = blocking(move || service.verify(&user, &code, clock::now())).await?;
        let field = |key: &str| context.get(key).cloned().unwrap_or_default();
        tracing::info!(
            user = %logged_user,
            service = ?field(context::SERVICE),
            rhost = ?field(context::RHOST),
            tty = ?field(context::TTY),
            caller_uid = caller,
            result = verdict.outcome.as_str(),
            retry_after = verdict.retry_after,
            "verify"
        );
        Ok((verdict.outcome.into(), verdict.retry_after))
    }
}

/// `io.github.pam_mfa.Enroll1`: self-service enrollment (everyone, for
/// themselves; root for anyone).
pub struct EnrollInterface {
    pub service: Arc<Service>,
}

#[zbus::interface(name = "io.github.pam_mfa.Enroll1")]
impl EnrollInterface {
    /// Starts an enrollment; returns (otpauth URI, account name as the app
    /// shows it, seconds until it expires unconfirmed). The URI is the one
    /// time a secret leaves mfad. Replacing an active enrollment needs
    /// `replace` and, unless the caller is root, a current or recovery code
    /// as `proof` (else empty).
    async fn begin(
        &self,
        user: &str,
        replace: bool,
        proof: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(String, String, u64), MfaError> {
        let user = parse_user(user)?;
        checked_code(proof, true)?;
        let caller = check(Method::Begin, &user, &header, conn).await?;
        let service = Arc::clone(&self.service);
        let (proof, logged) = (zeroize::Zeroizing::new(proof.to_string()), user.clone());
        let result =
            blocking(move || service.begin(&user, replace, &proof, caller == 0, clock::now()))
                .await;
        log_step("enrollment-started", &logged, caller, &result);
        let started = result?;
        Ok((started.uri.to_string(), started.account, started.expires_in))
    }

    /// Confirms the started enrollment with the app's first code: it becomes
    /// active, and the new recovery codes are returned (once).
    async fn confirm(
        &self,
        user: &str,
        code: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<String>, MfaError> {
        let user = parse_user(user)?;
        checked_code(code, false)?;
        let caller = check(Method::Confirm, &user, &header, conn).await?;
        let service = Arc::clone(&self.service);
        let (code, logged) = (zeroize::Zeroizing::new(code.to_string()), user.clone());
        let result = blocking(move || service.confirm(&user, &code, clock::now())).await;
        log_step("enrollment-confirmed", &logged, caller, &result);
        Ok(result?.iter().map(|c| c.to_string()).collect())
    }

    /// (enrolled, enrolled since, recovery codes left, enrollment pending,
    /// seconds left of a lockout).
    async fn status(
        &self,
        user: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(bool, u64, u32, bool, u64), MfaError> {
        let user = parse_user(user)?;
        check(Method::Status, &user, &header, conn).await?;
        let service = Arc::clone(&self.service);
        blocking(move || {
            let now = clock::now();
            let pending = service.has_pending(&user, now);
            Ok(match service.status(&user, now)? {
                Some(s) => (true, s.enrolled_at, s.recovery_left, pending, s.locked_for),
                None => (false, 0, 0, pending, 0),
            })
        })
        .await
    }

    /// Replaces the recovery codes after a current code (root: no code needed).
    async fn new_recovery_codes(
        &self,
        user: &str,
        proof: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<String>, MfaError> {
        let user = parse_user(user)?;
        checked_code(proof, true)?;
        let caller = check(Method::NewRecoveryCodes, &user, &header, conn).await?;
        let service = Arc::clone(&self.service);
        let (proof, logged) = (zeroize::Zeroizing::new(proof.to_string()), user.clone());
        let result =
            blocking(move || service.new_recovery_codes(&user, &proof, caller == 0, clock::now()))
                .await;
        log_step("recovery-codes-replaced", &logged, caller, &result);
        Ok(result?.iter().map(|c| c.to_string()).collect())
    }

    /// Enrolls from the text of a `~/.google_authenticator` file; returns how
    /// many scratch codes became recovery codes. Replacing: as `Begin`.
    async fn import_google_authenticator(
        &self,
        user: &str,
        file: &str,
        replace: bool,
        proof: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u32, MfaError> {
        let user = parse_user(user)?;
        checked_code(proof, true)?;
        let parsed = crate::ga_import::parse(file).map_err(|e| {
            MfaError::InvalidArgument(format!("not a google-authenticator file: {e}"))
        })?;
        let caller = check(Method::ImportGoogleAuthenticator, &user, &header, conn).await?;
        let service = Arc::clone(&self.service);
        let (proof, logged) = (zeroize::Zeroizing::new(proof.to_string()), user.clone());
        let result = blocking(move || {
            service.import(&user, &parsed, replace, &proof, caller == 0, clock::now())
        })
        .await;
        log_step("imported-google-authenticator", &logged, caller, &result);
        result
    }
}

/// One log line per enrollment step: who, for whom, and how it ended.
fn log_step<T>(event: &str, user: &Username, caller: u32, result: &Result<T, MfaError>) {
    match result {
        Ok(_) => tracing::info!(user = %user, caller_uid = caller, result = "ok", "{event}"),
        Err(e) => {
            tracing::warn!(user = %user, caller_uid = caller, result = "refused", reason = %e, "{event}")
        }
    }
}

/// `io.github.pam_mfa.Admin1`: administration (root).
pub struct AdminInterface {
    pub service: Arc<Service>,
}

#[zbus::interface(name = "io.github.pam_mfa.Admin1")]
impl AdminInterface {
    /// All enrolled users with the unix time each enrolled.
    async fn list_users(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<(String, u64)>, MfaError> {
        let caller = caller_uid(&header, conn).await?;
        authorize(Method::ListUsers, caller, None)?;
        let service = Arc::clone(&self.service);
        let users = blocking(move || service.list()).await?;
        Ok(users.into_iter().map(|(u, t)| (u.to_string(), t)).collect())
    }

    /// Removes `user`'s enrollment; false when there was none.
    async fn reset(
        &self,
        user: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<bool, MfaError> {
        let user = parse_user(user)?;
        let caller = check(Method::Reset, &user, &header, conn).await?;
        let service = Arc::clone(&self.service);
        let logged_user = user.clone();
        let removed = blocking(move || service.reset(&user)).await?;
        tracing::info!(user = %logged_user, caller_uid = caller, removed, "reset");
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_may_do_everything_for_anyone() {
        for m in Method::ALL {
            assert!(authorize(m, 0, Some(1000)).is_ok());
            assert!(authorize(m, 0, None).is_ok());
        }
    }

    #[test]
    fn a_user_may_verify_only_for_itself() {
        assert!(authorize(Method::VerifyCode, 1000, Some(1000)).is_ok());
        assert!(matches!(
            authorize(Method::VerifyCode, 1000, Some(1001)),
            Err(MfaError::AccessDenied(_))
        ));
        assert!(authorize(Method::VerifyCode, 1000, None).is_err());
    }

    #[test]
    fn self_service_is_for_oneself_only() {
        for m in [
            Method::Begin,
            Method::Confirm,
            Method::Status,
            Method::NewRecoveryCodes,
            Method::ImportGoogleAuthenticator,
        ] {
            assert!(authorize(m, 1000, Some(1000)).is_ok(), "{m:?}");
            assert!(authorize(m, 1000, Some(1001)).is_err(), "{m:?}");
        }
    }

    #[test]
    fn administration_is_root_only() {
        for m in [Method::ListUsers, Method::Reset] {
            assert!(authorize(m, 1000, Some(1000)).is_err());
        }
    }

    #[test]
    fn malformed_arguments_are_refused() {
        assert!(checked_code("12345\u{e9}", false).is_err());
        assert!(checked_code("", false).is_err());
        assert!(checked_code("", true).is_ok());
        assert!(checked_code(&"1".repeat(10_000), false).is_err());
        assert!(checked_code("123456", false).is_ok());
        assert!(checked_code("ABCD-EFGH-JKLM-NPQR", false).is_ok());
        let mut ctx = HashMap::new();
        ctx.insert("rhost".to_string(), "x".repeat(10_000));
        assert!(checked_context(&ctx).is_err());
        let mut ctx = HashMap::new();
        ctx.insert("evil".to_string(), "1".to_string());
        assert!(checked_context(&ctx).is_err());
    }
}
