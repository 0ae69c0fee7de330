//! The fleet store: every host's mfad on one PostgreSQL database. Each
//! operation of [`Storage`] is one call of a function of the database
//! (`storage/sql/002-store.sql`), one transaction: a code is checked
//! where the secret is, on the database's clock, and accepted once
//! fleet-wide. A host's role may call those functions and nothing else.
//!
//! Connections come from a small pool with bounded waits (connect,
//! statement, a free connection): when the database cannot be reached an
//! operation fails within that bound, and the next one connects again.
//! A challenge's waiter is woken by LISTEN/NOTIFY on a connection of its
//! own; the notice carries only the id, and the outcome is read from the
//! database, so a NOTIFY from anyone else decides nothing.

use pam_mfa_core::passkey::{Assertion, Evidence, Phone};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pam_mfa_config::schema::LimitScope;
use pam_mfa_core::account::{
    Account, Attempt, Confirmation, Device, Pending, RecoveryHashes, Rules, Verdict,
};
use pam_mfa_core::challenge::{Approver, Challenge, Context, NotTaken, SessionRule};
use pam_mfa_core::challenges::{Announced, Budget, Ender, Listed, Refused, Waiter};
use pam_mfa_core::storage::{LinkUsed, SharedLinks, Storage, StorageError, Summary};
use pam_mfa_core::{limits, recovery};
use pam_mfa_protocol::username::Username;
use pam_mfa_protocol::wire::{ChallengeOutcome, VerifyOutcome};
use postgres::types::{FromSql, ToSql};
use postgres::{Client, NoTls, Row, Statement};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;
use zeroize::Zeroizing;

/// The channel the database's functions notify when a challenge ends.
pub(crate) const ENDED: &str = "mfa_challenge";
/// The channel they notify when a challenge is made.
pub(crate) const MADE: &str = "mfa_challenge_new";

/// How to reach the database.
#[derive(Clone)]
pub struct Settings {
    pub config: postgres::Config,
    /// TLS (required when set): the server's CA, maybe a client certificate.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Connections kept open for store operations (the listener has its own).
    pub pool_size: usize,
    /// Longest wait for a free connection.
    pub wait: Duration,
}

impl Settings {
    /// Settings from a libpq connection string (key=value or URL), with
    /// the timeouts every connection gets: `connect` per attempt (each
    /// host of a multi-host string), `statement` for a lock wait and for a
    /// free connection of the pool.
    pub fn new(conninfo: &str, connect: Duration, statement: Duration) -> Result<Settings, String> {
        let mut config: postgres::Config =
            conninfo.parse().map_err(|e| format!("the connection string: {e}"))?;
        config.connect_timeout(connect);
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(10));
        config.tcp_user_timeout(statement.max(connect));
        // No statement_timeout: a commit that waits for a synchronous
        // standby and is cancelled by it still commits, and the client is
        // told it did (PostgreSQL warns only): a used step acknowledged
        // without a standby could come back after a failover. The caller
        // is answered within mfad's own bound instead, and the connection
        // waits for the truth. Lock waits end (before any commit).
        // Half the operation's bound for a lock, and for a free connection:
        // the store answers "unreachable" itself, before mfad's bound.
        config.options(&format!("-c lock_timeout={}", (statement / 2).as_millis()));
        if config.get_application_name().is_none() {
            config.application_name("mfad");
        }
        Ok(Settings { config, tls: None, pool_size: 4, wait: statement / 2 })
    }

    /// Requires TLS, trusting the CA certificates in `ca_file` (PEM), and
    /// shows the client certificate `cert` with its key when given.
    pub fn with_tls(
        mut self,
        ca_file: &Path,
        client: Option<(&Path, &Path)>,
    ) -> Result<Settings, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca_file)
            .map_err(|e| format!("{}: {e}", ca_file.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("{}: {e}", ca_file.display()))?;
            roots.add(cert).map_err(|e| format!("{}: {e}", ca_file.display()))?;
        }
        if roots.is_empty() {
            return Err(format!("{}: no certificate in it", ca_file.display()));
        }
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
        let tls = match client {
            Some((cert, key)) => {
                let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                    .and_then(|certs| certs.collect::<Result<_, _>>())
                    .map_err(|e| format!("{}: {e}", cert.display()))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("{}: {e}", key.display()))?;
                builder.with_client_auth_cert(chain, key).map_err(|e| e.to_string())?
            }
            None => builder.with_no_client_auth(),
        };
        self.config.ssl_mode(postgres::config::SslMode::Require);
        self.tls = Some(Arc::new(tls));
        Ok(self)
    }

    /// A host of the connection string reached over the network (not a
    /// socket, not this machine's loopback), if any.
    pub fn remote_host(&self) -> Option<String> {
        self.config.get_hosts().iter().find_map(|h| match h {
            postgres::config::Host::Tcp(name) => {
                let local = name == "localhost"
                    || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
                (!local).then(|| name.clone())
            }
            postgres::config::Host::Unix(_) => None,
        })
    }

    /// The database as errors name it: its hosts and name, never a password.
    pub fn place(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|h| match h {
                postgres::config::Host::Tcp(name) => name.clone(),
                postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        format!("database {} on {}", self.config.get_dbname().unwrap_or("?"), hosts.join(","))
    }

    pub fn connect(&self) -> Result<Client, postgres::Error> {
        match &self.tls {
            Some(tls) => self
                .config
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(ClientConfigRef(tls).get())),
            None => self.config.connect(NoTls),
        }
    }
}

