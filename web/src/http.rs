//! The page and its JSON API (web/API.md): sessions in memory, a CSRF
//! token and an Origin check on every state change, per-address rate
//! limits, and strict headers on every answer. What a phone signs goes to
//! mfad unread.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::backend::Backend;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use pam_mfa_client::MfaError;
use pam_mfa_core::passkey::Assertion;
use pam_mfa_protocol::wire::{context, ChallengeOutcome};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;
use webauthn_rs::prelude::{
    COSEKeyType, PasskeyRegistration, RegisterPublicKeyCredential, Url, Uuid, Webauthn,
    WebauthnBuilder,
};

const COOKIE: &str = "__Host-mfa";
/// Sign-in challenges and registrations wait this long for the phone.
const CEREMONY_SECONDS: u64 = 180;
/// What a phone gives WebAuthn to answer, in milliseconds.
const PASSKEY_TIMEOUT_MS: u64 = 120_000;
/// Passkey steps before a session (sign-in, registration) per address per minute.
const SIGN_IN_STEPS_PER_MINUTE: u32 = 30;
/// Approval steps (begin, finish) per signed-in user per minute: each needs
/// the passkey, and mfad's own budget bounds the requests to approve.
const APPROVAL_STEPS_PER_MINUTE: u32 = 240;
/// Open sessions and ceremonies kept at most (each bounded in time too).
const MAX_KEPT: usize = 10_000;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; manifest-src 'self'; worker-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

struct Session {
    user: String,
    phone: String,
    /// The passkey that signed in (or was just registered): approvals must
    /// be signed by it.
    credential: Vec<u8>,
    csrf: String,
    expires_at: u64,
}

#[derive(Default)]
struct Kept {
    sessions: HashMap<String, Session>,
    /// Sign-in challenges drawn and not yet used, with their expiry.
    sign_ins: HashMap<Vec<u8>, u64>,
    /// Registrations begun, by link token: (state, user, expiry).
    registrations: HashMap<String, (PasskeyRegistration, String, u64)>,
    /// Passkey steps per address in the current minute.
    /// Passkey steps in the current minute, by address or by user.
    steps: HashMap<String, (u64, u32)>,
}

pub struct App {
    backend: Backend,
    webauthn: Webauthn,
    origin: String,
    rp_id: String,
    session_seconds: u64,
    kept: Mutex<Kept>,
    changes: broadcast::Sender<String>,
    random: ring::rand::SystemRandom,
}

/// The one place mfa-web reads the clock.
#[allow(clippy::disallowed_methods)]
fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// An answer the page understands: a status and an error code (API.md).
#[derive(Debug)]
struct Failure(StatusCode, &'static str, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1, "message": self.2}))).into_response()
    }
}

type Answer = Result<Json<Value>, Failure>;

fn bad(message: impl Into<String>) -> Failure {
    Failure(StatusCode::BAD_REQUEST, "bad-request", message.into())
}

fn signed_out() -> Failure {
    Failure(StatusCode::UNAUTHORIZED, "signed-out", "sign in with your passkey".into())
}

/// mfad's refusal as the page's error code.
fn refusal(e: MfaError) -> Failure {
    match e {
        MfaError::NoSuchChallenge => {
            Failure(StatusCode::NOT_FOUND, "unknown", "no such request".into())
        }
        MfaError::AccessDenied(m) => Failure(StatusCode::FORBIDDEN, "refused", m),
        MfaError::InvalidArgument(m) => Failure(StatusCode::BAD_REQUEST, "refused", m),
        MfaError::TooManyRequests { .. } => {
            Failure(StatusCode::TOO_MANY_REQUESTS, "too-many", "too many requests".into())
        }
        other => {
            tracing::warn!(error = %other.message(), "mfad-refused");
            Failure(StatusCode::SERVICE_UNAVAILABLE, "unavailable", other.message())
        }
    }
}

