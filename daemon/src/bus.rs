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
use crate::service::{Service, ServiceError};

/// Every method, for the authorization table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    IsEnrolled,
    VerifyCode,
    Enroll,
    Reset,
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
        Method::IsEnrolled | Method::VerifyCode => Rule::RootOrSelf,
        Method::Enroll | Method::Reset => Rule::RootOnly,
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
    tracing::error!(error = %e, "operation failed");
    MfaError::Internal("mfad could not complete this; the system log says why".into())
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

fn checked_code(code: &str) -> Result<(), MfaError> {
    if code.is_empty() || code.len() > 8 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MfaError::InvalidArgument("a code is 6 to 8 digits".into()));
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
        checked_code(code)?;
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

/// `io.github.pam_mfa.Admin1`: administration (root).
pub struct AdminInterface {
    pub service: Arc<Service>,
    pub host: String,
}

#[zbus::interface(name = "io.github.pam_mfa.Admin1")]
impl AdminInterface {
    /// Enrolls `user` with a new secret, replacing any; returns the otpauth URI.
    async fn enroll(
        &self,
        user: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, MfaError> {
        let user = parse_user(user)?;
        let caller = check(Method::Enroll, &user, &header, conn).await?;
        let service = Arc::clone(&self.service);
        let (host, logged_user) = (self.host.clone(), user.clone());
        let uri = blocking(move || service.enroll(&user, &host, clock::now())).await?;
        tracing::info!(user = %logged_user, caller_uid = caller, "enrolled");
        Ok(uri)
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
        for m in [
            Method::IsEnrolled,
            Method::VerifyCode,
            Method::Enroll,
            Method::Reset,
        ] {
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
    fn administration_is_root_only() {
        for m in [Method::Enroll, Method::Reset] {
            assert!(authorize(m, 1000, Some(1000)).is_err());
        }
    }

    #[test]
    fn malformed_arguments_are_refused() {
        assert!(checked_code("12345a").is_err());
        assert!(checked_code("").is_err());
        assert!(checked_code(&"1".repeat(10_000)).is_err());
        assert!(checked_code("123456").is_ok());
        let mut ctx = HashMap::new();
        ctx.insert("rhost".to_string(), "x".repeat(10_000));
        assert!(checked_context(&ctx).is_err());
        let mut ctx = HashMap::new();
        ctx.insert("evil".to_string(), "1".to_string());
        assert!(checked_context(&ctx).is_err());
    }
}