/// A shared rustls config handed to the connector by value.
struct ClientConfigRef<'a>(&'a Arc<rustls::ClientConfig>);

impl ClientConfigRef<'_> {
    fn get(&self) -> rustls::ClientConfig {
        rustls::ClientConfig::clone(self.0)
    }
}

/// One pooled connection and its prepared statements.
pub(crate) struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
    used: Instant,
}

/// A connection idle longer than this is checked before it is used.
const IDLE_CHECK: Duration = Duration::from_secs(1);

impl Conn {
    pub(crate) fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query(&statement, params)
    }

    fn statement(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }

    pub(crate) fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, postgres::Error> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The one row of a function that always returns one.
    pub(crate) fn query_one(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query_one(&statement, params)
    }

    /// The first value of that row.
    pub(crate) fn value<T: for<'a> FromSql<'a>>(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<T, postgres::Error> {
        self.query_one(sql, params)?.try_get(0)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Open connections, at most `pool_size` in use at once.
pub(crate) struct Pool {
    settings: Settings,
    idle: Mutex<Vec<Conn>>,
    busy: Mutex<usize>,
    freed: Condvar,
}

/// A connection slot taken from the pool; given back when dropped.
struct Slot<'a>(&'a Pool);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut busy = lock(&self.0.busy);
        *busy = busy.saturating_sub(1);
        self.0.freed.notify_one();
    }
}

impl Pool {
    pub(crate) fn new(settings: Settings) -> Arc<Pool> {
        Arc::new(Pool {
            settings,
            idle: Mutex::new(Vec::new()),
            busy: Mutex::new(0),
            freed: Condvar::new(),
        })
    }

    pub(crate) fn corrupt(&self, message: String) -> StorageError {
        StorageError::Corrupt { place: self.settings.place(), message }
    }

    fn unavailable(&self, message: String) -> StorageError {
        StorageError::Unreachable { place: self.settings.place(), message }
    }

    fn slot(&self) -> Result<Slot<'_>, StorageError> {
        let deadline = Instant::now() + self.settings.wait;
        let mut busy = lock(&self.busy);
        while *busy >= self.settings.pool_size.max(1) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.unavailable(format!(
                    "all {} connections stayed busy for {} ms",
                    self.settings.pool_size,
                    self.settings.wait.as_millis()
                )));
            }
            busy = self.freed.wait_timeout(busy, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        *busy += 1;
        Ok(Slot(self))
    }

    /// Runs `work` on a connection. A connection idle for a while is
    /// checked first (a failover leaves the pool's connections to a server
    /// that is gone) and replaced if it does not answer; `work` itself is
    /// never sent twice: once sent, it may have committed.
    pub(crate) fn run<T>(
        &self,
        work: impl FnOnce(&mut Conn) -> Result<T, postgres::Error>,
    ) -> Result<T, StorageError> {
        let _slot = self.slot()?;
        let reused = {
            let mut idle = lock(&self.idle);
            idle.retain(|c| !c.client.is_closed());
            idle.pop()
        };
        let check = self.settings.wait.min(Duration::from_secs(1));
        let mut conn = match reused {
            Some(conn) if conn.used.elapsed() < IDLE_CHECK => conn,
            Some(mut conn) => match conn.client.is_valid(check) {
                Ok(()) => conn,
                Err(_) => self.open()?,
            },
            None => self.open()?,
        };
        let answer = work(&mut conn);
        conn.used = Instant::now();
        if !conn.client.is_closed() {
            lock(&self.idle).push(conn);
        }
        answer.map_err(|e| self.failed(&e))
    }

    fn open(&self) -> Result<Conn, StorageError> {
        let client = self.settings.connect().map_err(|e| self.failed(&e))?;
        Ok(Conn { client, statements: HashMap::new(), used: Instant::now() })
    }

    /// A failure as the store says it: the database cannot be reached
    /// (no connection, shutting down, read-only after a failover, full),
    /// or it refused what was asked (a bug or a broken setup, said as is;
    /// never "unreachable", which the break-glass would act on).
    fn failed(&self, e: &postgres::Error) -> StorageError {
        let unreachable = match e.as_db_error() {
            None => true,
            Some(db) => {
                let code = db.code().code();
                code.starts_with("08")
                    || code.starts_with("57P")
                    || code == "25006"
                    || code == "53300"
            }
        };
        if unreachable {
            self.unavailable(describe(e))
        } else {
            StorageError::Io {
                place: self.settings.place(),
                error: std::io::Error::other(describe(e)),
            }
        }
    }
}