fn outcome_word(outcome: u32) -> &'static str {
    ChallengeOutcome::try_from(outcome).map_or("unknown", ChallengeOutcome::as_str)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(what: &str, text: &str) -> Result<Vec<u8>, Failure> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| bad(format!("{what} is not base64url")))
}

impl App {
    pub fn new(
        backend: Backend,
        origin: &str,
        rp_id: &str,
        session_seconds: u64,
    ) -> Result<App, String> {
        let url = Url::parse(origin).map_err(|e| format!("{origin}: {e}"))?;
        let webauthn = WebauthnBuilder::new(rp_id, &url)
            .and_then(|b| b.rp_name("pam-mfa").build())
            .map_err(|e| format!("passkeys cannot be set up for {origin}: {e}"))?;
        let (changes, _) = broadcast::channel(256);
        Ok(App {
            backend,
            webauthn,
            origin: origin.into(),
            rp_id: rp_id.into(),
            session_seconds,
            kept: Mutex::new(Kept::default()),
            changes,
            random: ring::rand::SystemRandom::new(),
        })
    }

    fn kept(&self) -> MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request of `user` was made: their open pages hear of it.
    pub fn tell(&self, user: &str) {
        let _ = self.changes.send(user.to_string());
    }

    fn random(&self, n: usize) -> Result<Vec<u8>, Failure> {
        use ring::rand::SecureRandom;
        let mut bytes = vec![0; n];
        self.random.fill(&mut bytes).map_err(|_| {
            Failure(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "no randomness".into())
        })?;
        Ok(bytes)
    }

    /// Counts a passkey step of `who` (an address, or a signed-in user):
    /// refused past `budget` in the minute.
    fn step(&self, who: String, budget: u32) -> Result<(), Failure> {
        let minute = now() / 60;
        let mut kept = self.kept();
        if kept.steps.len() > MAX_KEPT {
            kept.steps.retain(|_, (m, _)| *m == minute);
        }
        let entry = kept.steps.entry(who.clone()).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        entry.1 += 1;
        if entry.1 > budget {
            tracing::warn!(who = %who, "rate-limited");
            return Err(Failure(StatusCode::TOO_MANY_REQUESTS, "too-many", "slow down".into()));
        }
        Ok(())
    }

    /// A new session for `user` signed in with `credential`: (cookie value, csrf).
    fn open_session(
        &self,
        user: &str,
        phone: &str,
        credential: Vec<u8>,
    ) -> Result<(String, String), Failure> {
        let id = b64(&self.random(32)?);
        let csrf = b64(&self.random(32)?);
        let mut kept = self.kept();
        let t = now();
        kept.sessions.retain(|_, s| s.expires_at > t);
        if kept.sessions.len() >= MAX_KEPT {
            return Err(Failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "too many sessions".into(),
            ));
        }
        let session = Session {
            user: user.into(),
            phone: phone.into(),
            credential,
            csrf: csrf.clone(),
            expires_at: t + self.session_seconds,
        };
        kept.sessions.insert(id.clone(), session);
        Ok((id, csrf))
    }

    fn cookie(&self, id: &str) -> String {
        format!(
            "{COOKIE}={id}; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
            self.session_seconds
        )
    }

    /// The session of the request's cookie: (user, phone, credential, csrf).
    fn session(&self, headers: &HeaderMap) -> Result<(String, String, Vec<u8>, String), Failure> {
        let id = session_cookie(headers).ok_or_else(signed_out)?;
        let kept = self.kept();
        let s = kept.sessions.get(&id).filter(|s| s.expires_at > now()).ok_or_else(signed_out)?;
        Ok((s.user.clone(), s.phone.clone(), s.credential.clone(), s.csrf.clone()))
    }

    /// A state change from the page: its session, with the CSRF token.
    fn changing(&self, headers: &HeaderMap) -> Result<(String, String, Vec<u8>), Failure> {
        let (user, phone, credential, csrf) = self.session(headers)?;
        let sent = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or("");
        if !same(sent.as_bytes(), csrf.as_bytes()) {
            tracing::warn!(user = %user, "csrf-refused");
            return Err(Failure(
                StatusCode::FORBIDDEN,
                "csrf",
                "missing or wrong CSRF token".into(),
            ));
        }
        Ok((user, phone, credential))
    }

    /// The request as the page shows it: never a number.
    fn shown(id: &str, asks: &HashMap<String, String>, expires_in: u64) -> Value {
        let field = |key: &str| asks.get(key).cloned().unwrap_or_default();
        json!({
            "id": id,
            "user": field(context::USER),
            "host": field(context::HOST),
            "service": field(context::SERVICE),
            "rhost": field(context::RHOST),
            "tty": field(context::TTY),
            "command": field(context::COMMAND),
            "time": field(context::TIME),
            "expires_in": expires_in,
            "test": field(context::SERVICE) == "mfa-enroll --add-phone",
        })
    }

    async fn pending(
        &self,
        user: &str,
    ) -> Result<Vec<(String, HashMap<String, String>, u64)>, Failure> {
        self.backend.pending(user).await.map_err(refusal)
    }
}

