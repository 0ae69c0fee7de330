//! The client side of mfad's bus API, used by every client (the PAM module,
//! mfa-enroll): typed proxies, and a blocking [`Client`] that bounds every
//! call in time and leaves no thread or file descriptor behind when dropped.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use zbus::Connection;

use pam_mfa_protocol::names;
use pam_mfa_protocol::wire::{ChallengeOutcome, VerifyOutcome};

use pam_mfa_config::i18n::Texts;
pub use pam_mfa_protocol::error::MfaError;

/// mfad's errors said in the user's language.
pub trait Refusals {
    fn refusal(&self, e: &MfaError) -> String;
}

impl Refusals for Texts {
    /// `e` said in the user's language, from its name and number alone.
    fn refusal(&self, e: &MfaError) -> String {
        let t = self;
        match e {
            MfaError::ZBus(e) => t.refusal_unavailable(e),
            MfaError::AccessDenied(_) => t.refusal_access_denied(),
            MfaError::InvalidArgument(m) => t.refusal_invalid(m),
            MfaError::Internal(m) => t.refusal_internal(m),
            MfaError::AlreadyEnrolled { .. } => t.refusal_already_enrolled(),
            MfaError::ProofRefused => t.refusal_proof_refused(),
            MfaError::LockedOut { retry_after } => t.refusal_locked(retry_after),
            MfaError::NotEnrolled => t.refusal_not_enrolled(),
            MfaError::NoPendingEnrollment => t.refusal_no_pending(),
            MfaError::PendingExpired => t.refusal_pending_expired(),
            MfaError::WrongCode { tries_left: 1 } => t.refusal_wrong_code_last(),
            MfaError::WrongCode { tries_left } => t.refusal_wrong_code(tries_left),
            MfaError::NoSuchChallenge => t.refusal_no_such_request(),
            MfaError::ChallengeEnded { .. } => t.refusal_request_ended(),
            MfaError::SameSession => t.refusal_same_session(),
            MfaError::SessionNotVerified => t.refusal_session_not_verified(),
            MfaError::TooManyRequests { retry_after } => t.refusal_too_many_requests(retry_after),
            MfaError::PushBlocked { .. } => t.refusal_push_blocked(),
            MfaError::RequestPending => t.refusal_request_pending(),
        }
    }
}

/// The PAM side: root only.
#[zbus::proxy(
    interface = "io.github.pam_mfa.Pam1",
    default_service = "io.github.pam_mfa",
    default_path = "/io/github/pam_mfa"
)]
pub trait Pam {
    /// Whether `user` has an active enrollment.
    fn is_enrolled(&self, user: &str) -> Result<bool, MfaError>;
    /// Checks a code; returns (outcome as [`VerifyOutcome`], seconds left
    /// of a lockout, after a success the token for `OpenSession`, else "").
    fn verify_code(
        &self,
        user: &str,
        code: &str,
        context: HashMap<String, String>,
    ) -> Result<(u32, u64, String), MfaError>;
    /// Starts number matching: (challenge id, number to show, seconds to expiry).
    fn create_challenge(
        &self,
        user: &str,
        context: HashMap<String, String>,
    ) -> Result<(String, u32, u64), MfaError>;
    /// Waits for the challenge to end (creator only); a [`ChallengeOutcome`].
    fn wait_challenge(&self, id: &str, timeout_ms: u32) -> Result<u32, MfaError>;
    /// Gives up on a challenge (creator only).
    fn cancel_challenge(&self, id: &str) -> Result<u32, MfaError>;
    /// Whether an approver of `user` is online.
    fn has_approver(&self, user: &str) -> Result<bool, MfaError>;
    /// Whether `user` has a phone and the web approver is online.
    fn has_phone(&self, user: &str) -> Result<bool, MfaError>;
    /// Whether the device in `context` (SSH key, remote host, service) is
    /// remembered for `user`.
    fn is_remembered(&self, user: &str, context: HashMap<String, String>)
        -> Result<bool, MfaError>;
    /// Whether `user` must use a second factor under these policy lists.
    fn covered(
        &self,
        user: &str,
        require_groups: &[String],
        exempt_users: &[String],
        exempt_groups: &[String],
    ) -> Result<bool, MfaError>;
    /// After a second factor of `user` succeeded on this connection: a
    /// one-time token for the session about to open.
    fn grant_session(&self, user: &str) -> Result<String, MfaError>;
    /// The caller's login session passed a second factor (the token
    /// proves it); returns its audit session id.
    fn open_session(
        &self,
        user: &str,
        token: &str,
        context: HashMap<String, String>,
    ) -> Result<u32, MfaError>;
    /// The caller's login session ended; whether it had passed.
    fn close_session(&self, user: &str) -> Result<bool, MfaError>;
}