/// An error as an administrator needs it: the server's message and code.
pub fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}

type Senders = Mutex<HashMap<String, watch::Sender<Option<ChallengeOutcome>>>>;

/// The fleet store.
pub struct PgStore {
    pool: Arc<Pool>,
    watched: Arc<Senders>,
    /// Challenges other hosts made, as the listener hears of them.
    made: tokio::sync::broadcast::Sender<Announced>,
    stop: Arc<AtomicBool>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn verify_outcome(word: &str) -> Option<VerifyOutcome> {
    VerifyOutcome::ALL.into_iter().find(|o| o.as_str() == word)
}

fn challenge_outcome(word: &str) -> Option<ChallengeOutcome> {
    ChallengeOutcome::ALL.into_iter().find(|o| o.as_str() == word)
}

impl PgStore {
    /// A store on the database of `settings`. Nothing is connected yet:
    /// mfad starts while the database is down and serves once it is up.
    pub fn open(settings: Settings) -> PgStore {
        let pool = Pool::new(settings);
        let watched: Arc<Senders> = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (made, _) = tokio::sync::broadcast::channel(256);
        let heard = Heard { watched: Arc::clone(&watched), made: made.clone() };
        let spawned = spawn_listener(&pool, &stop, move |client, mut notices, fresh| {
            if fresh {
                let all: Vec<_> =
                    lock(&heard.watched).keys().map(|id| (ENDED.to_string(), id.clone())).collect();
                notices.extend(all);
            }
            tell(client, &heard, notices)
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the challenge listener: waits end at expiry");
        }
        PgStore { pool, watched, made, stop }
    }

    /// Connects once and says whether the database answers as a host's
    /// store should (used by `mfad --check` and the setup command).
    pub fn probe(&self) -> Result<(), StorageError> {
        self.pool.run(|c| c.query("SELECT mfa.has_pending('')", &[]).map(|_| ()))
    }

    /// Column `i` of `row`, as what our own functions return.
    fn field<'a, T: FromSql<'a>>(&self, row: &'a Row, i: usize) -> Result<T, StorageError> {
        row.try_get(i).map_err(|e| self.corrupt(format!("column {i}: {e}")))
    }

    fn corrupt(&self, message: String) -> StorageError {
        self.pool.corrupt(message)
    }

    fn outcome_of(&self, word: Option<String>) -> Result<ChallengeOutcome, StorageError> {
        let word = word.unwrap_or_default();
        challenge_outcome(&word).ok_or_else(|| self.corrupt(format!("outcome {word:?}")))
    }

    /// A challenge from the row of `answer_challenge`/`end_challenge`.
    fn taken(
        &self,
        row: &Row,
    ) -> Result<Result<(ChallengeOutcome, Challenge), NotTaken>, StorageError> {
        let refusal: Option<String> = self.field(row, 0)?;
        let outcome: Option<String> = self.field(row, 1)?;
        match refusal.as_deref() {
            Some("unknown") => return Ok(Err(NotTaken::Unknown)),
            Some("ended") => return Ok(Err(NotTaken::Ended(self.outcome_of(outcome)?))),
            Some("same-session") => return Ok(Err(NotTaken::SameSession)),
            Some("not-verified") => return Ok(Err(NotTaken::NotVerified)),
            Some(other) => return Err(self.corrupt(format!("refusal {other:?}"))),
            None => {}
        }
        let outcome = self.outcome_of(outcome)?;
        let context: serde_json::Value = self.field(row, 5)?;
        let context: Context =
            serde_json::from_value(context).map_err(|e| self.corrupt(format!("context: {e}")))?;
        let session: Option<i64> = self.field(row, 8)?;
        let challenge = Challenge {
            id: self.field(row, 2)?,
            user: self.field(row, 3)?,
            number: u32::try_from(self.field::<i32>(row, 4)?).unwrap_or(0),
            context,
            created_at: unsigned(self.field(row, 6)?),
            expires_at: unsigned(self.field(row, 7)?),
            requester_session: session.and_then(|s| u32::try_from(s).ok()),
            creator: self.field(row, 9)?,
            test: self.field(row, 10)?,
            outcome: Some(outcome),
        };
        Ok(Ok((outcome, challenge)))
    }
}

/// Whom the listener tells: the waiters of challenges, and this host's
/// approvers of challenges made elsewhere.
struct Heard {
    watched: Arc<Senders>,
    made: tokio::sync::broadcast::Sender<Announced>,
}

/// Starts a thread that hands the notices of challenges made and ended
/// to `act` until `stop` (with `fresh` after each (re)connect: notices
/// may have been missed while nobody listened).
pub(crate) fn spawn_listener(
    pool: &Arc<Pool>,
    stop: &Arc<AtomicBool>,
    act: impl FnMut(&mut Client, Vec<(String, String)>, bool) -> Result<(), postgres::Error>
        + Send
        + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let (pool, stop) = (Arc::clone(pool), Arc::clone(stop));
    std::thread::Builder::new()
        .name("mfa-listen".into())
        .spawn(move || listen(&pool.settings, &stop, act))
}

/// LISTENs for challenges made and ended, on a connection of its own, for
/// as long as the store lives, reconnecting after a second when it breaks.
fn listen(
    settings: &Settings,
    stop: &AtomicBool,
    mut act: impl FnMut(&mut Client, Vec<(String, String)>, bool) -> Result<(), postgres::Error>,
) {
    let place = settings.place();
    let mut said_down = false;
    while !stop.load(Ordering::Relaxed) {
        let mut client = match settings.connect() {
            Ok(c) => c,
            Err(e) => {
                if !said_down {
                    tracing::warn!(database = %place, error = %describe(&e), "challenge listener cannot connect; retrying");
                    said_down = true;
                }
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if let Err(e) = client.batch_execute(&format!("LISTEN {ENDED}; LISTEN {MADE}")) {
            tracing::warn!(database = %place, error = %describe(&e), "LISTEN failed; retrying");
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        if said_down {
            tracing::info!(database = %place, "challenge listener connected again");
            said_down = false;
        }
        if act(&mut client, Vec::new(), true).is_err() {
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        while !stop.load(Ordering::Relaxed) {
            let notices = match next_notices(&mut client) {
                Ok(notices) => notices,
                Err(e) => {
                    tracing::warn!(database = %place, error = %describe(&e), "challenge listener lost its connection");
                    said_down = true;
                    break;
                }
            };
            if let Err(e) = act(&mut client, notices, false) {
                tracing::warn!(database = %place, error = %describe(&e), "challenge listener failed; reconnecting");
                std::thread::sleep(Duration::from_secs(1));
                break;
            }
        }
    }
}

/// The notices (channel, payload) that came within a second (maybe none).
fn next_notices(client: &mut Client) -> Result<Vec<(String, String)>, postgres::Error> {
    use postgres::fallible_iterator::FallibleIterator;
    let mut notifications = client.notifications();
    let mut notices = Vec::new();
    if let Some(n) = notifications.timeout_iter(Duration::from_secs(1)).next()? {
        notices.push((n.channel().to_string(), n.payload().to_string()));
    }
    let mut ready = notifications.iter();
    while let Some(n) = ready.next()? {
        notices.push((n.channel().to_string(), n.payload().to_string()));
    }
    Ok(notices)
}

/// Acts on notices, each read again from the database (a NOTIFY anyone
/// may send decides nothing): wakes the waiters of each ended challenge,
/// announces each one made on another host. Forgets watches whose waiters
/// are gone or woken.
fn tell(
    client: &mut Client,
    heard: &Heard,
    notices: Vec<(String, String)>,
) -> Result<(), postgres::Error> {
    for (channel, id) in notices {
        if channel == MADE {
            if heard.made.receiver_count() == 0 {
                continue;
            }
            let Some(row) = client.query_opt("SELECT * FROM mfa.announced($1)", &[&id])? else {
                continue;
            };
            let here: bool = row.try_get(3)?;
            let context: serde_json::Value = row.try_get(1)?;
            if let (false, Ok(context)) = (here, serde_json::from_value(context)) {
                let seconds: i64 = row.try_get(2)?;
                let user = row.try_get(0)?;
                let _ =
                    heard.made.send(Announced { id, user, context, expires_in: unsigned(seconds) });
            }
            continue;
        }
        if !lock(&heard.watched).contains_key(&id) {
            continue;
        }
        let word: Option<String> =
            client.query_one("SELECT mfa.challenge_outcome($1)", &[&id])?.try_get(0)?;
        if let Some(outcome) = word.as_deref().and_then(challenge_outcome) {
            if let Some(sender) = lock(&heard.watched).remove(&id) {
                let _ = sender.send(Some(outcome));
            }
        }
    }
    lock(&heard.watched).retain(|_, s| s.receiver_count() > 0);
    Ok(())
}

impl Storage for PgStore {
    fn summary(&self, user: &Username, _now: u64) -> Result<Option<Summary>, StorageError> {
        let row =
            self.pool.run(|c| c.query_opt("SELECT * FROM mfa.summary($1)", &[&user.as_str()]))?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Summary {
            enrolled_at: unsigned(self.field(&row, 0)?),
            recovery_left: u32::try_from(self.field::<i32>(&row, 1)?).unwrap_or(0),
            locked_for: unsigned(self.field(&row, 2)?),
            push_blocked_since: unsigned(self.field(&row, 3)?),
        }))
    }

    fn users(&self) -> Result<Vec<(Username, u64)>, StorageError> {
        let rows = self.pool.run(|c| c.query("SELECT * FROM mfa.users()", &[]))?;
        let mut users = Vec::new();
        for row in rows {
            let name: String = self.field(&row, 0)?;
            match Username::parse(&name) {
                Ok(user) => users.push((user, unsigned(self.field(&row, 1)?))),
                Err(e) => {
                    tracing::warn!(user = ?name, error = %e, "an enrolled name that is not a user name")
                }
            }
        }
        Ok(users)
    }

    fn verify(
        &self,
        user: &Username,
        attempt: &Attempt,
        rules: &Rules,
        _now: u64,
    ) -> Result<Option<Verdict>, StorageError> {
        let recovery = recovery::normalize(&attempt.code);
        let recovery: Option<&str> = recovery.as_deref().map(String::as_str);
        let address =
            (rules.scope == LimitScope::UserAddress).then(|| limits::address_key(&attempt.rhost));
        let device = attempt.device.as_ref();
        let (skew, remember) = (big(rules.skew), big(rules.remember_seconds));
        let max_failures = big(rules.limits.max_failures.get());
        let lockout = big(rules.limits.lockout_seconds.get());
        let lockout_max = big(rules.limits.lockout_max_seconds.get());
        let row = self.pool.run(|c| {
            c.query_opt(
                "SELECT * FROM mfa.verify($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                &[
                    &user.as_str(),
                    &attempt.code.as_str(),
                    &recovery,
                    &address,
                    &device.map(Device::key),
                    &device.map(Device::rhost),
                    &device.map(Device::service),
                    &skew,
                    &max_failures,
                    &lockout,
                    &lockout_max,
                    &remember,
                    &attempt.service,
                    &attempt.rhost,
                ],
            )
        })?;
        let Some(row) = row else { return Ok(None) };
        let word: String = self.field(&row, 0)?;
        let outcome =
            verify_outcome(&word).ok_or_else(|| self.corrupt(format!("verdict {word:?}")))?;
        Ok(Some(Verdict {
            outcome,
            retry_after: unsigned(self.field(&row, 1)?),
            unblocked: self.field(&row, 2)?,
        }))
    }

    fn is_remembered(
        &self,
        user: &Username,
        device: &Device,
        _now: u64,
    ) -> Result<bool, StorageError> {
        self.pool.run(|c| {
            let row = c.query_one(
                "SELECT mfa.is_remembered($1, $2, $3, $4)",
                &[&user.as_str(), &device.key(), &device.rhost(), &device.service()],
            )?;
            row.try_get(0)
        })
    }

    fn forget_devices(&self, user: &Username, _now: u64) -> Result<Option<u32>, StorageError> {
        let count: Option<i32> =
            self.pool.run(|c| c.value("SELECT mfa.forget_devices($1)", &[&user.as_str()]))?;
        Ok(count.map(|n| u32::try_from(n).unwrap_or(0)))
    }

    fn set_push_blocked(
        &self,
        user: &Username,
        since: Option<u64>,
    ) -> Result<Option<bool>, StorageError> {
        let block = since.is_some();
        self.pool.run(|c| c.value("SELECT mfa.set_push_blocked($1, $2)", &[&user.as_str(), &block]))
    }

    fn begin_enrollment(
        &self,
        user: &Username,
        pending: Pending,
        now: u64,
    ) -> Result<Zeroizing<Vec<u8>>, StorageError> {
        let p = pending.params;
        let (digits, period) = (i32::from(p.digits), big(p.period));
        let bytes = i32::try_from(pending.secret.len()).unwrap_or(20);
        let ttl = big(pending.expires_at.saturating_sub(now));
        let tries = int(pending.tries_left);
        let secret: Vec<u8> = self.pool.run(|c| {
            c.value(
                "SELECT mfa.begin_enrollment($1, $2, $3, $4, $5, $6, $7)",
                &[&user.as_str(), &p.algorithm.as_str(), &digits, &period, &bytes, &ttl, &tries],
            )
        })?;
        Ok(Zeroizing::new(secret))
    }

    fn has_pending(&self, user: &Username, _now: u64) -> Result<bool, StorageError> {
        self.pool.run(|c| c.value("SELECT mfa.has_pending($1)", &[&user.as_str()]))
    }

    fn confirm_enrollment(
        &self,
        user: &Username,
        code: &str,
        skew: u64,
        recovery: RecoveryHashes,
        _now: u64,
    ) -> Result<Confirmation, StorageError> {
        let skew = big(skew);
        let row = self.pool.run(|c| {
            c.query_one(
                "SELECT * FROM mfa.confirm_enrollment($1, $2, $3, $4, $5)",
                &[&user.as_str(), &code, &skew, &recovery.salt, &recovery.hashes],
            )
        })?;
        let word: String = self.field(&row, 0)?;
        let tries: i32 = self.field(&row, 1)?;
        Ok(match word.as_str() {
            "confirmed" => Confirmation::Confirmed,
            "no-pending" => Confirmation::NoPending,
            "expired" => Confirmation::Expired,
            "wrong-code" => {
                Confirmation::WrongCode { tries_left: u32::try_from(tries).unwrap_or(0) }
            }
            "too-many-tries" => Confirmation::TooManyTries,
            other => return Err(self.corrupt(format!("confirmation {other:?}"))),
        })
    }

    fn install(&self, user: &Username, account: Account) -> Result<(), StorageError> {
        let unusable = |message| StorageError::Unusable { user: user.to_string(), message };
        let params = account.params().map_err(unusable)?;
        let secret = account.secret_bytes().map_err(unusable)?;
        let addresses: Vec<serde_json::Value> = account
            .limits_by_address
            .iter()
            .map(|(address, s)| {
                serde_json::json!([address, s.failures, s.lockouts, big(s.locked_until)])
            })
            .collect();
        let devices: Vec<serde_json::Value> = account
            .remembered
            .iter()
            .map(|d| serde_json::json!([d.key, d.rhost, d.service, big(d.until)]))
            .collect();
        let (addresses, devices) =
            (serde_json::Value::Array(addresses), serde_json::Value::Array(devices));
        let a = &account;
        let (digits, period) = (i32::from(params.digits), big(params.period));
        let (enrolled, last) = (big(a.enrolled_at), a.last_step.map(big));
        let (failures, lockouts) = (int(a.limits.failures), int(a.limits.lockouts));
        let until = big(a.limits.locked_until);
        let (skew, max_failures, lockout) =
            (a.skew.map(big), a.max_failures.map(big), a.lockout_seconds.map(big));
        let blocked = big(a.push_blocked_since);
        self.pool.run(|c| {
            c.query(
                "SELECT mfa.install($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
                &[
                    &user.as_str(),
                    &secret.as_slice(),
                    &params.algorithm.as_str(),
                    &digits,
                    &period,
                    &enrolled,
                    &last,
                    &failures,
                    &lockouts,
                    &until,
                    &skew,
                    &max_failures,
                    &lockout,
                    &a.recovery.salt,
                    &a.recovery.hashes,
                    &blocked,
                    &addresses,
                    &devices,
                ],
            )
            .map(|_| ())
        })?;
        // Its phones, each with its counter (mfa.install predates them).
        for phone in &a.phones {
            if !self.add_phone(user, phone.clone())? {
                return Err(self.corrupt(format!("{user} was installed and is gone")));
            }
            if phone.sign_count > 0 {
                self.phone_used(user, &phone.credential_id, phone.sign_count, 0)?;
            }
        }
        Ok(())
    }

    fn replace_recovery(
        &self,
        user: &Username,
        recovery: RecoveryHashes,
    ) -> Result<bool, StorageError> {
        self.pool.run(|c| {
            c.value(
                "SELECT mfa.replace_recovery($1, $2, $3)",
                &[&user.as_str(), &recovery.salt, &recovery.hashes],
            )
        })
    }

    fn remove(&self, user: &Username) -> Result<bool, StorageError> {
        self.pool.run(|c| c.value("SELECT mfa.remove($1)", &[&user.as_str()]))
    }

    fn create_challenge(
        &self,
        challenge: Challenge,
        budget: Budget,
        _now: u64,
    ) -> Result<Result<(), Refused>, StorageError> {
        let c = &challenge;
        let context =
            serde_json::to_value(&c.context).map_err(|e| self.corrupt(format!("context: {e}")))?;
        let number = int(c.number);
        let ttl = big(c.expires_at.saturating_sub(c.created_at));
        let session = c.requester_session.map(i64::from);
        let (burst, every) = (big(budget.burst), big(budget.every));
        let row = self.pool.run(|conn| {
            conn.query_one(
                "SELECT * FROM mfa.create_challenge($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &c.id, &c.user, &number, &context, &ttl, &session, &c.creator, &c.test, &burst,
                    &every,
                ],
            )
        })?;
        let refusal: Option<String> = self.field(&row, 0)?;
        let detail: Option<String> = self.field(&row, 1)?;
        let detail = detail.unwrap_or_default();
        Ok(match refusal.as_deref() {
            None => Ok(()),
            Some("too-many") => Err(Refused::TooMany(detail.parse().unwrap_or(1))),
            Some("pending") => Err(Refused::Pending(detail)),
            Some(other) => return Err(self.corrupt(format!("refusal {other:?}"))),
        })
    }

    fn watch_challenge(
        &self,
        id: &str,
        creator: &str,
    ) -> Result<Result<(Waiter, u64), NotTaken>, StorageError> {
        // Watched before it is read: an end between the two still wakes.
        let waiter = {
            let mut watched = lock(&self.watched);
            watched.entry(id.to_string()).or_insert_with(|| watch::channel(None).0).subscribe()
        };
        let row = self
            .pool
            .run(|c| c.query_opt("SELECT * FROM mfa.watch_challenge($1, $2)", &[&id, &creator]))?;
        let Some(row) = row else {
            // Not this caller's: its own watch goes (with `waiter`), no other.
            let mut watched = lock(&self.watched);
            if watched.get(id).is_some_and(|s| s.receiver_count() <= 1) {
                watched.remove(id);
            }
            return Ok(Err(NotTaken::Unknown));
        };
        let expires_at = unsigned(self.field(&row, 0)?);
        let ended: Option<String> = self.field(&row, 1)?;
        if let Some(outcome) = ended.as_deref().and_then(challenge_outcome) {
            if let Some(sender) = lock(&self.watched).remove(id) {
                let _ = sender.send(Some(outcome));
            }
        }
        Ok(Ok((waiter, expires_at)))
    }

    fn settle_challenge(&self, id: &str, _now: u64) -> Result<ChallengeOutcome, StorageError> {
        let word: String = self.pool.run(|c| c.value("SELECT mfa.settle_challenge($1)", &[&id]))?;
        self.outcome_of(Some(word))
    }

    fn answer_challenge(
        &self,
        id: &str,
        user: &str,
        number: u32,
        approver: Approver,
        rule: SessionRule,
        _now: u64,
    ) -> Result<Result<(ChallengeOutcome, Challenge), NotTaken>, StorageError> {
        let rule = match rule {
            SessionRule::Mfa => "mfa",
            SessionRule::Different => "different",
            SessionRule::Any => "any",
        };
        let number = int(number);
        let session = approver.session.map(i64::from);
        let row = self.pool.run(|c| {
            c.query_one(
                "SELECT * FROM mfa.answer_challenge($1, $2, $3, $4, $5, $6)",
                &[&id, &user, &number, &session, &approver.verified, &rule],
            )
        })?;
        self.taken(&row)
    }

    fn end_challenge(
        &self,
        id: &str,
        outcome: ChallengeOutcome,
        by: Ender<'_>,
        _now: u64,
    ) -> Result<Result<(ChallengeOutcome, Challenge), NotTaken>, StorageError> {
        let (kind, who) = match by {
            Ender::Creator(c) => ("creator", c),
            Ender::User(u) => ("user", u),
            Ender::Reporter(u) => ("reporter", u),
        };
        let row = self.pool.run(|c| {
            c.query_one(
                "SELECT * FROM mfa.end_challenge($1, $2, $3, $4)",
                &[&id, &outcome.as_str(), &kind, &who],
            )
        })?;
        self.taken(&row)
    }

    fn pending_challenges(
        &self,
        user: Option<&str>,
        _now: u64,
    ) -> Result<Vec<Listed>, StorageError> {
        let rows =
            self.pool.run(|c| c.query("SELECT * FROM mfa.pending_challenges($1)", &[&user]))?;
        let mut listed = Vec::new();
        for row in rows {
            let context: serde_json::Value = self.field(&row, 1)?;
            let context: Context = serde_json::from_value(context)
                .map_err(|e| self.corrupt(format!("context: {e}")))?;
            listed.push((self.field(&row, 0)?, context, unsigned(self.field(&row, 2)?)));
        }
        Ok(listed)
    }

    fn made_elsewhere(&self) -> Option<tokio::sync::broadcast::Receiver<Announced>> {
        Some(self.made.subscribe())
    }

    fn shared_links(&self) -> Option<&dyn SharedLinks> {
        Some(self)
    }

    fn cancel_challenges_of(&self, creator: &str, _now: u64) -> Result<Vec<String>, StorageError> {
        let rows = self
            .pool
            .run(|c| c.query("SELECT * FROM mfa.cancel_challenges_of($1)", &[&creator]))?;
        rows.iter().map(|row| self.field(row, 0)).collect()
    }

    fn phones(&self, user: &Username) -> Result<Vec<Phone>, StorageError> {
        phones(&self.pool, user.as_str())
    }

    fn add_phone(&self, user: &Username, phone: Phone) -> Result<bool, StorageError> {
        let at = big(phone.added_at);
        self.pool.run(|c| {
            c.value(
                "SELECT mfa.add_phone($1, $2, $3, $4, $5)",
                &[&user.as_str(), &phone.credential_id, &phone.public_key, &phone.name, &at],
            )
        })
    }

    fn remove_phone(&self, user: &Username, credential_id: &[u8]) -> Result<bool, StorageError> {
        self.pool
            .run(|c| c.value("SELECT mfa.remove_phone($1, $2)", &[&user.as_str(), &credential_id]))
    }

    fn phone_used(
        &self,
        user: &Username,
        credential_id: &[u8],
        counter: u32,
        _now: u64,
    ) -> Result<bool, StorageError> {
        let counter = i64::from(counter);
        self.pool.run(|c| {
            c.value(
                "SELECT mfa.phone_used($1, $2, $3)",
                &[&user.as_str(), &credential_id, &counter],
            )
        })
    }

    fn phone_owner(&self, credential_id: &[u8]) -> Result<Option<Username>, StorageError> {
        let owner: Option<String> =
            self.pool.run(|c| c.value("SELECT mfa.phone_owner($1)", &[&credential_id]))?;
        owner
            .map(|name| Username::parse(&name).map_err(|e| self.corrupt(format!("owner: {e}"))))
            .transpose()
    }
}

/// The phones of `who` (`mfa.phones`, which hosts and the web approver may call).
pub(crate) fn phones(pool: &Pool, who: &str) -> Result<Vec<Phone>, StorageError> {
    let rows = pool.run(|c| c.query("SELECT * FROM mfa.phones($1)", &[&who]))?;
    rows.iter()
        .map(phone_of_row)
        .collect::<Result<_, postgres::Error>>()
        .map_err(|e| pool.corrupt(format!("phones: {e}")))
}

/// A phone from a row of (credential_id, public_key, name, added_at,
/// sign_count, last_used), as `mfa.phones` and the table `mfa.phone` give it.
pub fn phone_of_row(row: &Row) -> Result<Phone, postgres::Error> {
    Ok(Phone {
        credential_id: row.try_get(0)?,
        public_key: row.try_get(1)?,
        name: row.try_get(2)?,
        added_at: unsigned(row.try_get(3)?),
        sign_count: u32::try_from(row.try_get::<_, i64>(4)?).unwrap_or(u32::MAX),
        last_used: unsigned(row.try_get(5)?),
    })
}

impl SharedLinks for PgStore {
    fn open_link(
        &self,
        token_hash: &[u8; 32],
        user: &Username,
        creator: &str,
        seconds: u64,
    ) -> Result<bool, StorageError> {
        let (hash, seconds) = (token_hash.as_slice(), big(seconds));
        self.pool.run(|c| {
            c.value(
                "SELECT mfa.open_link($1, $2, $3, $4)",
                &[&hash, &user.as_str(), &creator, &seconds],
            )
        })
    }

