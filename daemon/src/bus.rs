//! The D-Bus face of mfad: translates calls into [`Service`] operations and
//! authorizes each from the caller's bus credentials. The bus policy is the
//! first fence; this is the second.

use std::collections::HashMap;
use std::sync::Arc;

use pam_mfa_protocol::error::MfaError;
use pam_mfa_protocol::username::Username;
use pam_mfa_protocol::wire::context;
use zbus::fdo::DBusProxy;
use zbus::message::Header;
use zbus::Connection;

use crate::clock;
use crate::push::Approvers;
use crate::sessions::Sessions;
use pam_mfa_config::schema::ApproverSession;
use pam_mfa_core::challenge::{Approver, Challenge, NotTaken, SessionId, SessionRule};
use pam_mfa_core::challenges::{Ender, Refused};
use pam_mfa_core::service::NewChallenge;
use pam_mfa_core::service::{Refusal, Service, ServiceError};
use pam_mfa_core::storage::{Storage, StorageError};
use pam_mfa_protocol::names;
use pam_mfa_protocol::wire::{ChallengeOutcome, VerifyOutcome};

/// Every method of every interface mfad serves: the rows of the
/// authorization table. `protocol/dbus/*.xml` is the committed API; a test
/// walks it and fails on a method without a row here (or the other way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    // Pam1
    IsEnrolled,
    VerifyCode,
    CreateChallenge,
    WaitChallenge,
    CancelChallenge,
    HasApprover,
    HasPhone,
    IsRemembered,
    Covered,
    GrantSession,
    OpenSession,
    CloseSession,
    // Approver1
    Register,
    Pending,
    Approve,
    Deny,
    Report,
    StartTest,
    WaitTest,
    // Enroll1
    Begin,
    Confirm,
    Status,
    NewRecoveryCodes,
    ForgetDevices,
    ImportGoogleAuthenticator,
    AddPhone,
    WaitPhone,
    Phones,
    RemovePhone,
    // Admin1
    ListUsers,
    Reset,
    UnblockPush,
    // Web1
    WebRegister,
    CheckLink,
    WebAddPhone,
    SignIn,
    WebPending,
    WebApprove,
    WebDeny,
    WebReport,
}

/// Each method with its interface (the part after `io.github.pam_mfa.`)
/// and member name.
pub const METHODS: [(Method, &str, &str); 40] = [
    (Method::IsEnrolled, "Pam1", "IsEnrolled"),
    (Method::VerifyCode, "Pam1", "VerifyCode"),
    (Method::CreateChallenge, "Pam1", "CreateChallenge"),
    (Method::WaitChallenge, "Pam1", "WaitChallenge"),
    (Method::CancelChallenge, "Pam1", "CancelChallenge"),
    (Method::HasApprover, "Pam1", "HasApprover"),
    (Method::HasPhone, "Pam1", "HasPhone"),
    (Method::IsRemembered, "Pam1", "IsRemembered"),
    (Method::Covered, "Pam1", "Covered"),
    (Method::GrantSession, "Pam1", "GrantSession"),
    (Method::OpenSession, "Pam1", "OpenSession"),
    (Method::CloseSession, "Pam1", "CloseSession"),
    (Method::Register, "Approver1", "Register"),
    (Method::Pending, "Approver1", "Pending"),
    (Method::Approve, "Approver1", "Approve"),
    (Method::Deny, "Approver1", "Deny"),
    (Method::Report, "Approver1", "Report"),
    (Method::StartTest, "Approver1", "StartTest"),
    (Method::WaitTest, "Approver1", "WaitTest"),
    (Method::Begin, "Enroll1", "Begin"),
    (Method::Confirm, "Enroll1", "Confirm"),
    (Method::Status, "Enroll1", "Status"),
    (Method::NewRecoveryCodes, "Enroll1", "NewRecoveryCodes"),
    (Method::ForgetDevices, "Enroll1", "ForgetDevices"),
    (Method::ImportGoogleAuthenticator, "Enroll1", "ImportGoogleAuthenticator"),
    (Method::AddPhone, "Enroll1", "AddPhone"),
    (Method::WaitPhone, "Enroll1", "WaitPhone"),
    (Method::Phones, "Enroll1", "Phones"),
    (Method::RemovePhone, "Enroll1", "RemovePhone"),
    (Method::ListUsers, "Admin1", "ListUsers"),
    (Method::Reset, "Admin1", "Reset"),
    (Method::UnblockPush, "Admin1", "UnblockPush"),
    (Method::WebRegister, "Web1", "Register"),
    (Method::CheckLink, "Web1", "CheckLink"),
    (Method::WebAddPhone, "Web1", "AddPhone"),
    (Method::SignIn, "Web1", "SignIn"),
    (Method::WebPending, "Web1", "Pending"),
    (Method::WebApprove, "Web1", "Approve"),
    (Method::WebDeny, "Web1", "Deny"),
    (Method::WebReport, "Web1", "Report"),
];

impl Method {
    /// The method `member` of interface `io.github.pam_mfa.<interface>`.
    pub fn named(interface: &str, member: &str) -> Option<Method> {
        let short = interface.strip_prefix("io.github.pam_mfa.")?;
        METHODS.iter().find(|(_, i, m)| *i == short && *m == member).map(|(method, _, _)| *method)
    }
}

/// Who may call a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Root only (the PAM side, administration): the bus policy's fence,
    /// checked again here.
    RootOnly,
    /// Root for any user; another user only for itself (self-service).
    RootOrSelf,
    /// Anyone, for the caller's own user only: the user is the caller's,
    /// never an argument (approvers).
    OwnUser,
    /// The web approver's user (`[web] user`) and root: it acts for the
    /// users whose phones signed in, and every phone's signature is
    /// checked here (`web.rs`).
    WebUser,
}

impl Rule {
    /// The value of the method's `io.github.pam_mfa.Authorization`
    /// annotation in the committed XML.
    pub fn annotation(self) -> &'static str {
        match self {
            Rule::RootOnly => "root-only",
            Rule::RootOrSelf => "root-or-self",
            Rule::OwnUser => "own-user",
            Rule::WebUser => "web-user",
        }
    }
}