/// Every answer: no framing, no sniffing, no referrer, HTTPS only, and a
/// Content-Security-Policy that allows this origin alone.
async fn headers(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("strict-transport-security", "max-age=31536000"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        ("permissions-policy", "camera=(), microphone=(), geolocation=()"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    if api {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A POST from another origin is refused before anything is read.
async fn same_origin(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if request.method() == axum::http::Method::POST {
        let origin = request.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok());
        if origin != Some(app.origin.as_str()) {
            tracing::warn!(origin = ?origin, path = %request.uri().path(), "origin-refused");
            return Failure(StatusCode::FORBIDDEN, "refused", "wrong origin".into())
                .into_response();
        }
    }
    next.run(request).await
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/add", get(page))
        .route(
            "/app.js",
            get(|| file("text/javascript; charset=utf-8", include_str!("../static/app.js"))),
        )
        .route(
            "/app.css",
            get(|| file("text/css; charset=utf-8", include_str!("../static/app.css"))),
        )
        .route(
            "/sw.js",
            get(|| file("text/javascript; charset=utf-8", include_str!("../static/sw.js"))),
        )
        .route("/icon.svg", get(|| file("image/svg+xml", include_str!("../static/icon.svg"))))
        .route(
            "/manifest.webmanifest",
            get(|| {
                file("application/manifest+json", include_str!("../static/manifest.webmanifest"))
            }),
        )
        .route("/api/register/begin", post(register_begin))
        .route("/api/register/finish", post(register_finish))
        .route("/api/signin/begin", post(sign_in_begin))
        .route("/api/signin/finish", post(sign_in_finish))
        .route("/api/session", get(session))
        .route("/api/signout", post(sign_out))
        .route("/api/requests", get(requests))
        .route("/api/events", get(events))
        .route("/api/approve/begin", post(approve_begin))
        .route("/api/approve/finish", post(approve_finish))
        .route("/api/deny", post(deny))
        .route("/api/report", post(report))
        .layer(middleware::from_fn_with_state(Arc::clone(&app), same_origin))
        .layer(middleware::from_fn(headers))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(app)
}

async fn file(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// The page, in the language the browser asks for first (en or nl).
async fn page(headers: HeaderMap) -> Response {
    let asked = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let lang = asked
        .split(',')
        .map(|tag| tag.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .find_map(|tag| match tag.split('-').next() {
            Some("nl") => Some("nl"),
            Some("en") => Some("en"),
            _ => None,
        })
        .unwrap_or("en");
    let body = include_str!("../static/index.html").replacen(
        "<html lang=\"en\">",
        &format!("<html lang=\"{lang}\">"),
        1,
    );
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")],
        body,
    )
        .into_response()
}

#[derive(Deserialize)]
struct Token {
    token: String,
}

fn checked_token(token: &str) -> Result<(), Failure> {
    if token.is_empty()
        || token.len() > 128
        || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Failure(StatusCode::BAD_REQUEST, "refused", "not a link token".into()));
    }
    Ok(())
}

/// The value of the session cookie the request carries.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

/// The WebAuthn user handle of a user name: stable (a phone registered
/// again replaces its passkey), and not the name itself (WebAuthn §14.6.1).
fn user_handle(user: &str) -> Uuid {
    let hash = ring::digest::digest(&ring::digest::SHA256, user.as_bytes());
    let mut bytes = [0; 16];
    bytes.copy_from_slice(&hash.as_ref()[..16]);
    Uuid::from_bytes(bytes)
}

/// Equal, compared in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn register_begin(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<Token>,
) -> Answer {
    app.step(format!("address {}", peer.ip()), SIGN_IN_STEPS_PER_MINUTE)?;
    checked_token(&body.token)?;
    let (user, existing) = app.backend.check_link(&body.token).await.map_err(refusal)?;
    let (options, state) = app
        .webauthn
        .start_passkey_registration(user_handle(&user), &user, &user, Some(existing))
        .map_err(|e| bad(format!("cannot start a registration: {e}")))?;
    let mut public_key =
        serde_json::to_value(&options.public_key).map_err(|e| bad(e.to_string()))?;
    // Signing in needs no user name: the passkey must be discoverable.
    if let Some(selection) =
        public_key.get_mut("authenticatorSelection").and_then(Value::as_object_mut)
    {
        selection.insert("residentKey".into(), json!("required"));
        selection.insert("requireResidentKey".into(), json!(true));
        selection.insert("userVerification".into(), json!("required"));
    }
    let mut kept = app.kept();
    let t = now();
    kept.registrations.retain(|_, (_, _, until)| *until > t);
    if kept.registrations.len() >= MAX_KEPT {
        return Err(Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "too many registrations".into(),
        ));
    }
    kept.registrations.insert(body.token, (state, user.clone(), t + CEREMONY_SECONDS));
    Ok(Json(json!({"user": user, "publicKey": public_key})))
}