    fn link_state(
        &self,
        token_hash: &[u8; 32],
        creator: &str,
    ) -> Result<Option<Option<LinkUsed>>, StorageError> {
        let hash = token_hash.as_slice();
        let row = self
            .pool
            .run(|c| c.query_opt("SELECT * FROM mfa.link_state($1, $2)", &[&hash, &creator]))?;
        let Some(row) = row else { return Ok(None) };
        let id: Option<String> = self.field(&row, 0)?;
        let Some(id) = id else { return Ok(Some(None)) };
        let number: Option<i32> = self.field(&row, 1)?;
        let seconds: Option<i64> = self.field(&row, 2)?;
        let name: Option<String> = self.field(&row, 3)?;
        let number = number.and_then(|n| u32::try_from(n).ok());
        let (Some(number), Some(seconds)) = (number, seconds) else {
            return Err(self.corrupt(format!("the test request {id} of a link is gone")));
        };
        Ok(Some(Some((id, number, unsigned(seconds), name.unwrap_or_default()))))
    }

    fn is_phone_test(&self, challenge: &str) -> Result<bool, StorageError> {
        self.pool.run(|c| c.value("SELECT mfa.is_phone_test($1)", &[&challenge]))
    }

    fn phone_evidence(&self, challenge: &str) -> Result<Option<Option<Evidence>>, StorageError> {
        let row = self
            .pool
            .run(|c| c.query_opt("SELECT * FROM mfa.phone_evidence($1)", &[&challenge]))?;
        let Some(row) = row else { return Ok(None) };
        let key: Option<Vec<u8>> = self.field(&row, 1)?;
        let Some(public_key) = key else { return Ok(Some(None)) };
        let credential_id: Vec<u8> = self.field(&row, 0)?;
        let context: serde_json::Value = self.field(&row, 6)?;
        let context: Context =
            serde_json::from_value(context).map_err(|e| self.corrupt(format!("context: {e}")))?;
        let phone = Phone {
            credential_id: credential_id.clone(),
            public_key,
            name: String::new(),
            added_at: 0,
            sign_count: 0,
            last_used: 0,
        };
        let assertion = Assertion {
            credential_id,
            authenticator_data: self.field(&row, 2)?,
            client_data_json: self.field(&row, 3)?,
            signature: self.field(&row, 4)?,
        };
        let number = u32::try_from(self.field::<i32>(&row, 5)?).unwrap_or(0);
        Ok(Some(Some(Evidence { phone, assertion, number, context })))
    }
}