/// The authorization table (DESIGN.md rule 2), one row per method.
pub const fn rule(method: Method) -> Rule {
    match method {
        Method::IsEnrolled
        | Method::VerifyCode
        | Method::CreateChallenge
        | Method::WaitChallenge
        | Method::CancelChallenge
        | Method::HasApprover
        | Method::HasPhone
        | Method::IsRemembered
        | Method::Covered
        | Method::GrantSession
        | Method::OpenSession
        | Method::CloseSession
        | Method::ListUsers
        | Method::Reset
        | Method::UnblockPush => Rule::RootOnly,
        Method::Begin
        | Method::Confirm
        | Method::Status
        | Method::NewRecoveryCodes
        | Method::ForgetDevices
        | Method::ImportGoogleAuthenticator
        | Method::AddPhone
        | Method::Phones
        | Method::RemovePhone => Rule::RootOrSelf,
        Method::Register
        | Method::Pending
        | Method::Approve
        | Method::Deny
        | Method::Report
        | Method::StartTest
        | Method::WaitTest
        | Method::WaitPhone => Rule::OwnUser,
        Method::WebRegister
        | Method::CheckLink
        | Method::WebAddPhone
        | Method::SignIn
        | Method::WebPending
        | Method::WebApprove
        | Method::WebDeny
        | Method::WebReport => Rule::WebUser,
    }
}

/// Decides from the caller's uid and the target user's uid (`None` when
/// the name has no account, or the method names no user).
pub fn authorize(method: Method, caller: u32, target: Option<u32>) -> Result<(), MfaError> {
    let allowed = caller == 0
        || match rule(method) {
            Rule::RootOnly => false,
            Rule::RootOrSelf => target == Some(caller),
            Rule::OwnUser => true,
            // Who the web user is, is the config's: `web.rs` checks it.
            Rule::WebUser => false,
        };
    if allowed {
        Ok(())
    } else {
        Err(MfaError::AccessDenied(format!(
            "{method:?} for this user is not allowed to uid {caller}"
        )))
    }
}

/// Checks a method that names no user (the caller's own is implied, or
/// it is root's) against the table; returns the caller's uid.
async fn check_caller(
    method: Method,
    header: &Header<'_>,
    conn: &Connection,
) -> Result<u32, MfaError> {
    let caller = caller_uid(header, conn).await?;
    if let Err(e) = authorize(method, caller, None) {
        tracing::warn!(method = ?method, caller_uid = caller, "refused: not authorized");
        return Err(e);
    }
    Ok(caller)
}

/// The sender's unique name.
pub(crate) fn sender_of(header: &Header<'_>) -> Result<String, MfaError> {
    header
        .sender()
        .map(|s| s.to_string())
        .ok_or_else(|| MfaError::AccessDenied("the message has no sender".into()))
}

/// The audit session of the sender's process, from the bus daemon's pid
/// and /proc (never from anything the caller says).
async fn caller_session(header: &Header<'_>, conn: &Connection) -> SessionId {
    let sender = header.sender()?;
    let dbus = DBusProxy::new(conn).await.ok()?;
    let pid = dbus.get_connection_unix_process_id(sender.clone().into()).await.ok()?;
    std::fs::read_to_string(format!("/proc/{pid}/sessionid")).ok()?.trim().parse().ok()
}

fn username_of_uid(uid: u32) -> Result<Username, MfaError> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .and_then(|u| Username::parse(&u.name).ok())
        .ok_or_else(|| {
            MfaError::AccessDenied(format!("uid {caller} has no usable user name", caller = uid))
        })
}

pub(crate) fn not_taken(e: NotTaken) -> MfaError {
    match e {
        NotTaken::Unknown => MfaError::NoSuchChallenge,
        NotTaken::Ended(outcome) => MfaError::ChallengeEnded { outcome: outcome.into() },
        NotTaken::SameSession => MfaError::SameSession,
        NotTaken::NotVerified => MfaError::SessionNotVerified,
    }
}

/// The identity of the sender of the current message, from the bus daemon.
pub(crate) async fn caller_uid(header: &Header<'_>, conn: &Connection) -> Result<u32, MfaError> {
    let sender = header
        .sender()
        .ok_or_else(|| MfaError::AccessDenied("the message has no sender".into()))?;
    // A connection's uid never changes and the bus never reuses a unique
    // name, so one question per connection is enough.
    if let Some(uid) = callers().get(sender.as_str()).copied() {
        return Ok(uid);
    }
    let dbus = DBusProxy::new(conn).await?;
    let uid = dbus.get_connection_unix_user(sender.clone().into()).await?;
    callers().insert(sender.to_string(), uid);
    Ok(uid)
}

/// The uids of connected callers, by unique name.
fn callers() -> std::sync::MutexGuard<'static, HashMap<String, u32>> {
    static CALLERS: std::sync::OnceLock<std::sync::Mutex<HashMap<String, u32>>> =
        std::sync::OnceLock::new();
    CALLERS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

/// Forgets a caller that left the bus.
pub fn forget_caller(unique_name: &str) {
    callers().remove(unique_name);
}

pub(crate) fn parse_user(user: &str) -> Result<Username, MfaError> {
    Username::parse(user).map_err(|e| MfaError::InvalidArgument(e.to_string()))
}

/// The names of the user's groups, from NSS (empty for an unknown user).
fn groups_of(user: &str) -> Vec<String> {
    use nix::unistd::{getgrouplist, Group, User};
    let Some(account) = User::from_name(user).ok().flatten() else {
        return Vec::new();
    };
    let Ok(name) = std::ffi::CString::new(user) else {
        return Vec::new();
    };
    getgrouplist(&name, account.gid)
        .unwrap_or_else(|_| vec![account.gid])
        .into_iter()
        .filter_map(|gid| Group::from_gid(gid).ok().flatten().map(|g| g.name))
        .collect()
}

pub(crate) fn uid_of(user: &Username) -> Option<u32> {
    nix::unistd::User::from_name(user.as_str()).ok().flatten().map(|u| u.uid.as_raw())
}

/// An enrollment is for an account the system knows (`[enroll]
/// require_account`): root's typo or a file name is refused, not stored.
/// Others may only enroll themselves, which `check` has seen to.
fn known_account(service: &Service, user: &Username, caller: u32) -> Result<(), MfaError> {
    if caller == 0 && service.config().enroll.require_account && uid_of(user).is_none() {
        tracing::warn!(user = %user, caller_uid = caller, "enrollment-refused-no-account");
        return Err(MfaError::InvalidArgument(format!(
            "no account is named {:?} (getent passwd {user} finds none): create the account first, or check the name",
            user.as_str()
        )));
    }
    Ok(())
}

