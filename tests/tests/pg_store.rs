//! The fleet store on a real PostgreSQL 15: it passes the core's
//! conformance suite (every case in a database of its own, connected as a
//! host's role), and a host's role can call the store's functions but
//! read, change or call nothing else (SQLSTATE 42501). The schema is
//! applied by our own code, and applying it again does nothing.
//!
//! The suite gives each operation a time; the store takes time from the
//! database (`mfa.now()`). Here, and only here, `mfa.now()` reads a table
//! the test sets before each operation: everything else is as shipped.
//! Root: the server runs as the postgres user.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use pam_mfa_core::passkey::Phone;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use pam_mfa_core::account::{
    Account, Attempt, Confirmation, Device, Pending, RecoveryHashes, Rules, Verdict,
};
use pam_mfa_core::challenge::{Approver, Challenge, NotTaken, SessionRule};
use pam_mfa_core::challenges::{Budget, Ender, Listed, Refused, Waiter};
use pam_mfa_core::conformance::Subject;
use pam_mfa_core::storage::{Storage, StorageError, Summary};
use pam_mfa_protocol::username::Username;
use pam_mfa_protocol::wire::ChallengeOutcome;
use pam_mfa_storage::postgres::{PgStore, Settings};
use pam_mfa_tests::postgres::Postgres;
use pam_mfa_tests::system::require_root;
use zeroize::Zeroizing;

/// The role the suite's store connects as: a host.
const HOST: &str = "conformance_host";

/// One server for the cases running at the same time.
struct Server {
    pg: Postgres,
    next: AtomicUsize,
}

static SERVER: Mutex<Weak<Server>> = Mutex::new(Weak::new());

fn server() -> Arc<Server> {
    let mut shared = SERVER.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = shared.upgrade() {
        return s;
    }
    let pg = Postgres::start();
    pg.psql("postgres", "CREATE DATABASE mfa_template");
    let applied = pam_mfa_storage::schema::apply(&mut pg.client("mfa_template")).unwrap();
    assert_eq!(applied, (1..=pam_mfa_storage::schema::latest()).collect::<Vec<_>>());
    pg.psql(
        "mfa_template",
        &format!(
            "CREATE TABLE mfa.test_clock (t bigint NOT NULL);
             INSERT INTO mfa.test_clock VALUES (0);
             ALTER TABLE mfa.test_clock OWNER TO mfa_owner;
             CREATE OR REPLACE FUNCTION mfa.now() RETURNS bigint
                 LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
                 AS $$ SELECT t FROM mfa.test_clock $$;
             CREATE ROLE {HOST} LOGIN IN ROLE mfa_host;"
        ),
    );
    let server = Arc::new(Server { pg, next: AtomicUsize::new(0) });
    *shared = Arc::downgrade(&server);
    server
}

/// A database of its own, from the template.
fn database(server: &Server) -> String {
    let name = format!("case_{}", server.next.fetch_add(1, Ordering::Relaxed));
    server.pg.psql("postgres", &format!("CREATE DATABASE {name} TEMPLATE mfa_template"));
    name
}

fn settings(server: &Server, role: &str, database: &str) -> Settings {
    let conninfo = server.pg.conninfo(role, database);
    let mut settings =
        Settings::new(&conninfo, Duration::from_secs(3), Duration::from_secs(10)).unwrap();
    settings.pool_size = 8;
    settings
}

/// The store, with the database's clock set to each operation's time.
struct Clocked {
    store: PgStore,
    clock: Mutex<postgres::Client>,
}

impl Clocked {
    fn at(&self, now: u64) {
        let now = i64::try_from(now).unwrap();
        let mut clock = self.clock.lock().unwrap_or_else(|p| p.into_inner());
        clock.execute("UPDATE mfa.test_clock SET t = $1", &[&now]).unwrap();
    }
}