/// Approvers: everyone, for their own user's challenges.
#[zbus::proxy(
    interface = "io.github.pam_mfa.Approver1",
    default_service = "io.github.pam_mfa",
    default_path = "/io/github/pam_mfa"
)]
pub trait Approver {
    /// Become an approver of one's own user; returns the user name.
    fn register(&self) -> Result<String, MfaError>;
    /// Pending requests: (id, context, seconds left).
    #[allow(clippy::type_complexity)]
    fn pending(&self) -> Result<Vec<(String, HashMap<String, String>, u64)>, MfaError>;
    /// Answer with the number read on the requesting screen.
    fn approve(&self, id: &str, number: u32) -> Result<u32, MfaError>;
    /// Refuse the request.
    fn deny(&self, id: &str) -> Result<u32, MfaError>;
    /// "This was not me": deny it and block push requests until a code login.
    fn report(&self, id: &str) -> Result<u32, MfaError>;
    /// A test challenge for oneself: (id, number, seconds).
    fn start_test(&self) -> Result<(String, u32, u64), MfaError>;
    /// Wait for one's test challenge to end.
    fn wait_test(&self, id: &str, timeout_ms: u32) -> Result<u32, MfaError>;
    /// A request was made for this approver's user.
    #[zbus(signal)]
    fn challenge_created(
        &self,
        id: String,
        context: HashMap<String, String>,
        expires_in: u64,
    ) -> zbus::Result<()>;
}

/// Self-service enrollment: anyone for themselves, root for anyone.
#[zbus::proxy(
    interface = "io.github.pam_mfa.Enroll1",
    default_service = "io.github.pam_mfa",
    default_path = "/io/github/pam_mfa"
)]
pub trait Enroll {
    /// Starts an enrollment: (otpauth URI, account, seconds to confirm).
    fn begin(
        &self,
        user: &str,
        replace: bool,
        proof: &str,
    ) -> Result<(String, String, u64), MfaError>;
    /// Confirms with the first code; returns the recovery codes, once.
    fn confirm(&self, user: &str, code: &str) -> Result<Vec<String>, MfaError>;
    /// (enrolled, since, recovery codes left, pending, lockout seconds left).
    fn status(&self, user: &str) -> Result<(bool, u64, u32, bool, u64), MfaError>;
    /// New recovery codes after a current code.
    fn new_recovery_codes(&self, user: &str, proof: &str) -> Result<Vec<String>, MfaError>;
    /// Forgets the user's remembered devices; returns how many there were.
    fn forget_devices(&self, user: &str) -> Result<u32, MfaError>;
    /// Enrolls from a ~/.google_authenticator file's text.
    fn import_google_authenticator(
        &self,
        user: &str,
        file: &str,
        replace: bool,
        proof: &str,
    ) -> Result<u32, MfaError>;
    /// A one-time link that adds a phone: (link, seconds it can be used).
    fn add_phone(&self, user: &str, proof: &str) -> Result<(String, u64), MfaError>;
    /// Waits until a phone used `link`: its test request (id, number,
    /// seconds, phone name); an empty id when `timeout_ms` passed first.
    fn wait_phone(
        &self,
        link: &str,
        timeout_ms: u32,
    ) -> Result<(String, u32, u64, String), MfaError>;
    /// The user's phones: (passkey id, name, added at, last used).
    fn phones(&self, user: &str) -> Result<Vec<(String, String, u64, u64)>, MfaError>;
    /// Removes a phone by passkey id or name; false when there is none.
    fn remove_phone(&self, user: &str, phone: &str) -> Result<bool, MfaError>;
}