#[derive(Deserialize)]
struct Registered {
    token: String,
    #[serde(default)]
    name: String,
    credential: RegisterPublicKeyCredential,
}

async fn register_finish(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<Registered>,
) -> Result<Response, Failure> {
    app.step(format!("address {}", peer.ip()), SIGN_IN_STEPS_PER_MINUTE)?;
    checked_token(&body.token)?;
    let begun = app.kept().registrations.remove(&body.token);
    let Some((state, user, until)) = begun.filter(|(_, _, until)| *until > now()) else {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            "refused",
            "no registration was begun with this link".into(),
        ));
    };
    let _ = until;
    let passkey =
        app.webauthn.finish_passkey_registration(&body.credential, &state).map_err(|e| {
            tracing::warn!(user = %user, error = %e, "registration-refused");
            Failure(StatusCode::FORBIDDEN, "refused", format!("the passkey was not accepted: {e}"))
        })?;
    let key = match &passkey.get_public_key().key {
        COSEKeyType::EC_EC2(ec) if ec.x.len() == 32 && ec.y.len() == 32 => {
            let mut point = vec![4];
            point.extend_from_slice(&ec.x);
            point.extend_from_slice(&ec.y);
            point
        }
        _ => {
            return Err(Failure(
                StatusCode::FORBIDDEN,
                "refused",
                "only P-256 passkeys (ES256) are taken".into(),
            ))
        }
    };
    let credential = passkey.cred_id().to_vec();
    let (user, id, expires_in) =
        app.backend.add_phone(&body.token, &credential, &key, &body.name).await.map_err(refusal)?;
    let name = body.name.chars().filter(|c| !c.is_control()).take(64).collect::<String>();
    let (cookie, csrf) = app.open_session(&user, &name, credential)?;
    tracing::info!(user = %user, "phone-registered");
    let mut asks = HashMap::new();
    asks.insert(context::USER.to_string(), user.clone());
    asks.insert(context::SERVICE.to_string(), "mfa-enroll --add-phone".to_string());
    let request = App::shown(&id, &asks, expires_in);
    let body = Json(json!({"user": user, "csrf": csrf, "request": request}));
    Ok(([(header::SET_COOKIE, app.cookie(&cookie))], body).into_response())
}