/// Checks the caller against the table, logging refusals.
async fn check(
    method: Method,
    user: &Username,
    header: &Header<'_>,
    conn: &Connection,
) -> Result<u32, MfaError> {
    let caller = caller_uid(header, conn).await?;
    // Root may act for anyone: no need to ask NSS who the user is (a
    // lookup costs dozens of system calls on every PAM request).
    let target = if caller == 0 { None } else { uid_of(user) };
    if let Err(e) = authorize(method, caller, target) {
        tracing::warn!(method = ?method, user = %user, caller_uid = caller, "refused: not authorized");
        return Err(e);
    }
    Ok(caller)
}

fn internal(e: ServiceError) -> MfaError {
    let refusal = match e {
        ServiceError::Refused(refusal) => refusal,
        ServiceError::Store(e @ StorageError::Unreachable { .. }) => {
            tracing::error!(error = %e, "store-unreachable");
            return MfaError::Internal(STORE_DOWN.into());
        }
        other => {
            tracing::error!(error = %other, "operation failed");
            return MfaError::Internal("mfad could not complete this; its log says why".into());
        }
    };
    match refusal {
        Refusal::AlreadyEnrolled { since } => MfaError::AlreadyEnrolled { since },
        Refusal::ProofRefused { outcome: VerifyOutcome::LockedOut, retry_after } => {
            MfaError::LockedOut { retry_after }
        }
        Refusal::ProofRequired | Refusal::ProofRefused { .. } => MfaError::ProofRefused,
        Refusal::NotEnrolled => MfaError::NotEnrolled,
        Refusal::NoPendingEnrollment => MfaError::NoPendingEnrollment,
        Refusal::PendingExpired => MfaError::PendingExpired,
        Refusal::WrongCode { tries_left } => MfaError::WrongCode { tries_left },
        // The started enrollment is gone: there is nothing left to confirm.
        Refusal::TooManyTries => MfaError::NoPendingEnrollment,
        Refusal::BadImport(_) => MfaError::InvalidArgument(refusal.to_string()),
    }
}

/// Runs blocking work of `service` off the async executor, bounded by
/// `[store] timeout_ms`: past it the caller is told the store cannot be
/// reached (the work itself ends when the store lets it).
async fn blocking<T: Send + 'static>(
    service: &Arc<Service>,
    work: impl FnOnce(&Service) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, MfaError> {
    let limit = std::time::Duration::from_millis(service.config().store.timeout_ms.get());
    let service = Arc::clone(service);
    match tokio::time::timeout(limit, tokio::task::spawn_blocking(move || work(&service))).await {
        Ok(Ok(result)) => result.map_err(internal),
        Ok(Err(e)) => Err(MfaError::Internal(format!("worker failed: {e}"))),
        Err(_) => {
            tracing::error!(limit_ms = limit.as_millis(), "store-unreachable: no answer in time");
            Err(MfaError::Internal(STORE_DOWN.into()))
        }
    }
}

/// What a caller is told when the store cannot be reached.
const STORE_DOWN: &str =
    "the enrollment store cannot be reached: the second factor cannot be checked now";

/// Runs one store operation off the async executor (a store may wait on
/// a disk or a database).
pub(crate) async fn stored<T: Send + 'static>(
    service: &Arc<Service>,
    work: impl FnOnce(&dyn Storage) -> Result<T, StorageError> + Send + 'static,
) -> Result<T, MfaError> {
    blocking(service, move |service| work(service.store()).map_err(ServiceError::from)).await
}

/// Longest context value kept (service, rhost, tty).
const MAX_CONTEXT_VALUE: usize = 256;

/// Longest SSH public key kept ("TYPE BASE64" of an RSA-16384 key fits).
const MAX_SSH_KEY: usize = 8192;

fn checked_context(ctx: &HashMap<String, String>) -> Result<(), MfaError> {
    for (key, value) in ctx {
        if ![context::SERVICE, context::RHOST, context::TTY, context::COMMAND, context::SSH_KEY]
            .contains(&key.as_str())
        {
            return Err(MfaError::InvalidArgument(format!("unknown context key {key:?}")));
        }
        let max = if key == context::SSH_KEY { MAX_SSH_KEY } else { MAX_CONTEXT_VALUE };
        if value.len() > max {
            return Err(MfaError::InvalidArgument(format!(
                "context {key} is longer than {max} bytes"
            )));
        }
    }
    Ok(())
}

/// A code (6 to 8 digits) or a recovery code (16 base32 characters, or
/// the 8 digits of an imported scratch code; dashes and spaces ignored).
/// Anything else cannot be right, is refused as malformed, and counts as
/// no attempt. `allow_empty` for an optional proof.
pub fn checked_code(code: &str, allow_empty: bool) -> Result<(), MfaError> {
    let digits = (6..=8).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit());
    let ok = (allow_empty && code.is_empty())
        || (code.len() <= 32 && (digits || pam_mfa_core::recovery::normalize(code).is_some()));
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
    pub approvers: Arc<Approvers>,
    pub sessions: Arc<Sessions>,
}

impl PamInterface {
    fn random_token(&self) -> Result<String, MfaError> {
        let bytes = self.service.random_bytes(16).map_err(internal)?;
        Ok(pam_mfa_core::uri::hex(&bytes))
    }

    /// The session token for a second factor of `user` that just
    /// succeeded on connection `sender` (in the reply: no second call).
    fn session_token(&self, user: &str, sender: &str) -> Result<String, MfaError> {
        let token = self.random_token()?;
        let now = clock::now();
        self.sessions.note_success(user, sender, now);
        self.sessions
            .grant(user, sender, token.clone(), now)
            .map_err(|e| MfaError::Internal(e.to_string()))?;
        Ok(token)
    }
}

/// Waits (woken, not polling) until challenge `id` ends or `limit_ms`
/// passes, for the connection that created it.
async fn wait_for_outcome(
    service: &Arc<Service>,
    id: &str,
    caller: &str,
    limit_ms: u32,
) -> Result<ChallengeOutcome, MfaError> {
    let (wanted, creator) = (id.to_string(), caller.to_string());
    let (mut rx, expires_at) =
        stored(service, move |store| store.watch_challenge(&wanted, &creator))
            .await?
            .map_err(not_taken)?;
    let now = clock::now();
    let until_expiry = std::time::Duration::from_secs(expires_at.saturating_sub(now));
    let limit = std::time::Duration::from_millis(u64::from(limit_ms)).min(until_expiry);
    let _ = tokio::time::timeout(limit, rx.wait_for(Option::is_some)).await;
    let wanted = id.to_string();
    let outcome =
        stored(service, move |store| store.settle_challenge(&wanted, clock::now())).await?;
    if outcome == ChallengeOutcome::Approved
        && !crate::web::phone_approval_holds(service, id).await?
    {
        return Ok(ChallengeOutcome::Denied);
    }
    Ok(outcome)
}