/// The web approver (mfa-web): its own user and root.
#[zbus::proxy(
    interface = "io.github.pam_mfa.Web1",
    default_service = "io.github.pam_mfa",
    default_path = "/io/github/pam_mfa"
)]
pub trait Web {
    /// Hears `RequestsChanged` from now on; returns the passkeys' origin.
    fn register(&self) -> Result<String, MfaError>;
    /// An add-phone link's user and the passkey ids that user has.
    fn check_link(&self, token: &str) -> Result<(String, Vec<Vec<u8>>), MfaError>;
    /// A phone registered through a link: (user, test request id, seconds).
    fn add_phone(
        &self,
        token: &str,
        credential_id: &[u8],
        public_key: &[u8],
        name: &str,
    ) -> Result<(String, String, u64), MfaError>;
    /// A passkey signed `challenge`: (user, phone name).
    fn sign_in(
        &self,
        challenge: &[u8],
        credential_id: &[u8],
        authenticator_data: &[u8],
        client_data_json: &[u8],
        signature: &[u8],
    ) -> Result<(String, String), MfaError>;
    /// The user's pending requests: (id, context, seconds left).
    fn pending(&self, user: &str) -> Result<Vec<(String, HashMap<String, String>, u64)>, MfaError>;
    /// Approves with the number typed and the passkey's signature over both.
    #[allow(clippy::too_many_arguments)]
    fn approve(
        &self,
        user: &str,
        id: &str,
        number: u32,
        credential_id: &[u8],
        authenticator_data: &[u8],
        client_data_json: &[u8],
        signature: &[u8],
    ) -> Result<u32, MfaError>;
    fn deny(&self, user: &str, id: &str) -> Result<u32, MfaError>;
    fn report(&self, user: &str, id: &str) -> Result<u32, MfaError>;
    /// A request of `user` was made.
    #[zbus(signal)]
    fn requests_changed(&self, user: &str) -> zbus::Result<()>;
}

/// Administration: root only.
#[zbus::proxy(
    interface = "io.github.pam_mfa.Admin1",
    default_service = "io.github.pam_mfa",
    default_path = "/io/github/pam_mfa"
)]
pub trait Admin {
    /// All enrolled users and when each enrolled.
    fn list_users(&self) -> Result<Vec<(String, u64)>, MfaError>;
    /// Removes `user`'s enrollment; false when there was none.
    fn reset(&self, user: &str) -> Result<bool, MfaError>;
    /// Lets `user` make push requests again; false when not blocked.
    fn unblock_push(&self, user: &str) -> Result<bool, MfaError>;
}

/// What `Enroll1.Status` says of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnrollmentStatus {
    pub enrolled: bool,
    pub enrolled_at: u64,
    pub recovery_left: u32,
    pub pending: bool,
    pub locked_for: u64,
}