async fn sign_in_begin(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Answer {
    app.step(format!("address {}", peer.ip()), SIGN_IN_STEPS_PER_MINUTE)?;
    let challenge = app.random(32)?;
    let mut kept = app.kept();
    let t = now();
    kept.sign_ins.retain(|_, until| *until > t);
    if kept.sign_ins.len() >= MAX_KEPT {
        return Err(Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "too many sign-ins".into(),
        ));
    }
    kept.sign_ins.insert(challenge.clone(), t + CEREMONY_SECONDS);
    Ok(Json(json!({"publicKey": {
        "challenge": b64(&challenge),
        "rpId": app.rp_id,
        "userVerification": "required",
        "timeout": PASSKEY_TIMEOUT_MS,
    }})))
}

/// An assertion as the page sends it (base64url fields).
#[derive(Deserialize)]
struct Credential {
    #[serde(rename = "rawId")]
    raw_id: String,
    response: AssertionResponse,
}

#[derive(Deserialize)]
struct AssertionResponse {
    #[serde(rename = "authenticatorData")]
    authenticator_data: String,
    #[serde(rename = "clientDataJSON")]
    client_data_json: String,
    signature: String,
}

/// The assertion a page sent, each part within its bounds.
fn decoded(c: &Credential) -> Result<Assertion, Failure> {
    Assertion::new(
        unb64("rawId", &c.raw_id)?,
        unb64("authenticatorData", &c.response.authenticator_data)?,
        unb64("clientDataJSON", &c.response.client_data_json)?,
        unb64("signature", &c.response.signature)?,
    )
    .map_err(bad)
}

#[derive(Deserialize)]
struct SignIn {
    credential: Credential,
}

async fn sign_in_finish(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<SignIn>,
) -> Result<Response, Failure> {
    app.step(format!("address {}", peer.ip()), SIGN_IN_STEPS_PER_MINUTE)?;
    let d = decoded(&body.credential)?;
    // The challenge it signed must be one drawn here and not used: taken now.
    let client: Value =
        serde_json::from_slice(&d.client_data_json).map_err(|_| bad("client data is not JSON"))?;
    let challenge =
        unb64("challenge", client.get("challenge").and_then(Value::as_str).unwrap_or(""))?;
    let fresh = app.kept().sign_ins.remove(&challenge).is_some_and(|until| until > now());
    if !fresh {
        return Err(Failure(
            StatusCode::FORBIDDEN,
            "refused",
            "this sign-in was not begun here, or is used".into(),
        ));
    }
    let (user, phone) = app.backend.sign_in(&challenge, &d).await.map_err(refusal)?;
    let (cookie, csrf) = app.open_session(&user, &phone, d.credential_id)?;
    let body = Json(json!({"user": user, "phone": phone, "csrf": csrf}));
    Ok(([(header::SET_COOKIE, app.cookie(&cookie))], body).into_response())
}

async fn session(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    let (user, phone, _, csrf) = app.session(&headers)?;
    Ok(Json(json!({"user": user, "phone": phone, "csrf": csrf})))
}