/// Sends `ChallengeCreated` to each approver connection of the user.
async fn announce(
    conn: &Connection,
    approvers: &Approvers,
    challenge: &Challenge,
    expires_in: u64,
) {
    tell_approvers(conn, approvers, &challenge.user, &challenge.id, &challenge.context, expires_in)
        .await;
}

/// Tells this host's approvers of a challenge another host of the fleet
/// made (the store heard of it; its number stays where it was made).
pub async fn announce_made_elsewhere(
    conn: &Connection,
    approvers: &Approvers,
    made: &pam_mfa_core::challenges::Announced,
) {
    tell_approvers(conn, approvers, &made.user, &made.id, &made.context, made.expires_in).await;
}

/// `ChallengeCreated` (id, context, seconds to answer) to each approver
/// connection of `user`: never the number.
async fn tell_approvers(
    conn: &Connection,
    approvers: &Approvers,
    user: &str,
    id: &str,
    context: &HashMap<String, String>,
    expires_in: u64,
) {
    for approver in approvers.of(user) {
        let body = (id, context, expires_in);
        let sent = conn
            .emit_signal(
                Some(approver.as_str()),
                names::OBJECT_PATH,
                names::APPROVER_INTERFACE,
                "ChallengeCreated",
                &body,
            )
            .await;
        if let Err(e) = sent {
            tracing::warn!(approver = %approver, error = %e, "cannot notify an approver");
        }
    }
    tell_web(conn, approvers, user).await;
}

/// `RequestsChanged` to the web approver: a request of `user` was made or
/// ended, so the user's open pages list them again (never a number).
pub(crate) async fn tell_web(conn: &Connection, approvers: &Approvers, user: &str) {
    for web in approvers.web() {
        let sent = conn
            .emit_signal(
                Some(web.as_str()),
                names::OBJECT_PATH,
                names::WEB_INTERFACE,
                "RequestsChanged",
                &(user,),
            )
            .await;
        if let Err(e) = sent {
            tracing::warn!(web = %web, error = %e, "cannot notify the web approver");
        }
    }
}