/// Why a call gave no answer.
#[derive(Debug)]
pub enum ClientError {
    /// mfad could not be reached or did not answer within the bound.
    Unavailable(String),
    /// mfad answered with an error.
    Refused(MfaError),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Unavailable(e) => write!(f, "mfad is not reachable: {e}"),
            ClientError::Refused(MfaError::ZBus(e)) => write!(f, "mfad is not reachable: {e}"),
            ClientError::Refused(MfaError::AccessDenied(e)) => write!(f, "refused: {e}"),
            ClientError::Refused(MfaError::InvalidArgument(e)) => write!(f, "invalid: {e}"),
            ClientError::Refused(MfaError::Internal(e)) => write!(f, "mfad failed: {e}"),
            ClientError::Refused(other) => f.write_str(&other.message()),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<MfaError> for ClientError {
    fn from(e: MfaError) -> Self {
        match e {
            MfaError::ZBus(e) => match denied_by_bus(&e) {
                Some(detail) => ClientError::Refused(MfaError::AccessDenied(detail)),
                None => ClientError::Unavailable(e.to_string()),
            },
            other => ClientError::Refused(other),
        }
    }
}

/// The bus policy's refusal (the first fence), as opposed to mfad's own.
fn denied_by_bus(e: &zbus::Error) -> Option<String> {
    match e {
        zbus::Error::MethodError(name, detail, _)
            if name.as_str() == "org.freedesktop.DBus.Error.AccessDenied" =>
        {
            Some(detail.clone().unwrap_or_else(|| "denied by the bus policy".into()))
        }
        zbus::Error::FDO(fdo) if matches!(**fdo, zbus::fdo::Error::AccessDenied(_)) => {
            Some(fdo.to_string())
        }
        _ => None,
    }
}

impl From<zbus::Error> for ClientError {
    fn from(e: zbus::Error) -> Self {
        ClientError::Unavailable(e.to_string())
    }
}

/// The longest wait a client may ask for (the longest push timeout, 600 s,
/// plus slack).
pub const MAX_WAIT_SECONDS: u64 = 660;

/// A blocking client on its own single-threaded runtime. Each call,
/// connecting included, ends within the timeout; dropping the client closes
/// the connection and ends the runtime, so nothing is left behind (which a
/// PAM module inside sshd or sudo needs). The address is given, never read
/// from the environment.
pub struct Client {
    runtime: tokio::runtime::Runtime,
    connection: Option<Mfad>,
    address: String,
    service_user: String,
    timeout: Duration,
    /// From the last successful code check, for the session about to open.
    session_token: Option<String>,
}

/// A connection to a bus on which the owner of `io.github.pam_mfa` was
/// found genuine (see [`genuine_owner`]).
#[derive(Clone)]
pub struct Mfad {
    pub conn: Connection,
}

impl Mfad {
    pub async fn pam(&self) -> zbus::Result<PamProxy<'static>> {
        PamProxy::new(&self.conn).await
    }
    pub async fn enroll(&self) -> zbus::Result<EnrollProxy<'static>> {
        EnrollProxy::new(&self.conn).await
    }
    pub async fn admin(&self) -> zbus::Result<AdminProxy<'static>> {
        AdminProxy::new(&self.conn).await
    }
    pub async fn approver(&self) -> zbus::Result<ApproverProxy<'static>> {
        ApproverProxy::new(&self.conn).await
    }
    pub async fn web(&self) -> zbus::Result<WebProxy<'static>> {
        WebProxy::new(&self.conn).await
    }
}

/// The uid of `name` from NSS.
fn uid_of(name: &str) -> Option<u32> {
    nix::unistd::User::from_name(name).ok().flatten().map(|u| u.uid.as_raw())
}

/// Connects to `address` and checks that the mfad there is genuine
/// (DESIGN.md rule 8): the socket's peer (SO_PEERCRED, the bus daemon) must
/// be root, `messagebus` or `service_user`, so it is not a bus some user
/// started; and the bus must say that `service_user` owns
/// `io.github.pam_mfa` (one GetConnectionCredentials call), so it is not a
/// name some user took. An activatable name with no owner yet is started
/// first. Calls then go to the name: on the system bus only the service
/// user may own it (the packaged policy), and a client of the PAM module
/// lives for one authentication. Any doubt is an error naming what was
/// found.
pub async fn genuine_owner(address: &str, service_user: &str) -> Result<Mfad, String> {
    let conn = zbus::connection::Builder::address(address)
        .method_timeout(Duration::from_secs(MAX_WAIT_SECONDS))
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let expected = uid_of(service_user)
        .ok_or_else(|| format!("the service user {service_user:?} has no account"))?;
    let creds = conn.peer_creds().await.map_err(|e| format!("no peer credentials: {e}"))?;
    let bus_uid = creds.unix_user_id().ok_or("the bus socket gave no peer uid")?;
    if bus_uid != 0 && bus_uid != expected && Some(bus_uid) != uid_of("messagebus") {
        return Err(format!(
            "the bus at {address} is run by uid {bus_uid}, not by root, messagebus or {service_user}: not trusted"
        ));
    }
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.map_err(|e| e.to_string())?;
    let name = zbus::names::BusName::from_static_str(BUS_NAME).map_err(|e| e.to_string())?;
    let owner = match dbus.get_connection_credentials(name.clone()).await {
        Ok(owner) => owner,
        Err(zbus::fdo::Error::NameHasNoOwner(_)) => {
            let well_known =
                zbus::names::WellKnownName::from_static_str(BUS_NAME).map_err(|e| e.to_string())?;
            dbus.start_service_by_name(well_known, 0)
                .await
                .map_err(|e| format!("nobody owns {BUS_NAME} and it cannot be started: {e}"))?;
            dbus.get_connection_credentials(name).await.map_err(|e| e.to_string())?
        }
        Err(e) => return Err(e.to_string()),
    };
    let owner_uid = owner.unix_user_id().ok_or("the bus gave no uid for the owner")?;
    if owner_uid != expected {
        return Err(format!(
            "{BUS_NAME} on {address} is owned by uid {owner_uid}, not by the service user {service_user} (uid {expected}): not trusted"
        ));
    }
    Ok(Mfad { conn })
}