impl Storage for Clocked {
    fn summary(&self, user: &Username, now: u64) -> Result<Option<Summary>, StorageError> {
        self.at(now);
        self.store.summary(user, now)
    }
    fn users(&self) -> Result<Vec<(Username, u64)>, StorageError> {
        self.store.users()
    }
    fn verify(
        &self,
        user: &Username,
        attempt: &Attempt,
        rules: &Rules,
        now: u64,
    ) -> Result<Option<Verdict>, StorageError> {
        self.at(now);
        self.store.verify(user, attempt, rules, now)
    }
    fn is_remembered(
        &self,
        user: &Username,
        device: &Device,
        now: u64,
    ) -> Result<bool, StorageError> {
        self.at(now);
        self.store.is_remembered(user, device, now)
    }
    fn forget_devices(&self, user: &Username, now: u64) -> Result<Option<u32>, StorageError> {
        self.at(now);
        self.store.forget_devices(user, now)
    }
    fn set_push_blocked(
        &self,
        user: &Username,
        since: Option<u64>,
    ) -> Result<Option<bool>, StorageError> {
        if let Some(since) = since {
            self.at(since);
        }
        self.store.set_push_blocked(user, since)
    }
    fn begin_enrollment(
        &self,
        user: &Username,
        pending: Pending,
        now: u64,
    ) -> Result<Zeroizing<Vec<u8>>, StorageError> {
        self.at(now);
        self.store.begin_enrollment(user, pending, now)
    }
    fn has_pending(&self, user: &Username, now: u64) -> Result<bool, StorageError> {
        self.at(now);
        self.store.has_pending(user, now)
    }
    fn confirm_enrollment(
        &self,
        user: &Username,
        code: &str,
        skew: u64,
        recovery: RecoveryHashes,
        now: u64,
    ) -> Result<Confirmation, StorageError> {
        self.at(now);
        self.store.confirm_enrollment(user, code, skew, recovery, now)
    }
    fn install(&self, user: &Username, account: Account) -> Result<(), StorageError> {
        self.store.install(user, account)
    }
    fn replace_recovery(
        &self,
        user: &Username,
        recovery: RecoveryHashes,
    ) -> Result<bool, StorageError> {
        self.store.replace_recovery(user, recovery)
    }
    fn remove(&self, user: &Username) -> Result<bool, StorageError> {
        self.store.remove(user)
    }
    fn create_challenge(
        &self,
        challenge: Challenge,
        budget: Budget,
        now: u64,
    ) -> Result<Result<(), Refused>, StorageError> {
        self.at(now);
        self.store.create_challenge(challenge, budget, now)
    }
    fn watch_challenge(
        &self,
        id: &str,
        creator: &str,
    ) -> Result<Result<(Waiter, u64), NotTaken>, StorageError> {
        self.store.watch_challenge(id, creator)
    }
    fn settle_challenge(&self, id: &str, now: u64) -> Result<ChallengeOutcome, StorageError> {
        self.at(now);
        self.store.settle_challenge(id, now)
    }
    fn answer_challenge(
        &self,
        id: &str,
        user: &str,
        number: u32,
        approver: Approver,
        rule: SessionRule,
        now: u64,
    ) -> Result<Result<(ChallengeOutcome, Challenge), NotTaken>, StorageError> {
        self.at(now);
        self.store.answer_challenge(id, user, number, approver, rule, now)
    }
    fn end_challenge(
        &self,
        id: &str,
        outcome: ChallengeOutcome,
        by: Ender<'_>,
        now: u64,
    ) -> Result<Result<(ChallengeOutcome, Challenge), NotTaken>, StorageError> {
        self.at(now);
        self.store.end_challenge(id, outcome, by, now)
    }
    fn pending_challenges(
        &self,
        user: Option<&str>,
        now: u64,
    ) -> Result<Vec<Listed>, StorageError> {
        self.at(now);
        self.store.pending_challenges(user, now)
    }
    fn cancel_challenges_of(&self, creator: &str, now: u64) -> Result<Vec<String>, StorageError> {
        self.at(now);
        self.store.cancel_challenges_of(creator, now)
    }
    fn phones(&self, user: &Username) -> Result<Vec<Phone>, StorageError> {
        self.store.phones(user)
    }
    fn add_phone(&self, user: &Username, phone: Phone) -> Result<bool, StorageError> {
        self.store.add_phone(user, phone)
    }
    fn remove_phone(&self, user: &Username, credential_id: &[u8]) -> Result<bool, StorageError> {
        self.store.remove_phone(user, credential_id)
    }
    fn phone_used(
        &self,
        user: &Username,
        credential_id: &[u8],
        counter: u32,
        now: u64,
    ) -> Result<bool, StorageError> {
        self.at(now);
        self.store.phone_used(user, credential_id, counter, now)
    }
    fn phone_owner(&self, credential_id: &[u8]) -> Result<Option<Username>, StorageError> {
        self.store.phone_owner(credential_id)
    }
}