async fn sign_out(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, Failure> {
    app.changing(&headers)?;
    let id = session_cookie(&headers).unwrap_or_default();
    app.kept().sessions.remove(&id);
    let gone = format!("{COOKIE}=; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    Ok(([(header::SET_COOKIE, gone)], Json(json!({}))).into_response())
}

async fn requests(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    let (user, ..) = app.session(&headers)?;
    let list: Vec<Value> = app
        .pending(&user)
        .await?
        .iter()
        .map(|(id, asks, left)| App::shown(id, asks, *left))
        .collect();
    Ok(Json(json!({"requests": list})))
}

/// Server-sent events: `request` whenever one of the user's is made.
async fn events(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, Failure> {
    let (user, ..) = app.session(&headers)?;
    let heard = app.changes.subscribe();
    let until = tokio::time::Instant::now() + Duration::from_secs(app.session_seconds);
    let stream = futures_util::stream::unfold((heard, user), move |(mut heard, user)| async move {
        loop {
            match tokio::time::timeout_at(until, heard.recv()).await {
                Ok(Ok(who)) if who == user => {
                    let event = Event::default().event("request").data("{}");
                    return Some((Ok::<_, std::convert::Infallible>(event), (heard, user)));
                }
                Ok(Ok(_)) => continue,
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    let event = Event::default().event("request").data("{}");
                    return Some((Ok(event), (heard, user)));
                }
                // The session ended, or mfa-web is stopping.
                Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => return None,
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

#[derive(Deserialize)]
struct Numbered {
    id: String,
    number: u32,
}

fn checked_id(id: &str) -> Result<(), Failure> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Failure(StatusCode::NOT_FOUND, "unknown", "no such request".into()));
    }
    Ok(())
}

async fn approve_begin(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Json(body): Json<Numbered>,
) -> Answer {
    let (user, _, credential) = app.changing(&headers)?;
    app.step(format!("user {user}"), APPROVAL_STEPS_PER_MINUTE)?;
    checked_id(&body.id)?;
    if !(10..=99).contains(&body.number) {
        return Err(bad("the number has two digits"));
    }
    let pending = app.pending(&user).await?;
    let Some((id, asks, _)) = pending.iter().find(|(id, _, _)| *id == body.id) else {
        return Err(Failure(StatusCode::NOT_FOUND, "unknown", "no such request".into()));
    };
    let challenge = pam_mfa_core::passkey::approval_challenge(id, asks, body.number);
    Ok(Json(json!({"publicKey": {
        "challenge": b64(&challenge),
        "rpId": app.rp_id,
        "allowCredentials": [{"type": "public-key", "id": b64(&credential)}],
        "userVerification": "required",
        "timeout": PASSKEY_TIMEOUT_MS,
    }})))
}

#[derive(Deserialize)]
struct Approval {
    id: String,
    number: u32,
    credential: Credential,
}

async fn approve_finish(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Json(body): Json<Approval>,
) -> Answer {
    let (user, phone, _) = app.changing(&headers)?;
    app.step(format!("user {user}"), APPROVAL_STEPS_PER_MINUTE)?;
    checked_id(&body.id)?;
    let d = decoded(&body.credential)?;
    let answered = app.backend.approve(&user, &body.id, body.number, &d).await;
    let outcome = match answered {
        Ok(outcome) => outcome,
        Err(MfaError::ChallengeEnded { outcome }) => outcome,
        Err(e) => return Err(refusal(e)),
    };
    tracing::info!(user = %user, phone = %phone, request = %body.id, outcome = outcome_word(outcome), "answered");
    Ok(Json(json!({"outcome": outcome_word(outcome)})))
}

#[derive(Deserialize)]
struct Id {
    id: String,
}

async fn deny(State(app): State<Arc<App>>, headers: HeaderMap, Json(body): Json<Id>) -> Answer {
    let (user, ..) = app.changing(&headers)?;
    checked_id(&body.id)?;
    let outcome = match app.backend.deny(&user, &body.id).await {
        Ok(outcome) | Err(MfaError::ChallengeEnded { outcome }) => outcome,
        Err(e) => return Err(refusal(e)),
    };
    Ok(Json(json!({"outcome": outcome_word(outcome)})))
}

async fn report(State(app): State<Arc<App>>, headers: HeaderMap, Json(body): Json<Id>) -> Answer {
    let (user, ..) = app.changing(&headers)?;
    checked_id(&body.id)?;
    let outcome = match app.backend.report(&user, &body.id).await {
        Ok(outcome) | Err(MfaError::ChallengeEnded { outcome }) => outcome,
        Err(e) => return Err(refusal(e)),
    };
    Ok(Json(json!({"outcome": outcome_word(outcome)})))
}