impl Client {
    /// A client of the mfad that `service_user` runs on the bus at `address`.
    pub fn new(
        address: &str,
        service_user: &str,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| ClientError::Unavailable(format!("no async runtime: {e}")))?;
        Ok(Client {
            runtime,
            connection: None,
            address: address.to_string(),
            service_user: service_user.to_string(),
            timeout,
            session_token: None,
        })
    }

    /// A client for the bus, service user and bound of `[bus]`.
    pub fn from_config(bus: &pam_mfa_config::schema::BusConfig) -> Result<Client, ClientError> {
        let timeout = Duration::from_millis(bus.timeout_ms.get());
        Client::new(bus.address.as_str(), bus.service_user.as_str(), timeout)
    }

    /// Runs `call` on the (lazily opened) connection, within the timeout.
    fn run<T, F, Fut>(&mut self, call: F) -> Result<T, ClientError>
    where
        F: FnOnce(Mfad) -> Fut,
        Fut: Future<Output = Result<T, MfaError>>,
    {
        let bound = self.timeout;
        self.run_within(bound, call)
    }

    /// Like `run`, with its own bound (for waits longer than a call).
    fn run_within<T, F, Fut>(&mut self, bound: Duration, call: F) -> Result<T, ClientError>
    where
        F: FnOnce(Mfad) -> Fut,
        Fut: Future<Output = Result<T, MfaError>>,
    {
        let Client { runtime, connection, address, service_user, .. } = self;
        runtime.block_on(async {
            let work = async {
                let mfad = match connection {
                    Some(mfad) => mfad.clone(),
                    None => {
                        // Every call is bounded from outside (below); zbus's
                        // own timeout only has to outlast the longest wait.
                        let mfad = genuine_owner(address, service_user)
                            .await
                            .map_err(ClientError::Unavailable)?;
                        *connection = Some(mfad.clone());
                        mfad
                    }
                };
                call(mfad).await.map_err(ClientError::from)
            };
            match tokio::time::timeout(bound, work).await {
                Ok(result) => result,
                Err(_) => Err(ClientError::Unavailable(format!(
                    "no answer within {} ms",
                    bound.as_millis()
                ))),
            }
        })
    }

    pub fn is_enrolled(&mut self, user: &str) -> Result<bool, ClientError> {
        let user = user.to_string();
        self.run(|m| async move { m.pam().await?.is_enrolled(&user).await })
    }

    pub fn verify_code(
        &mut self,
        user: &str,
        code: &str,
        context: &HashMap<String, String>,
    ) -> Result<(VerifyOutcome, u64), ClientError> {
        // The typed code is wiped when this call is done (the bus library's
        // own message buffers are beyond reach).
        let code = zeroize::Zeroizing::new(code.to_string());
        let (user, context) = (user.to_string(), context.clone());
        let (outcome, retry_after, token) =
            self.run(|m| async move { m.pam().await?.verify_code(&user, &code, context).await })?;
        let outcome = VerifyOutcome::try_from(outcome).map_err(|n| {
            ClientError::Unavailable(format!("mfad answered an unknown outcome {n}"))
        })?;
        self.session_token = Some(token).filter(|t| !t.is_empty());
        Ok((outcome, retry_after))
    }

    /// The session token the last successful [`Client::verify_code`] gave.
    pub fn take_session_token(&mut self) -> Option<String> {
        self.session_token.take()
    }

    /// Starts an enrollment: (otpauth URI, account, seconds to confirm).
    pub fn begin(
        &mut self,
        user: &str,
        replace: bool,
        proof: &str,
    ) -> Result<(String, String, u64), ClientError> {
        let (user, proof) = (user.to_string(), proof.to_string());
        self.run(|m| async move { m.enroll().await?.begin(&user, replace, &proof).await })
    }

    /// Confirms with the first code; returns the recovery codes.
    pub fn confirm(&mut self, user: &str, code: &str) -> Result<Vec<String>, ClientError> {
        let (user, code) = (user.to_string(), code.to_string());
        self.run(|m| async move { m.enroll().await?.confirm(&user, &code).await })
    }

    pub fn status(&mut self, user: &str) -> Result<EnrollmentStatus, ClientError> {
        let user = user.to_string();
        let (enrolled, enrolled_at, recovery_left, pending, locked_for) =
            self.run(|m| async move { m.enroll().await?.status(&user).await })?;
        Ok(EnrollmentStatus { enrolled, enrolled_at, recovery_left, pending, locked_for })
    }

    pub fn new_recovery_codes(
        &mut self,
        user: &str,
        proof: &str,
    ) -> Result<Vec<String>, ClientError> {
        let (user, proof) = (user.to_string(), proof.to_string());
        self.run(|m| async move { m.enroll().await?.new_recovery_codes(&user, &proof).await })
    }

    pub fn import_google_authenticator(
        &mut self,
        user: &str,
        file: &str,
        replace: bool,
        proof: &str,
    ) -> Result<u32, ClientError> {
        let (user, file, proof) = (user.to_string(), file.to_string(), proof.to_string());
        self.run(|m| async move {
            m.enroll().await?.import_google_authenticator(&user, &file, replace, &proof).await
        })
    }

    /// Starts number matching for `user`: (id, number, seconds to expiry).
    pub fn create_challenge(
        &mut self,
        user: &str,
        context: &HashMap<String, String>,
    ) -> Result<(String, u32, u64), ClientError> {
        let (user, context) = (user.to_string(), context.clone());
        self.run(|m| async move { m.pam().await?.create_challenge(&user, context).await })
    }

    /// Waits up to `wait` for challenge `id` to end (woken by mfad).
    pub fn wait_challenge(
        &mut self,
        id: &str,
        wait: Duration,
    ) -> Result<ChallengeOutcome, ClientError> {
        let id = id.to_string();
        let wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        let bound = wait + self.timeout;
        let outcome = self.run_within(bound, |m| async move {
            m.pam().await?.wait_challenge(&id, wait_ms).await
        })?;
        ChallengeOutcome::try_from(outcome)
            .map_err(|n| ClientError::Unavailable(format!("mfad answered an unknown outcome {n}")))
    }

    pub fn cancel_challenge(&mut self, id: &str) -> Result<(), ClientError> {
        let id = id.to_string();
        self.run(|m| async move { m.pam().await?.cancel_challenge(&id).await }).map(|_| ())
    }

    /// Whether `user` must use a second factor under these policy lists.
    pub fn covered(
        &mut self,
        user: &str,
        require_groups: &[String],
        exempt_users: &[String],
        exempt_groups: &[String],
    ) -> Result<bool, ClientError> {
        let user = user.to_string();
        let (r, u, g) = (require_groups.to_vec(), exempt_users.to_vec(), exempt_groups.to_vec());
        self.run(|m| async move { m.pam().await?.covered(&user, &r, &u, &g).await })
    }

    /// A token for the session about to open, after a second factor.
    pub fn grant_session(&mut self, user: &str) -> Result<String, ClientError> {
        let user = user.to_string();
        self.run(|m| async move { m.pam().await?.grant_session(&user).await })
    }

    /// Records the caller's login session as passed; its audit session id.
    pub fn open_session(
        &mut self,
        user: &str,
        token: &str,
        context: &HashMap<String, String>,
    ) -> Result<u32, ClientError> {
        let (user, token, context) = (user.to_string(), token.to_string(), context.clone());
        self.run(|m| async move { m.pam().await?.open_session(&user, &token, context).await })
    }

    /// The caller's login session ended.
    pub fn close_session(&mut self, user: &str) -> Result<bool, ClientError> {
        let user = user.to_string();
        self.run(|m| async move { m.pam().await?.close_session(&user).await })
    }

    pub fn is_remembered(
        &mut self,
        user: &str,
        context: &HashMap<String, String>,
    ) -> Result<bool, ClientError> {
        let (user, context) = (user.to_string(), context.clone());
        self.run(|m| async move { m.pam().await?.is_remembered(&user, context).await })
    }

    pub fn forget_devices(&mut self, user: &str) -> Result<u32, ClientError> {
        let user = user.to_string();
        self.run(|m| async move { m.enroll().await?.forget_devices(&user).await })
    }

    /// A one-time link adding a phone to `user`: (link, seconds it works).
    pub fn add_phone(&mut self, user: &str, proof: &str) -> Result<(String, u64), ClientError> {
        let (user, proof) = (user.to_string(), proof.to_string());
        self.run(|m| async move { m.enroll().await?.add_phone(&user, &proof).await })
    }

    /// Waits up to `wait` for a phone to use `link`: its test request
    /// (id, number, seconds, name), or `None` when none did yet.
    pub fn wait_phone(
        &mut self,
        link: &str,
        wait: Duration,
    ) -> Result<Option<(String, u32, u64, String)>, ClientError> {
        let link = link.to_string();
        let wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        let bound = wait + self.timeout;
        let told = self.run_within(bound, |m| async move {
            m.enroll().await?.wait_phone(&link, wait_ms).await
        })?;
        Ok((!told.0.is_empty()).then_some(told))
    }

    /// Waits up to `wait` for the outcome of the caller's own test request.
    pub fn wait_test(&mut self, id: &str, wait: Duration) -> Result<ChallengeOutcome, ClientError> {
        let id = id.to_string();
        let wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        let bound = wait + self.timeout;
        let outcome = self.run_within(bound, |m| async move {
            m.approver().await?.wait_test(&id, wait_ms).await
        })?;
        ChallengeOutcome::try_from(outcome)
            .map_err(|n| ClientError::Unavailable(format!("mfad answered an unknown outcome {n}")))
    }

    /// `user`'s phones: (passkey id, name, added at, last used).
    pub fn phones(&mut self, user: &str) -> Result<Vec<(String, String, u64, u64)>, ClientError> {
        let user = user.to_string();
        self.run(|m| async move { m.enroll().await?.phones(&user).await })
    }

    pub fn remove_phone(&mut self, user: &str, phone: &str) -> Result<bool, ClientError> {
        let (user, phone) = (user.to_string(), phone.to_string());
        self.run(|m| async move { m.enroll().await?.remove_phone(&user, &phone).await })
    }

    pub fn has_phone(&mut self, user: &str) -> Result<bool, ClientError> {
        let user = user.to_string();
        self.run(|m| async move { m.pam().await?.has_phone(&user).await })
    }

    pub fn has_approver(&mut self, user: &str) -> Result<bool, ClientError> {
        let user = user.to_string();
        self.run(|m| async move { m.pam().await?.has_approver(&user).await })
    }

    pub fn list_users(&mut self) -> Result<Vec<(String, u64)>, ClientError> {
        self.run(|m| async move { m.admin().await?.list_users().await })
    }

    pub fn unblock_push(&mut self, user: &str) -> Result<bool, ClientError> {
        let user = user.to_string();
        self.run(|m| async move { m.admin().await?.unblock_push(&user).await })
    }

    pub fn reset(&mut self, user: &str) -> Result<bool, ClientError> {
        let user = user.to_string();
        self.run(|m| async move { m.admin().await?.reset(&user).await })
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Close the connection while its runtime still runs its tasks.
        if let Some(mfad) = self.connection.take() {
            self.runtime.block_on(async move { drop(mfad) });
        }
    }
}

/// The well-known names the proxies use, re-exported for servers and tests.
pub use names::{BUS_NAME, OBJECT_PATH};