/// The store on `db` as `HOST`, with its clock in the test's hands.
fn clocked(server: &Server, db: &str) -> Clocked {
    let store = PgStore::open(settings(server, HOST, db));
    let clock = Mutex::new(server.pg.client(db));
    Clocked { store, clock }
}

/// Makes challenge `id` of alice (number 42) at 1,700,000,000, for a minute.
fn made(subject: &Clocked, id: &str) {
    let challenge = Challenge {
        id: id.into(),
        user: "alice".into(),
        number: 42,
        context: Default::default(),
        created_at: 1_700_000_000,
        expires_at: 1_700_000_060,
        requester_session: Some(5),
        creator: ":1.7".into(),
        test: false,
        outcome: None,
    };
    let budget = Budget { burst: 3, every: 20 };
    assert_eq!(subject.create_challenge(challenge, budget, 1_700_000_000).unwrap(), Ok(()));
}

fn subject() -> Subject {
    require_root();
    let server = server();
    let db = database(&server);
    Subject::new(clocked(&server, &db), server)
}

pam_mfa_core::storage_conformance!(subject);

/// SQLSTATE of what `sql` fails with, run as `role` (None: it worked).
fn refusal(client: &mut postgres::Client, sql: &str) -> Option<String> {
    client.batch_execute(sql).err().map(|e| {
        e.as_db_error().map(|d| d.code().code().to_string()).unwrap_or_else(|| e.to_string())
    })
}

