//! Phones: the links that add them, and `io.github.pam_mfa.Web1`, the
//! interface of the web approver (mfa-web, its own user, on the network).
//! mfa-web relays what a phone sends and holds no key: every passkey
//! signature is checked here against the key kept with the account
//! ([`pam_mfa_core::passkey`]), so a compromised web approver still cannot
//! approve without the phone signing that very request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use pam_mfa_core::challenge::{Approver, SessionRule};
use pam_mfa_core::challenges::Ender;
use pam_mfa_core::passkey::{self, Assertion, Phone, Refusal, Relying};
use pam_mfa_core::service::NewChallenge;
use pam_mfa_protocol::error::MfaError;
use pam_mfa_protocol::username::Username;
use pam_mfa_protocol::wire::{context, ChallengeOutcome};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use zbus::message::Header;
use zbus::Connection;

use crate::bus::{self, Method};
use crate::clock;
use crate::push::Approvers;
use crate::sessions::Sessions;

/// What the creator of a link learns once a phone used it: the test
/// request it must approve (id, number to show, seconds, phone name).
pub use pam_mfa_core::storage::LinkUsed as Registered;

struct Link {
    user: String,
    /// The bus connection that made the link (mfa-enroll): it alone waits
    /// on it and its test request.
    creator: String,
    expires_at: u64,
    /// The phone that used the link, not yet active, and its test request.
    phone: Option<(Phone, String)>,
    wake: watch::Sender<Option<Registered>>,
}

/// The open links of `mfa-enroll --add-phone`, by the SHA-256 of their
/// token: each adds one phone, once, to its user, before it expires.
#[derive(Default)]
pub struct Links {
    links: Mutex<HashMap<[u8; 32], Link>>,
}