/// Makes, keeps and announces a challenge.
pub(crate) async fn open_challenge(
    service: &Arc<Service>,
    approvers: &Approvers,
    conn: &Connection,
    new: NewChallenge,
) -> Result<Challenge, MfaError> {
    let user = new.user.clone();
    let field = |key: &str| new.context.get(key).cloned().unwrap_or_default();
    let (service_name, rhost, tty) =
        (field(context::SERVICE), field(context::RHOST), field(context::TTY));
    let opened =
        blocking(service, move |service| service.open_challenge(new, clock::now())).await?;
    match opened {
        Ok(challenge) => {
            let expires_in = challenge.expires_at.saturating_sub(challenge.created_at);
            announce(conn, approvers, &challenge, expires_in).await;
            Ok(challenge)
        }
        Err(Refused::TooMany(wait)) => {
            tracing::warn!(user = %user, service = ?service_name, rhost = ?rhost, tty = ?tty, retry_after = wait, "challenge-refused-too-many");
            Err(MfaError::TooManyRequests { retry_after: wait })
        }
        Err(Refused::Pending(waiting)) => {
            tracing::warn!(user = %user, service = ?service_name, rhost = ?rhost, tty = ?tty, waiting = %waiting, "challenge-refused-pending");
            Err(MfaError::RequestPending)
        }
    }
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
        blocking(&self.service, move |service| service.is_enrolled(&user)).await
    }

    /// Checks a code: returns (outcome, seconds left of a lockout, and
    /// after a success a one-time token that `OpenSession` takes from the
    /// process opening the login session; else "").
    async fn verify_code(
        &self,
        user: &str,
        code: &str,
        context: HashMap<String, String>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(u32, u64, String), MfaError> {
        let user = parse_user(user)?;
        checked_code(code, false)?;
        checked_context(&context)?;
        let caller = check(Method::VerifyCode, &user, &header, conn).await?;
        let code = zeroize::Zeroizing::new(code.to_string());
        let logged_user = user.clone();
        let device = pam_mfa_core::service::Device::of(&context);
        let rhost = context.get(context::RHOST).cloned().unwrap_or_default();
        let pam_service = context.get(context::SERVICE).cloned().unwrap_or_default();
        let verdict = blocking(&self.service, move |service| {
            service.verify_from(&user, &code, &rhost, &pam_service, device.as_ref(), clock::now())
        })
        .await?;
        let token = if verdict.outcome.is_success() {
            self.session_token(logged_user.as_str(), &sender_of(&header)?)?
        } else {
            String::new()
        };
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
        Ok((verdict.outcome.into(), verdict.retry_after, token))
    }

    /// Starts number matching for `user`: returns (challenge id, the number
    /// to show on the requesting screen, seconds until it expires). The
    /// user's approvers are told of it, without the number.
    async fn create_challenge(
        &self,
        user: &str,
        context: HashMap<String, String>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(String, u32, u64), MfaError> {
        let user = parse_user(user)?;
        checked_context(&context)?;
        let caller = check(Method::CreateChallenge, &user, &header, conn).await?;
        let blocked_user = user.clone();
        if let Some(since) =
            blocking(&self.service, move |service| service.push_blocked(&blocked_user)).await?
        {
            tracing::warn!(user = %user, blocked_since = since, "challenge-refused-blocked");
            return Err(MfaError::PushBlocked { since });
        }
        let creator = sender_of(&header)?;
        let session = caller_session(&header, conn).await;
        let field = |key: &str| context.get(key).cloned().unwrap_or_default();
        let (service_name, rhost, tty, command) = (
            field(context::SERVICE),
            field(context::RHOST),
            field(context::TTY),
            field(context::COMMAND),
        );
        let new = NewChallenge {
            user: user.clone(),
            context,
            creator,
            requester_session: session,
            test: false,
        };
        let creator = new.creator.clone();
        let challenge = open_challenge(&self.service, &self.approvers, conn, new).await?;
        self.sessions.requested(
            &challenge.id,
            user.as_str(),
            &creator,
            challenge.expires_at,
            clock::now(),
        );
        tracing::info!(
            user = %user,
            service = ?service_name,
            rhost = ?rhost,
            tty = ?tty,
            command = ?command,
            caller_uid = caller,
            challenge = %challenge.id,
            approvers = self.approvers.of(user.as_str()).len(),
            "challenge-created"
        );
        Ok(challenge.reply())
    }

    /// Waits until challenge `id` ends (or `timeout_ms` passes: then
    /// "pending"); only its creator may wait. Returns the outcome.
    async fn wait_challenge(
        &self,
        id: &str,
        timeout_ms: u32,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u32, MfaError> {
        check_caller(Method::WaitChallenge, &header, conn).await?;
        let caller = sender_of(&header)?;
        let outcome = wait_for_outcome(&self.service, id, &caller, timeout_ms).await?;
        if outcome != ChallengeOutcome::Pending {
            let approved = outcome == ChallengeOutcome::Approved;
            self.sessions.request_ended(id, &caller, approved, clock::now());
        }
        if outcome == ChallengeOutcome::Expired {
            tracing::info!(challenge = %id, result = outcome.as_str(), "challenge-ended");
        }
        Ok(outcome.into())
    }

    /// The requester gives up on `id` (e.g. the user typed a code instead).
    async fn cancel_challenge(
        &self,
        id: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u32, MfaError> {
        check_caller(Method::CancelChallenge, &header, conn).await?;
        let caller = sender_of(&header)?;
        let id = id.to_string();
        let ended = stored(&self.service, move |store| {
            store.end_challenge(
                &id,
                ChallengeOutcome::Cancelled,
                Ender::Creator(&caller),
                clock::now(),
            )
        })
        .await?;
        match ended {
            Ok((outcome, c)) => {
                tell_web(conn, &self.approvers, &c.user).await;
                tracing::info!(user = %c.user, challenge = %c.id, result = outcome.as_str(), "challenge-ended");
                Ok(outcome.into())
            }
            Err(NotTaken::Ended(outcome)) => Ok(outcome.into()),
            Err(e) => Err(not_taken(e)),
        }
    }

    /// Whether `user` must use a second factor under these lists (group
    /// membership from NSS, here in mfad so that the module's wait stays
    /// bounded). A user NSS does not know is covered.
    async fn covered(
        &self,
        user: &str,
        require_groups: Vec<String>,
        exempt_users: Vec<String>,
        exempt_groups: Vec<String>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<bool, MfaError> {
        let user = parse_user(user)?;
        for list in [&require_groups, &exempt_users, &exempt_groups] {
            if list.len() > 64 || list.iter().any(|n| n.is_empty() || n.len() > 64) {
                return Err(MfaError::InvalidArgument(
                    "a policy list has at most 64 names of 1 to 64 bytes".into(),
                ));
            }
        }
        check(Method::Covered, &user, &header, conn).await?;
        let name = user.to_string();
        tokio::task::spawn_blocking(move || {
            let groups = groups_of(&name);
            pam_mfa_core::policy::covered(
                &name,
                &groups,
                &require_groups,
                &exempt_users,
                &exempt_groups,
            )
        })
        .await
        .map_err(|e| MfaError::Internal(format!("worker failed: {e}")))
    }

    /// Whether the device in `context` (SSH key, remote host, service) is
    /// remembered for `user` (`[remember]`).
    async fn is_remembered(
        &self,
        user: &str,
        context: HashMap<String, String>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<bool, MfaError> {
        let user = parse_user(user)?;
        checked_context(&context)?;
        check(Method::IsRemembered, &user, &header, conn).await?;
        let Some(device) = pam_mfa_core::service::Device::of(&context) else {
            return Ok(false);
        };
        blocking(&self.service, move |service| service.is_remembered(&user, &device, clock::now()))
            .await
    }

    /// After a second factor of `user` succeeded on this connection (a
    /// code, a recovery code, an approved request): a one-time token that
    /// `OpenSession` takes from the process opening the login session.
    async fn grant_session(
        &self,
        user: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, MfaError> {
        let user = parse_user(user)?;
        check(Method::GrantSession, &user, &header, conn).await?;
        let token = self.random_token()?;
        let sender = sender_of(&header)?;
        self.sessions
            .grant(user.as_str(), &sender, token.clone(), clock::now())
            .map_err(|e| MfaError::AccessDenied(e.to_string()))?;
        Ok(token)
    }

    /// The caller's login session (its audit session, read from /proc)
    /// passed a second factor as `user`: `token` from `GrantSession`
    /// proves it. From then on it may approve `user`'s requests, until
    /// `CloseSession`. Returns the audit session id.
    async fn open_session(
        &self,
        user: &str,
        token: &str,
        context: HashMap<String, String>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u32, MfaError> {
        let user = parse_user(user)?;
        checked_context(&context)?;
        if token.len() > 64 {
            return Err(MfaError::InvalidArgument("the token is too long".into()));
        }
        check(Method::OpenSession, &user, &header, conn).await?;
        let session = caller_session(&header, conn).await;
        let service = context.get(context::SERVICE).cloned().unwrap_or_default();
        match self.sessions.record(user.as_str(), token, session, &service, clock::now()) {
            Ok(id) => {
                tracing::info!(user = %user, service = ?service, session = id, "session-verified");
                Ok(id)
            }
            Err(e) => {
                tracing::warn!(user = %user, service = ?service, session = ?session, reason = %e, "session-not-verified");
                Err(MfaError::AccessDenied(e.to_string()))
            }
        }
    }

    /// The caller's login session ended: it approves nothing any more.
    async fn close_session(
        &self,
        user: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<bool, MfaError> {
        let user = parse_user(user)?;
        check(Method::CloseSession, &user, &header, conn).await?;
        let session = caller_session(&header, conn).await;
        let closed = self.sessions.close(user.as_str(), session);
        if closed {
            tracing::info!(user = %user, session = ?session, "session-closed");
        }
        Ok(closed)
    }

    /// Whether an approver of `user` is online whose session may approve
    /// (for mode=auto: push then, else ask for a code).
    async fn has_approver(
        &self,
        user: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<bool, MfaError> {
        let user = parse_user(user)?;
        check(Method::HasApprover, &user, &header, conn).await?;
        if self.approvers.any_can_approve(user.as_str()) {
            return Ok(true);
        }
        // A phone approves through the web approver, when it is online.
        if !crate::web::phones_reachable(&self.service, &self.approvers) {
            return Ok(false);
        }
        let phones = stored(&self.service, move |store| store.phones(&user)).await?;
        Ok(!phones.is_empty())
    }

    /// Whether `user` has a phone and a web approver serves it: the
    /// prompt then says to approve on the phone.
    async fn has_phone(
        &self,
        user: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<bool, MfaError> {
        let user = parse_user(user)?;
        check(Method::HasPhone, &user, &header, conn).await?;
        if !crate::web::phones_reachable(&self.service, &self.approvers) {
            return Ok(false);
        }
        let phones = stored(&self.service, move |store| store.phones(&user)).await?;
        Ok(!phones.is_empty())
    }
}

/// "This was not me": denies request `id` of `me`, logs it with its whole
/// context as a warning, and blocks push requests of the user until a
/// code login or an administrator (`UnblockPush`) clears it. `by` says
/// who reported (an approver's uid and session, or a phone).
pub(crate) async fn report(
    service: &Arc<Service>,
    me: &Username,
    id: &str,
    by: &str,
) -> Result<u32, MfaError> {
    let now = clock::now();
    let (wanted, reporter) = (id.to_string(), me.clone());
    let (outcome, c) = stored(service, move |store| {
        store.end_challenge(
            &wanted,
            ChallengeOutcome::Denied,
            Ender::Reporter(reporter.as_str()),
            now,
        )
    })
    .await?
    .map_err(not_taken)?;
    let field = |key: &str| c.context.get(key).cloned().unwrap_or_default();
    tracing::warn!(
        user = %c.user,
        service = ?field(context::SERVICE),
        host = ?field(context::HOST),
        rhost = ?field(context::RHOST),
        tty = ?field(context::TTY),
        command = ?field(context::COMMAND),
        requested_at = ?field(context::TIME),
        challenge = %c.id,
        reported_by = %by,
        "suspicious-request-reported"
    );
    let user = me.clone();
    blocking(service, move |service| service.set_push_blocked(&user, Some(now))).await?;
    tracing::warn!(user = %me, "push-blocked");
    Ok(outcome.into())
}

/// `io.github.pam_mfa.Approver1`: approver agents (everyone, for their own
/// user's challenges).
pub struct ApproverInterface {
    pub service: Arc<Service>,
    pub approvers: Arc<Approvers>,
    pub sessions: Arc<Sessions>,
    pub links: Arc<crate::web::Links>,
}

impl ApproverInterface {
    /// The user whose challenges the caller may answer through `method`,
    /// and the caller's uid.
    async fn approver(
        &self,
        method: Method,
        header: &Header<'_>,
        conn: &Connection,
    ) -> Result<(Username, u32), MfaError> {
        let uid = check_caller(method, header, conn).await?;
        Ok((username_of_uid(uid)?, uid))
    }

    fn rule(&self) -> SessionRule {
        match self.service.config().push.approver_session {
            ApproverSession::Mfa => SessionRule::Mfa,
            ApproverSession::Different => SessionRule::Different,
            ApproverSession::Any => SessionRule::Any,
        }
    }

    /// The user a challenge must belong to for this caller: the caller's
    /// own, or (root, when the config allows) the challenge's.
    async fn target_user(&self, id: &str, me: &Username, uid: u32) -> String {
        if uid == 0 && self.service.config().push.allow_root_approval {
            let wanted = id.to_string();
            let pending =
                stored(&self.service, move |store| store.pending_challenges(None, clock::now()))
                    .await
                    .unwrap_or_default();
            // Only pending challenges matter for approval.
            if let Some((_, context, _)) = pending.into_iter().find(|(cid, _, _)| *cid == wanted) {
                return context.get(context::USER).cloned().unwrap_or_default();
            }
        }
        me.to_string()
    }
}

#[zbus::interface(name = "io.github.pam_mfa.Approver1")]
impl ApproverInterface {
    /// Announces the caller as an approver of its own user: from now on it
    /// receives `ChallengeCreated` for that user, until it leaves the bus.
    async fn register(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, MfaError> {
        let (user, uid) = self.approver(Method::Register, &header, conn).await?;
        let sender = sender_of(&header)?;
        let session = caller_session(&header, conn).await;
        let can_approve = match self.rule() {
            SessionRule::Mfa => self.sessions.verified(user.as_str(), session),
            SessionRule::Different | SessionRule::Any => true,
        };
        self.approvers.register(&sender, user.as_str(), can_approve);
        tracing::info!(user = %user, caller_uid = uid, session = ?session, can_approve, "approver-online");
        Ok(user.to_string())
    }

    /// The caller's pending requests: (id, context, seconds left). The
    /// context says who asks (service, host, rhost, tty, time), never the number.
    async fn pending(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<(String, HashMap<String, String>, u64)>, MfaError> {
        let (user, _) = self.approver(Method::Pending, &header, conn).await?;
        stored(&self.service, move |store| {
            store.pending_challenges(Some(user.as_str()), clock::now())
        })
        .await
    }

    /// Answers request `id` with the number the person read on the
    /// requesting screen. A wrong number ends the request. Returns the outcome.
    async fn approve(
        &self,
        id: &str,
        number: u32,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u32, MfaError> {
        let (me, uid) = self.approver(Method::Approve, &header, conn).await?;
        // A phone being added answers its own test request, nobody else.
        if crate::web::is_phone_test(&self.service, &self.links, id).await? {
            tracing::warn!(approver_uid = uid, challenge = %id, "approval-refused-phone-test");
            return Err(MfaError::NoSuchChallenge);
        }
        let user = self.target_user(id, &me, uid).await;
        let session = caller_session(&header, conn).await;
        // Root approving another user's request ([push] allow_root_approval)
        // is the administrator's choice; anyone else's session must have
        // passed a second factor as that user (rule "mfa").
        let verified = self.sessions.verified(&user, session) || (uid == 0 && user != me.as_str());
        let approver = Approver { session, verified };
        let rule = self.rule();
        let (wanted, answering) = (id.to_string(), user.clone());
        let result = stored(&self.service, move |store| {
            store.answer_challenge(&wanted, &answering, number, approver, rule, clock::now())
        })
        .await?;
        match result {
            Ok((outcome, c)) => {
                tell_web(conn, &self.approvers, &c.user).await;
                if outcome == ChallengeOutcome::Approved && !c.test {
                    self.sessions.note_success(&c.user, &c.creator, clock::now());
                }
                tracing::info!(
                    user = %c.user,
                    service = ?c.context.get(context::SERVICE).cloned().unwrap_or_default(),
                    approver_uid = uid,
                    challenge = %c.id,
                    test = c.test,
                    result = outcome.as_str(),
                    "challenge-ended"
                );
                Ok(outcome.into())
            }
            Err(e) => {
                tracing::warn!(user = %user, approver_uid = uid, approver_session = ?session, challenge = %id, refused = ?e, "approval-refused");
                Err(not_taken(e))
            }
        }
    }

    /// Refuses request `id`.
    async fn deny(
        &self,
        id: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u32, MfaError> {
        let (me, uid) = self.approver(Method::Deny, &header, conn).await?;
        let user = self.target_user(id, &me, uid).await;
        let id = id.to_string();
        let denied = stored(&self.service, move |store| {
            store.end_challenge(&id, ChallengeOutcome::Denied, Ender::User(&user), clock::now())
        })
        .await?;
        match denied {
            Ok((outcome, c)) => {
                tell_web(conn, &self.approvers, &c.user).await;
                tracing::info!(user = %c.user, approver_uid = uid, challenge = %c.id, result = outcome.as_str(), "challenge-ended");
                Ok(outcome.into())
            }
            Err(e) => Err(not_taken(e)),
        }
    }

    /// "This was not me": denies request `id`, logs it with its whole
    /// context as a warning, and blocks push requests of the user until a
    /// code login or an administrator (`UnblockPush`) clears it.
    async fn report(
        &self,
        id: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u32, MfaError> {
        let (me, uid) = self.approver(Method::Report, &header, conn).await?;
        let session = caller_session(&header, conn).await;
        let outcome =
            report(&self.service, &me, id, &format!("uid {uid}, session {session:?}")).await?;
        tell_web(conn, &self.approvers, me.as_str()).await;
        Ok(outcome)
    }

    /// The seed guide's test: a challenge for the caller's own user that
    /// unlocks nothing. Returns (id, number to show, seconds to answer).
    async fn start_test(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(String, u32, u64), MfaError> {
        let (user, uid) = self.approver(Method::StartTest, &header, conn).await?;
        let creator = sender_of(&header)?;
        let session = caller_session(&header, conn).await;
        let mut context = HashMap::new();
        context.insert(context::SERVICE.to_string(), "mfa-approve --test".to_string());
        let new = NewChallenge {
            user: user.clone(),
            context,
            creator,
            requester_session: session,
            test: true,
        };
        let challenge = open_challenge(&self.service, &self.approvers, conn, new).await?;
        tracing::info!(user = %user, caller_uid = uid, challenge = %challenge.id, "test-challenge-created");
        Ok(challenge.reply())
    }

    /// Waits for the outcome of the caller's own test challenge.
    async fn wait_test(
        &self,
        id: &str,
        timeout_ms: u32,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u32, MfaError> {
        check_caller(Method::WaitTest, &header, conn).await?;
        let caller = sender_of(&header)?;
        Ok(wait_for_outcome(&self.service, id, &caller, timeout_ms).await?.into())
    }

    /// Sent to each approver of the user when a request is made.
    #[zbus(signal)]
    async fn challenge_created(
        emitter: &zbus::object_server::SignalEmitter<'_>,
        id: &str,
        context: HashMap<String, String>,
        expires_in: u64,
    ) -> zbus::Result<()>;
}

/// `io.github.pam_mfa.Enroll1`: self-service enrollment (everyone, for
/// themselves; root for anyone).
pub struct EnrollInterface {
    pub service: Arc<Service>,
    pub links: Arc<crate::web::Links>,
}

impl EnrollInterface {
    /// Runs one enrollment step for `user`, already authorized for
    /// `caller`, on the blocking pool, and logs how it ended as `event`.
    async fn logged<T: Send + 'static>(
        &self,
        event: &str,
        user: Username,
        caller: u32,
        work: impl FnOnce(&Service, &Username) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, MfaError> {
        let logged = user.clone();
        let result = blocking(&self.service, move |service| work(service, &user)).await;
        log_step(event, &logged, caller, &result);
        result
    }
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
        known_account(&self.service, &user, caller)?;
        let proof = zeroize::Zeroizing::new(proof.to_string());
        let started = self
            .logged("enrollment-started", user, caller, move |service, user| {
                service.begin(user, replace, &proof, caller == 0, clock::now())
            })
            .await?;
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
        let code = zeroize::Zeroizing::new(code.to_string());
        let codes = self
            .logged("enrollment-confirmed", user, caller, move |service, user| {
                service.confirm(user, &code, clock::now())
            })
            .await?;
        Ok(codes.iter().map(|c| c.to_string()).collect())
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
        blocking(&self.service, move |service| {
            let now = clock::now();
            let pending = service.has_pending(&user, now)?;
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
        let proof = zeroize::Zeroizing::new(proof.to_string());
        let codes = self
            .logged("recovery-codes-replaced", user, caller, move |service, user| {
                service.new_recovery_codes(user, &proof, caller == 0, clock::now())
            })
            .await?;
        Ok(codes.iter().map(|c| c.to_string()).collect())
    }

    /// Forgets every remembered device of `user`; returns how many there were.
    async fn forget_devices(
        &self,
        user: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u32, MfaError> {
        let user = parse_user(user)?;
        let caller = check(Method::ForgetDevices, &user, &header, conn).await?;
        self.logged("devices-forgotten", user, caller, |service, user| {
            service.forget_devices(user, clock::now())
        })
        .await
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
        // Who may act first: a stranger learns nothing from the parser.
        let caller = check(Method::ImportGoogleAuthenticator, &user, &header, conn).await?;
        known_account(&self.service, &user, caller)?;
        let parsed = pam_mfa_core::ga_import::parse(file).map_err(|e| {
            MfaError::InvalidArgument(format!("not a google-authenticator file: {e}"))
        })?;
        let proof = zeroize::Zeroizing::new(proof.to_string());
        self.logged("imported-google-authenticator", user, caller, move |service, user| {
            service.import(user, &parsed, replace, &proof, caller == 0, clock::now())
        })
        .await
    }

    /// Opens a link that adds a phone to `user` (`mfa-enroll --add-phone`),
    /// after a current code as `proof` (root: none needed). Returns (the
    /// link, seconds it can be used). It adds one phone, once; the caller
    /// then waits for it with `WaitPhone` and shows the test number.
    async fn add_phone(
        &self,
        user: &str,
        proof: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(String, u64), MfaError> {
        let user = parse_user(user)?;
        checked_code(proof, true)?;
        let caller = check(Method::AddPhone, &user, &header, conn).await?;
        let web = &self.service.config().web;
        let Some(origin) = web.public_url.origin().map(str::to_string) else {
            return Err(MfaError::InvalidArgument(
                "no web approver is configured: set [web] public_url in the config (README, Approve on your phone)".into(),
            ));
        };
        let seconds = web.link_seconds.get();
        let proof = zeroize::Zeroizing::new(proof.to_string());
        let opened = user.clone();
        self.logged("phone-link-opened", user, caller, move |service, user| {
            service.may_add_phone(user, &proof, caller == 0, clock::now())
        })
        .await?;
        let token = crate::web::token(&self.service)?;
        crate::web::open_link(&self.service, &self.links, &token, &opened, &sender_of(&header)?)
            .await?;
        Ok((format!("{origin}/add#t={token}"), seconds))
    }

    /// Waits until a phone used the caller's `link` (or `timeout_ms`
    /// passes: then the id is empty). Returns the phone's test request:
    /// (id, number to show, seconds to answer, the phone's name). The
    /// phone is active once it approved it (`Approver1.WaitTest` tells).
    async fn wait_phone(
        &self,
        link: &str,
        timeout_ms: u32,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(String, u32, u64, String), MfaError> {
        check_caller(Method::WaitPhone, &header, conn).await?;
        let token = link.rsplit_once("#t=").map_or(link, |(_, t)| t);
        let limit = std::time::Duration::from_millis(u64::from(timeout_ms));
        let creator = sender_of(&header)?;
        let registered =
            crate::web::wait_link(&self.service, &self.links, token, &creator, limit).await?;
        Ok(registered.unwrap_or_default())
    }

    /// The phones of `user`: (passkey id, base64url; name; added at; last used).
    async fn phones(
        &self,
        user: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<(String, String, u64, u64)>, MfaError> {
        use base64::Engine;
        let user = parse_user(user)?;
        check(Method::Phones, &user, &header, conn).await?;
        let phones = stored(&self.service, move |store| store.phones(&user)).await?;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        Ok(phones
            .into_iter()
            .map(|p| (b64.encode(&p.credential_id), p.name, p.added_at, p.last_used))
            .collect())
    }

    /// Removes the phone of `user` whose passkey id (as `Phones` gives
    /// it) or name is `phone`; `false` when there is none.
    async fn remove_phone(
        &self,
        user: &str,
        phone: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<bool, MfaError> {
        use base64::Engine;
        let user = parse_user(user)?;
        let caller = check(Method::RemovePhone, &user, &header, conn).await?;
        let wanted = phone.to_string();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        self.logged("phone-removed", user, caller, move |service, user| {
            let store = service.store();
            let Some(found) = store
                .phones(user)?
                .into_iter()
                .find(|p| p.name == wanted || b64.encode(&p.credential_id) == wanted)
            else {
                return Ok(false);
            };
            Ok(store.remove_phone(user, &found.credential_id)?)
        })
        .await
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

impl AdminInterface {
    /// An administrator's change to `user` (`method` authorizes it), run
    /// on the blocking pool and logged as `event` with whether it changed
    /// anything.
    async fn change(
        &self,
        method: Method,
        user: &str,
        header: &Header<'_>,
        conn: &Connection,
        event: &'static str,
        work: impl FnOnce(&Service, &Username) -> Result<bool, ServiceError> + Send + 'static,
    ) -> Result<bool, MfaError> {
        let user = parse_user(user)?;
        let caller = check(method, &user, header, conn).await?;
        let logged_user = user.clone();
        let changed = blocking(&self.service, move |service| work(service, &user)).await?;
        tracing::info!(user = %logged_user, caller_uid = caller, changed, "{event}");
        Ok(changed)
    }
}

#[zbus::interface(name = "io.github.pam_mfa.Admin1")]
impl AdminInterface {
    /// All enrolled users with the unix time each enrolled.
    async fn list_users(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<(String, u64)>, MfaError> {
        check_caller(Method::ListUsers, &header, conn).await?;
        let users = blocking(&self.service, move |service| service.list()).await?;
        Ok(users.into_iter().map(|(u, t)| (u.to_string(), t)).collect())
    }

    /// Lets `user` make push requests again after a "not me" report;
    /// false when they were not blocked.
    async fn unblock_push(
        &self,
        user: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<bool, MfaError> {
        self.change(Method::UnblockPush, user, &header, conn, "push-unblocked", |service, user| {
            service.set_push_blocked(user, None)
        })
        .await
    }

    /// Removes `user`'s enrollment; false when there was none.
    async fn reset(
        &self,
        user: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<bool, MfaError> {
        self.change(Method::Reset, user, &header, conn, "reset", |service, user| {
            service.reset(user)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_may_do_everything_for_anyone() {
        for (m, _, _) in METHODS {
            assert!(authorize(m, 0, Some(1000)).is_ok());
            assert!(authorize(m, 0, None).is_ok());
        }
    }

    #[test]
    fn the_pam_side_is_root_only_even_for_oneself() {
        for (m, interface, _) in METHODS.iter().filter(|(_, i, _)| *i == "Pam1" || *i == "Admin1") {
            assert!(
                matches!(authorize(*m, 1000, Some(1000)), Err(MfaError::AccessDenied(_))),
                "{interface} {m:?}"
            );
        }
    }

    #[test]
    fn approvers_act_for_their_own_user_whoever_they_are() {
        for (m, _, _) in METHODS.iter().filter(|(_, i, _)| *i == "Approver1") {
            assert_eq!(rule(*m), Rule::OwnUser);
            assert!(authorize(*m, 1000, None).is_ok());
        }
    }

    #[test]
    fn every_method_is_named_once() {
        for (m, interface, member) in METHODS {
            let full = format!("io.github.pam_mfa.{interface}");
            assert_eq!(Method::named(&full, member), Some(m));
            assert_eq!(METHODS.iter().filter(|(other, _, _)| *other == m).count(), 1, "{m:?}");
        }
        assert_eq!(Method::named("io.github.pam_mfa.Pam1", "Approve"), None);
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
    fn malformed_arguments_are_refused() {
        assert!(checked_code("12345\u{e9}", false).is_err());
        assert!(checked_code("12a456", false).is_err(), "letters, yet no recovery code");
        assert!(checked_code("12345", false).is_err());
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