#[test]
fn a_host_calls_the_store_and_touches_nothing_else() {
    require_root();
    let server = server();
    let db = database(&server);
    let mut admin = server.pg.client(&db);
    let tables: Vec<String> = admin
        .query("SELECT tablename FROM pg_tables WHERE schemaname = 'mfa' ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for wanted in
        ["account", "audit", "challenge", "pending", "phone", "remembered", "schema_version"]
    {
        assert!(tables.iter().any(|t| t == wanted), "{wanted} in {tables:?}");
    }
    let mut host =
        postgres::Client::connect(&server.pg.conninfo(HOST, &db), postgres::NoTls).unwrap();
    // A user to find, so "no row" is not mistaken for "not allowed".
    let store = PgStore::open(settings(&server, HOST, &db));
    let alice = Username::parse("alice").unwrap();
    let pending = Pending {
        secret: Zeroizing::new(vec![0; 20]),
        params: pam_mfa_core::totp::Params {
            algorithm: pam_mfa_config::schema::Algorithm::Sha1,
            digits: 6,
            period: 30,
        },
        expires_at: u64::MAX / 2,
        tries_left: 3,
    };
    store.begin_enrollment(&alice, pending, 0).unwrap();
    assert!(store.has_pending(&alice, 0).unwrap(), "the host's own calls work");

    // (test_clock is this test's own, above.)
    for table in tables.iter().filter(|t| *t != "test_clock") {
        for sql in [
            format!("SELECT * FROM mfa.{table}"),
            format!("DELETE FROM mfa.{table}"),
            format!(
                "UPDATE mfa.{table} SET {} = NULL",
                if table == "schema_version" { "name" } else { "username" }
            ),
            format!("COPY mfa.{table} TO STDOUT"),
        ] {
            assert_eq!(refusal(&mut host, &sql).as_deref(), Some("42501"), "{sql}");
        }
    }
    for sql in [
        "INSERT INTO mfa.audit (username, service, rhost, result) VALUES ('x', 'y', 'z', 'accepted')",
        "SELECT mfa.totp_code('\\x00'::bytea, 'SHA1', 6, 30, 0)",
        "SELECT mfa.hmac('\\x00'::bytea, '\\x00'::bytea, 'sha1')",
        "SELECT mfa.gen_random_bytes(20)",
        "SELECT mfa.matching_step('\\x00'::bytea, 'SHA1', 6, 30, '000000', 0, 1)",
        "CREATE TABLE mfa.mine (x int)",
        "CREATE FUNCTION mfa.mine() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    ] {
        assert_eq!(refusal(&mut host, sql).as_deref(), Some("42501"), "{sql}");
    }
    // The pending secret is nowhere a host can see it, and it is there.
    let secrets: i64 = admin
        .query_one("SELECT count(*) FROM mfa.pending WHERE username = 'alice'", &[])
        .unwrap()
        .get(0);
    assert_eq!(secrets, 1);
}

#[test]
fn the_audit_names_the_host_by_its_role_and_hosts_cannot_read_it() {
    require_root();
    let server = server();
    let db = database(&server);
    let store = PgStore::open(settings(&server, HOST, &db));
    let bob = Username::parse("bob").unwrap();
    let attempt = Attempt {
        code: Zeroizing::new("123456".into()),
        rhost: "192.0.2.7".into(),
        service: "sshd".into(),
        device: None,
    };
    let rules = Rules {
        skew: 1,
        limits: Default::default(),
        scope: Default::default(),
        remember_seconds: 0,
    };
    assert_eq!(store.verify(&bob, &attempt, &rules, 0).unwrap(), None, "bob is not enrolled");
    let mut admin = server.pg.client(&db);
    let rows =
        admin.query("SELECT host, username, service, rhost, result FROM mfa.audit", &[]).unwrap();
    let rows: Vec<(String, String, String, String, String)> =
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect();
    assert_eq!(
        rows,
        vec![(HOST.into(), "bob".into(), "sshd".into(), "192.0.2.7".into(), "not-enrolled".into())]
    );
}

#[test]
fn the_schema_is_applied_once_and_again_does_nothing() {
    require_root();
    let server = server();
    let db = database(&server);
    let mut admin = server.pg.client(&db);
    let all: Vec<i32> = (1..=pam_mfa_storage::schema::latest()).collect();
    assert_eq!(pam_mfa_storage::schema::applied(&mut admin).unwrap(), all);
    assert_eq!(pam_mfa_storage::schema::apply(&mut admin).unwrap(), Vec::<i32>::new());
    // A fresh database gets every version, and both runs agree.
    server.pg.psql("postgres", &format!("CREATE DATABASE {db}_fresh"));
    let mut fresh = server.pg.client(&format!("{db}_fresh"));
    assert_eq!(pam_mfa_storage::schema::applied(&mut fresh).unwrap(), Vec::<i32>::new());
    assert_eq!(pam_mfa_storage::schema::apply(&mut fresh).unwrap(), all);
    assert_eq!(pam_mfa_storage::schema::apply(&mut fresh).unwrap(), Vec::<i32>::new());
    // A database whose pgcrypto is elsewhere is refused, saying what to do.
    server.pg.psql("postgres", &format!("CREATE DATABASE {db}_crypto"));
    server.pg.psql(&format!("{db}_crypto"), "CREATE EXTENSION pgcrypto");
    let mut crypto = server.pg.client(&format!("{db}_crypto"));
    let e = pam_mfa_storage::schema::apply(&mut crypto).unwrap_err().to_string();
    assert!(
        e.contains("pgcrypto is installed in schema \"public\"") && e.contains("createdb mfa"),
        "{e}"
    );
    assert_eq!(
        pam_mfa_storage::schema::applied(&mut crypto).unwrap(),
        Vec::<i32>::new(),
        "nothing applied"
    );
}

#[test]
fn a_notify_sent_by_anyone_wakes_no_waiter_with_an_outcome() {
    require_root();
    let server = server();
    let db = database(&server);
    let subject = clocked(&server, &db);
    subject.at(1_700_000_000);
    made(&subject, "c-spoofed");
    let (waiter, _) = subject.watch_challenge("c-spoofed", ":1.7").unwrap().unwrap();
    // Any role may NOTIFY any channel: a host (or anyone who can log in)
    // says the challenge ended. The listener reads the table: still pending.
    let mut other =
        postgres::Client::connect(&server.pg.conninfo(HOST, &db), postgres::NoTls).unwrap();
    other.batch_execute("NOTIFY mfa_challenge, 'c-spoofed'").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(*waiter.borrow(), None, "a spoofed notice decided nothing");
    // The real end does wake it.
    let ended = subject.end_challenge(
        "c-spoofed",
        ChallengeOutcome::Denied,
        Ender::User("alice"),
        1_700_000_001,
    );
    assert!(ended.unwrap().is_ok());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while waiter.borrow().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(*waiter.borrow(), Some(ChallengeOutcome::Denied));
}

#[test]
fn a_hosts_clock_ends_no_lockout_early_the_databases_does() {
    require_root();
    let server = server();
    let db = database(&server);
    let subject = clocked(&server, &db);
    let t = 1_700_000_000u64;
    subject.at(t);
    let alice = Username::parse("alice").unwrap();
    let mut account = Account {
        secret: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into(),
        algorithm: "SHA1".into(),
        digits: 6,
        period: 30,
        enrolled_at: t - 100,
        last_step: None,
        limits: Default::default(),
        skew: None,
        max_failures: None,
        lockout_seconds: None,
        recovery: RecoveryHashes::default(),
        remembered: Vec::new(),
        push_blocked_since: 0,
        limits_by_address: Default::default(),
        phones: Vec::new(),
    };
    account.limits.locked_until = t + 600;
    subject.install(&alice, account).unwrap();
    let attempt = Attempt {
        code: Zeroizing::new("123456".into()),
        rhost: String::new(),
        service: "sshd".into(),
        device: None,
    };
    let rules = Rules {
        skew: 1,
        limits: Default::default(),
        scope: Default::default(),
        remember_seconds: 0,
    };
    // The host says it is an hour later: the database's clock decides.
    let verdict = subject.store.verify(&alice, &attempt, &rules, t + 3600).unwrap().unwrap();
    assert_eq!(verdict.outcome, pam_mfa_protocol::wire::VerifyOutcome::LockedOut);
    assert_eq!(verdict.retry_after, 600);
}

#[test]
fn a_host_can_neither_approve_by_ending_nor_learn_the_number_from_a_refusal() {
    require_root();
    let server = server();
    let db = database(&server);
    let subject = clocked(&server, &db);
    subject.at(1_700_000_000);
    made(&subject, "c-held");
    let mut host =
        postgres::Client::connect(&server.pg.conninfo(HOST, &db), postgres::NoTls).unwrap();
    // Ending with "approved" (or anything but what the ender may say) is refused.
    for (ending, kind) in
        [("approved", "user"), ("approved", "creator"), ("pending", "user"), ("denied", "creator")]
    {
        let e = host
            .query("SELECT * FROM mfa.end_challenge('c-held', $1, $2, 'alice')", &[&ending, &kind])
            .unwrap_err();
        let said = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
        assert!(said.contains("a creator cancels, an approver denies"), "{ending}/{kind}: {e:?}");
    }
    // NULLs do not slip past the checks.
    let row = host
        .query_one("SELECT * FROM mfa.end_challenge('c-held', 'denied', 'user', NULL)", &[])
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("unknown"));
    // A refused approver (same session, not verified) gets no number.
    for (session, verified) in [(Some(5i64), true), (None, true), (Some(6), false)] {
        let row = host
            .query_one(
                "SELECT * FROM mfa.answer_challenge('c-held', 'alice', 1, $1, $2, 'mfa')",
                &[&session, &verified],
            )
            .unwrap();
        let refusal: Option<String> = row.get(0);
        assert!(refusal.is_some(), "refused");
        assert_eq!(row.get::<_, Option<i32>>(4), None, "{refusal:?}: the number stays hidden");
    }
    assert_eq!(
        subject.settle_challenge("c-held", 1_700_000_001).unwrap(),
        ChallengeOutcome::Pending
    );
}