fn key_of(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Links {
    fn links(&self) -> MutexGuard<'_, HashMap<[u8; 32], Link>> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps a new link; ends the user's older ones (one at a time).
    pub fn open(&self, token: &str, user: &str, creator: &str, expires_at: u64, now: u64) {
        let mut links = self.links();
        links.retain(|_, l| l.user != user && l.expires_at > now);
        let (wake, _) = watch::channel(None);
        let link =
            Link { user: user.into(), creator: creator.into(), expires_at, phone: None, wake };
        links.insert(key_of(token), link);
    }

    /// The user of an open, unused, unexpired link.
    pub fn user_of(&self, token: &str, now: u64) -> Option<String> {
        let links = self.links();
        let link = links.get(&key_of(token))?;
        (link.phone.is_none() && link.expires_at > now).then(|| link.user.clone())
    }

    /// Lets the link's creator wait until a phone used it.
    pub fn watch(&self, token: &str, creator: &str) -> Option<watch::Receiver<Option<Registered>>> {
        let links = self.links();
        let link = links.get(&key_of(token)).filter(|l| l.creator == creator)?;
        Some(link.wake.subscribe())
    }

    /// Uses the link (once): (user, creator), unless it is used or expired.
    fn take(&self, token: &str, now: u64) -> Option<(String, String)> {
        let links = self.links();
        let link = links.get(&key_of(token))?;
        (link.phone.is_none() && link.expires_at > now)
            .then(|| (link.user.clone(), link.creator.clone()))
    }

    /// The phone that used the link waits for its test request `challenge`.
    fn registered(&self, token: &str, phone: Phone, told: Registered) {
        if let Some(link) = self.links().get_mut(&key_of(token)) {
            link.phone = Some((phone, told.0.clone()));
            let _ = link.wake.send(Some(told));
        }
    }

    /// The not yet active phone of `user` whose test request is `challenge`.
    fn waiting_phone(&self, user: &str, challenge: &str, credential_id: &[u8]) -> Option<Phone> {
        self.links().values().find_map(|l| match &l.phone {
            Some((phone, id))
                if l.user == user && id == challenge && phone.credential_id == credential_id =>
            {
                Some(phone.clone())
            }
            _ => None,
        })
    }

    /// Whether `challenge` is the test request of a phone being added: only
    /// that phone may answer it (another phone or mfa-approve would make
    /// mfa-enroll say "done" while the new phone was never checked).
    pub fn is_phone_test(&self, challenge: &str) -> bool {
        self.links().values().any(|l| l.phone.as_ref().is_some_and(|(_, id)| id == challenge))
    }

    /// The test request was answered: the link is done, whatever the answer.
    fn close(&self, challenge: &str) {
        self.links().retain(|_, l| l.phone.as_ref().is_none_or(|(_, id)| id != challenge));
    }
}

/// Where passkeys must come from, from `[web]`; `None` when no web
/// approver is configured (then no phone can act).
fn relying(service: &pam_mfa_core::service::Service) -> Option<Relying> {
    let web = &service.config().web;
    Some(Relying { origin: web.public_url.origin()?.to_string(), rp_id: web.rp_id()?.to_string() })
}

fn no_web() -> MfaError {
    MfaError::AccessDenied("no web approver is configured ([web] public_url)".into())
}

/// A refused passkey, logged, as the caller is told.
fn refused(user: &str, phone: Option<&Phone>, step: &str, refusal: Refusal) -> MfaError {
    MfaError::AccessDenied(passkey::refused(user, phone, step, refusal))
}

fn assertion(
    credential_id: Vec<u8>,
    authenticator_data: Vec<u8>,
    client_data_json: Vec<u8>,
    signature: Vec<u8>,
) -> Result<Assertion, MfaError> {
    Assertion::new(credential_id, authenticator_data, client_data_json, signature)
        .map_err(MfaError::InvalidArgument)
}

/// `io.github.pam_mfa.Web1`: for mfa-web only (`[web] user`) and root.
pub struct WebInterface {
    pub service: Arc<pam_mfa_core::service::Service>,
    pub approvers: Arc<Approvers>,
    pub sessions: Arc<Sessions>,
    pub links: Arc<Links>,
}

impl WebInterface {
    /// Refuses every caller but root and the web approver's user.
    async fn caller(
        &self,
        method: Method,
        header: &Header<'_>,
        conn: &Connection,
    ) -> Result<u32, MfaError> {
        let uid = bus::caller_uid(header, conn).await?;
        if self.service.store().shared_links().is_some() {
            // Links, answers and the signatures kept are the database's:
            // a web approver on this bus would see none of another host's,
            // and its approvals would keep none.
            tracing::warn!(method = ?method, caller_uid = uid, "refused: a fleet's web approver works on the database");
            return Err(MfaError::AccessDenied(
                "this host's store is the fleet's database: run mfa-web with [web] connection, \
                 on the database (README, Phones in a fleet)"
                    .into(),
            ));
        }
        let web_user = Username::parse(self.service.config().web.user.as_str()).ok();
        let web_uid = web_user.as_ref().and_then(bus::uid_of);
        if uid == 0 || Some(uid) == web_uid {
            return Ok(uid);
        }
        tracing::warn!(method = ?method, caller_uid = uid, "refused: not the web approver");
        Err(MfaError::AccessDenied(format!("{method:?} is for the web approver's user only")))
    }

    /// The user's phone with `credential_id`, active or waiting for its
    /// test request `challenge`.
    async fn phone_of(
        &self,
        user: &Username,
        credential_id: &[u8],
        challenge: Option<&str>,
    ) -> Result<(Phone, bool), MfaError> {
        let (who, id) = (user.clone(), credential_id.to_vec());
        let phones = bus::stored(&self.service, move |store| store.phones(&who)).await?;
        if let Some(phone) = phones.into_iter().find(|p| p.credential_id == id) {
            return Ok((phone, true));
        }
        challenge
            .and_then(|c| self.links.waiting_phone(user.as_str(), c, credential_id))
            .map(|p| (p, false))
            .ok_or_else(|| refused(user.as_str(), None, "find", Refusal::UnknownPhone))
    }

    /// Checks `signed` by `phone` over `challenge` and keeps its counter.
    async fn checked(
        &self,
        user: &Username,
        phone: &Phone,
        active: bool,
        signed: &Assertion,
        challenge: &[u8],
        step: &str,
    ) -> Result<(), MfaError> {
        let relying = relying(&self.service).ok_or_else(no_web)?;
        let counter = passkey::verify(phone, signed, challenge, &relying)
            .map_err(|r| refused(user.as_str(), Some(phone), step, r))?;
        if active {
            let (who, id) = (user.clone(), phone.credential_id.clone());
            let kept = bus::stored(&self.service, move |store| {
                store.phone_used(&who, &id, counter, clock::now())
            })
            .await?;
            if !kept {
                return Err(refused(user.as_str(), Some(phone), step, Refusal::CounterWentBack));
            }
        }
        Ok(())
    }

    /// The user's pending request `id` and what it asks (else "no such
    /// request": another user's id looks like one that never was).
    async fn request(
        &self,
        user: &Username,
        id: &str,
    ) -> Result<pam_mfa_core::challenge::Context, MfaError> {
        let who = user.clone();
        let pending = bus::stored(&self.service, move |store| {
            store.pending_challenges(Some(who.as_str()), clock::now())
        })
        .await?;
        pending
            .into_iter()
            .find(|(cid, _, _)| cid == id)
            .map(|(_, context, _)| context)
            .ok_or(MfaError::NoSuchChallenge)
    }
}

#[zbus::interface(name = "io.github.pam_mfa.Web1")]
impl WebInterface {
    /// The caller is the web approver: from now on it hears
    /// `RequestsChanged` for every user, until it leaves the bus. Returns
    /// the origin passkeys must come from.
    async fn register(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, MfaError> {
        let uid = self.caller(Method::WebRegister, &header, conn).await?;
        let relying = relying(&self.service).ok_or_else(no_web)?;
        let sender = bus::sender_of(&header)?;
        self.approvers.register_web(&sender);
        tracing::info!(caller_uid = uid, origin = %relying.origin, "web-approver-online");
        Ok(relying.origin)
    }

    /// The user an add-phone link is for, and the passkeys that user has
    /// (not to be registered twice); refused when the link is used,
    /// expired or unknown.
    async fn check_link(
        &self,
        token: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(String, Vec<Vec<u8>>), MfaError> {
        self.caller(Method::CheckLink, &header, conn).await?;
        let user = self.links.user_of(token, clock::now()).ok_or_else(bad_link)?;
        let who = bus::parse_user(&user)?;
        let phones = bus::stored(&self.service, move |store| store.phones(&who)).await?;
        Ok((user, phones.into_iter().map(|p| p.credential_id).collect()))
    }

    /// A phone made a passkey through the link `token` (mfa-web checked
    /// the registration with webauthn-rs): it waits, not yet active, for
    /// its test request, whose (user, id, seconds to answer) is returned.
    /// The number is shown only by the link's maker, in the terminal.
    async fn add_phone(
        &self,
        token: &str,
        credential_id: Vec<u8>,
        public_key: Vec<u8>,
        name: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(String, String, u64), MfaError> {
        self.caller(Method::WebAddPhone, &header, conn).await?;
        passkey::bounded("the credential id", &credential_id, passkey::MAX_CREDENTIAL_ID)
            .map_err(MfaError::InvalidArgument)?;
        if public_key.len() != 65 || public_key[0] != 4 {
            return Err(MfaError::InvalidArgument(
                "the public key must be a P-256 point, SEC1 uncompressed (65 bytes)".into(),
            ));
        }
        let now = clock::now();
        let (user, creator) = self.links.take(token, now).ok_or_else(bad_link)?;
        let who = bus::parse_user(&user)?;
        let (owner_of, id) = (who.clone(), credential_id.clone());
        let (owner, count) = bus::stored(&self.service, move |store| {
            Ok((store.phone_owner(&id)?, store.phones(&owner_of)?.len()))
        })
        .await?;
        if owner.is_some() {
            return Err(MfaError::InvalidArgument("this passkey is registered already".into()));
        }
        if count >= passkey::MAX_PHONES {
            return Err(MfaError::InvalidArgument(format!(
                "{user} has {} phones already: remove one first (mfa-enroll --remove-phone)",
                passkey::MAX_PHONES
            )));
        }
        let phone = Phone {
            credential_id,
            public_key,
            name: passkey::phone_name(name),
            added_at: now,
            sign_count: 0,
            last_used: 0,
        };
        let mut asks = HashMap::new();
        asks.insert(context::SERVICE.to_string(), "mfa-enroll --add-phone".to_string());
        let new = NewChallenge {
            user: who.clone(),
            context: asks,
            creator,
            requester_session: None,
            test: true,
        };
        let challenge = bus::open_challenge(&self.service, &self.approvers, conn, new).await?;
        let expires_in = challenge.expires_at.saturating_sub(challenge.created_at);
        let told = (challenge.id.clone(), challenge.number, expires_in, phone.name.clone());
        tracing::info!(user = %who, phone = %phone.name, challenge = %challenge.id, "phone-registered-awaiting-test");
        self.links.registered(token, phone, told);
        Ok((user, challenge.id, expires_in))
    }

    /// Signs a phone in to the page: its passkey signed `challenge` (one
    /// mfa-web drew and will not take twice). Returns (user, phone name).
    #[allow(clippy::too_many_arguments)]
    async fn sign_in(
        &self,
        challenge: Vec<u8>,
        credential_id: Vec<u8>,
        authenticator_data: Vec<u8>,
        client_data_json: Vec<u8>,
        signature: Vec<u8>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(String, String), MfaError> {
        self.caller(Method::SignIn, &header, conn).await?;
        if challenge.len() < 16 || challenge.len() > 64 {
            return Err(MfaError::InvalidArgument("a sign-in challenge is 16 to 64 bytes".into()));
        }
        let signed = assertion(credential_id, authenticator_data, client_data_json, signature)?;
        let id = signed.credential_id.clone();
        let owner = bus::stored(&self.service, move |store| store.phone_owner(&id)).await?;
        let Some(user) = owner else {
            return Err(refused("", None, "sign-in", Refusal::UnknownPhone));
        };
        let (phone, _) = self.phone_of(&user, &signed.credential_id, None).await?;
        self.checked(&user, &phone, true, &signed, &challenge, "sign-in").await?;
        tracing::info!(user = %user, phone = %phone.name, "phone-signed-in");
        Ok((user.to_string(), phone.name))
    }

    /// The pending requests of `user`, as `Approver1.Pending` gives them.
    async fn pending(
        &self,
        user: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<(String, HashMap<String, String>, u64)>, MfaError> {
        self.caller(Method::WebPending, &header, conn).await?;
        let user = bus::parse_user(user)?;
        bus::stored(&self.service, move |store| {
            store.pending_challenges(Some(user.as_str()), clock::now())
        })
        .await
    }

    /// Approves request `id` of `user` with the number typed on the phone:
    /// taken only with the phone's passkey signature over this request and
    /// this number (`passkey::approval_challenge`). A wrong number ends
    /// the request. The log keeps the signature as evidence.
    #[allow(clippy::too_many_arguments)]
    async fn approve(
        &self,
        user: &str,
        id: &str,
        number: u32,
        credential_id: Vec<u8>,
        authenticator_data: Vec<u8>,
        client_data_json: Vec<u8>,
        signature: Vec<u8>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u32, MfaError> {
        self.caller(Method::WebApprove, &header, conn).await?;
        let user = bus::parse_user(user)?;
        let signed = assertion(credential_id, authenticator_data, client_data_json, signature)?;
        let asks = self.request(&user, id).await?;
        let (phone, active) = self.phone_of(&user, &signed.credential_id, Some(id)).await?;
        if active && self.links.is_phone_test(id) {
            return Err(refused(user.as_str(), Some(&phone), "approve", Refusal::UnknownPhone));
        }
        let challenge = passkey::approval_challenge(id, &asks, number);
        self.checked(&user, &phone, active, &signed, &challenge, "approve").await?;
        // The passkey stands for the session rule: the phone is not the
        // requesting session, and its user verification is a factor of its own.
        let approver = Approver { session: None, verified: true };
        let (wanted, who) = (id.to_string(), user.clone());
        let answered = bus::stored(&self.service, move |store| {
            store.answer_challenge(
                &wanted,
                who.as_str(),
                number,
                approver,
                SessionRule::Any,
                clock::now(),
            )
        })
        .await?;
        let (outcome, c) = answered.map_err(bus::not_taken)?;
        bus::tell_web(conn, &self.approvers, &c.user).await;
        if !active {
            self.links.close(&c.id);
            if outcome == ChallengeOutcome::Approved {
                let (who, added) = (user.clone(), phone.clone());
                if !bus::stored(&self.service, move |store| store.add_phone(&who, added)).await? {
                    return Err(MfaError::NotEnrolled);
                }
                tracing::info!(user = %user, phone = %phone.name, "phone-added");
            }
        }
        if outcome == ChallengeOutcome::Approved && !c.test {
            self.sessions.note_success(&c.user, &c.creator, clock::now());
        }
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        tracing::info!(
            user = %c.user,
            service = ?asks.get(context::SERVICE).cloned().unwrap_or_default(),
            challenge = %c.id,
            test = c.test,
            result = outcome.as_str(),
            phone = %phone.name,
            credential = %b64(&phone.credential_id),
            signed_challenge = %b64(&challenge),
            authenticator_data = %b64(&signed.authenticator_data),
            client_data = %b64(&signed.client_data_json),
            signature = %b64(&signed.signature),
            "challenge-ended-by-phone"
        );
        Ok(outcome.into())
    }

    /// Denies request `id` of `user` (the phone's "Deny").
    async fn deny(
        &self,
        user: &str,
        id: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u32, MfaError> {
        self.caller(Method::WebDeny, &header, conn).await?;
        let user = bus::parse_user(user)?;
        let (wanted, who) = (id.to_string(), user.clone());
        let (outcome, c) = bus::stored(&self.service, move |store| {
            store.end_challenge(
                &wanted,
                ChallengeOutcome::Denied,
                Ender::User(who.as_str()),
                clock::now(),
            )
        })
        .await?
        .map_err(bus::not_taken)?;
        self.links.close(&c.id);
        bus::tell_web(conn, &self.approvers, &c.user).await;
        tracing::info!(user = %c.user, challenge = %c.id, result = outcome.as_str(), by = "phone", "challenge-ended");
        Ok(outcome.into())
    }

    /// "This was not me" on the phone: as `Approver1.Report`.
    async fn report(
        &self,
        user: &str,
        id: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u32, MfaError> {
        self.caller(Method::WebReport, &header, conn).await?;
        let user = bus::parse_user(user)?;
        let outcome = bus::report(&self.service, &user, id, "phone").await?;
        bus::tell_web(conn, &self.approvers, user.as_str()).await;
        Ok(outcome)
    }

    /// Sent to the web approver when a request of `user` is made.
    #[zbus(signal)]
    async fn requests_changed(
        emitter: &zbus::object_server::SignalEmitter<'_>,
        user: &str,
    ) -> zbus::Result<()>;
}

/// Opens an add-phone link of `user` for `creator`: in the store when it
/// keeps links for a web approver elsewhere (a fleet), else here.
pub async fn open_link(
    service: &Arc<pam_mfa_core::service::Service>,
    links: &Links,
    token: &str,
    user: &Username,
    creator: &str,
) -> Result<(), MfaError> {
    let seconds = service.config().web.link_seconds.get();
    if service.store().shared_links().is_none() {
        let now = clock::now();
        links.open(token, user.as_str(), creator, now + seconds, now);
        return Ok(());
    }
    let (hash, who, by) = (key_of(token), user.clone(), creator.to_string());
    let opened = bus::stored(service, move |store| match store.shared_links() {
        Some(shared) => shared.open_link(&hash, &who, &by, seconds),
        None => Ok(false),
    })
    .await?;
    if !opened {
        return Err(MfaError::NotEnrolled);
    }
    Ok(())
}

/// Waits up to `limit` until a phone used the link `token` of `creator`:
/// its test request, or `None` when no phone came in time.
pub async fn wait_link(
    service: &Arc<pam_mfa_core::service::Service>,
    links: &Links,
    token: &str,
    creator: &str,
    limit: std::time::Duration,
) -> Result<Option<Registered>, MfaError> {
    let gone = || {
        MfaError::InvalidArgument(
            "no such link of this caller (it expired, or was replaced)".into(),
        )
    };
    if service.store().shared_links().is_none() {
        let mut seen = links.watch(token, creator).ok_or_else(gone)?;
        return Ok(match tokio::time::timeout(limit, seen.wait_for(Option::is_some)).await {
            Ok(Ok(now)) => now.clone(),
            _ => None,
        });
    }
    // The web approver is elsewhere: the database says when a phone came.
    // Read four times a second: a phone is added once, by a person; and
    // a few waiters at once, so that many waits (one user's calls in a
    // loop) cannot take the store's connections from everyone's logins.
    static POLLING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);
    let deadline = tokio::time::Instant::now() + limit;
    let Ok(Ok(_polling)) = tokio::time::timeout_at(deadline, POLLING.acquire()).await else {
        return Ok(None);
    };
    loop {
        let (hash, by) = (key_of(token), creator.to_string());
        let state = bus::stored(service, move |store| match store.shared_links() {
            Some(shared) => shared.link_state(&hash, &by),
            None => Ok(None),
        })
        .await?;
        match state {
            None => return Err(gone()),
            Some(Some(used)) => return Ok(Some(used)),
            Some(None) if tokio::time::Instant::now() >= deadline => return Ok(None),
            Some(None) => tokio::time::sleep(std::time::Duration::from_millis(250)).await,
        }
    }
}

/// Whether `challenge` is the test request of a phone being added.
pub async fn is_phone_test(
    service: &Arc<pam_mfa_core::service::Service>,
    links: &Links,
    challenge: &str,
) -> Result<bool, MfaError> {
    if links.is_phone_test(challenge) {
        return Ok(true);
    }
    if service.store().shared_links().is_none() {
        return Ok(false);
    }
    let id = challenge.to_string();
    bus::stored(service, move |store| {
        store.shared_links().map_or(Ok(false), |shared| shared.is_phone_test(&id))
    })
    .await
}

/// Whether a web approver serves phones: one online on this bus, or in a
/// fleet the one of `[web] public_url`, on the database (this host cannot
/// see it: the page says so if it is down).
pub fn phones_reachable(service: &pam_mfa_core::service::Service, approvers: &Approvers) -> bool {
    !approvers.web().is_empty()
        || (service.store().shared_links().is_some() && relying(service).is_some())
}

/// In a fleet, whether the approval of `challenge` (made here) holds: a
/// web approver answers on the database, so the phone's signature it
/// kept there is checked again here, against the phone's key, over this
/// request and its number. An approval by no phone (an approver on a
/// host) is the database's word.
pub async fn phone_approval_holds(
    service: &Arc<pam_mfa_core::service::Service>,
    challenge: &str,
) -> Result<bool, MfaError> {
    if service.store().shared_links().is_none() {
        return Ok(true);
    }
    let id = challenge.to_string();
    let evidence = bus::stored(service, move |store| match store.shared_links() {
        Some(shared) => shared.phone_evidence(&id),
        None => Ok(None),
    })
    .await?;
    let refusal = match evidence {
        None => return Ok(true),
        Some(None) => Refusal::UnknownPhone,
        Some(Some(e)) => {
            let signed = passkey::approval_challenge(challenge, &e.context, e.number);
            match relying(service) {
                None => Refusal::WrongOrigin,
                Some(relying) => match passkey::verify(&e.phone, &e.assertion, &signed, &relying) {
                    Ok(_) => return Ok(true),
                    Err(refusal) => refusal,
                },
            }
        }
    };
    tracing::error!(
        challenge = %challenge,
        reason = refusal.as_str(),
        "phone-approval-refused"
    );
    Ok(false)
}

fn bad_link() -> MfaError {
    MfaError::InvalidArgument(
        "this link cannot be used: it was used already, it expired, or it was never made".into(),
    )
}

/// A new link's token: 32 random bytes, base64url.
pub fn token(service: &pam_mfa_core::service::Service) -> Result<String, MfaError> {
    let bytes = service
        .random_bytes(32)
        .map_err(|e| MfaError::Internal(format!("no randomness from the OS: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(id: u8) -> Phone {
        Phone {
            credential_id: vec![id],
            public_key: vec![4; 65],
            name: "p".into(),
            added_at: 0,
            sign_count: 0,
            last_used: 0,
        }
    }

    #[test]
    fn a_link_adds_one_phone_once_before_it_expires() {
        let links = Links::default();
        links.open("t1", "alice", ":1.5", 100, 10);
        assert_eq!(links.user_of("t1", 99).as_deref(), Some("alice"));
        assert_eq!(links.user_of("t1", 100), None, "expired");
        assert_eq!(links.user_of("t2", 50), None, "unknown");
        assert_eq!(links.take("t1", 50), Some(("alice".into(), ":1.5".into())));
        links.registered("t1", phone(7), ("c1".into(), 42, 60, "p".into()));
        assert_eq!(links.take("t1", 50), None, "used");
        assert_eq!(links.user_of("t1", 50), None);
        assert!(links.waiting_phone("alice", "c1", &[7]).is_some());
        assert!(links.is_phone_test("c1") && !links.is_phone_test("c2"));
        assert!(links.waiting_phone("bob", "c1", &[7]).is_none(), "another user's");
        assert!(links.waiting_phone("alice", "c2", &[7]).is_none(), "another request");
        assert!(links.waiting_phone("alice", "c1", &[8]).is_none(), "another passkey");
        links.close("c1");
        assert!(links.waiting_phone("alice", "c1", &[7]).is_none());
        assert!(!links.is_phone_test("c1"));
    }

    #[test]
    fn only_the_links_maker_waits_and_a_new_link_ends_the_old() {
        let links = Links::default();
        links.open("t1", "alice", ":1.5", 100, 10);
        assert!(links.watch("t1", ":1.6").is_none());
        let seen = links.watch("t1", ":1.5").unwrap();
        links.open("t2", "alice", ":1.5", 100, 10);
        assert_eq!(links.user_of("t1", 50), None, "one link per user");
        assert!(seen.has_changed().is_err(), "the old link's waiter is let go");
    }
}
