//! mfa-db — sets up and administers pam-mfa's fleet database.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use pam_mfa_config::cli::{self, Opt};
use pam_mfa_config::i18n::{self, Texts};
use pam_mfa_config::say;
use pam_mfa_config::schema::{Backend, Config};
use pam_mfa_core::account::{Account, RecoveryHashes, Remembered};
use pam_mfa_core::limits::LimitState;
use pam_mfa_core::storage::{Records, Storage};
use pam_mfa_protocol::username::Username;
use pam_mfa_storage::file::FileRecords;
use pam_mfa_storage::postgres::describe;

const HELP: &str = "\
mfa-db - sets up and administers pam-mfa's fleet database (PostgreSQL 15+)

Usage:
  mfa-db setup [--connection CONNINFO]
      Brings the database to this release's schema (roles mfa_owner and
      mfa_host, tables, functions). Idempotent: run it again after an upgrade.
  mfa-db add-host NAME [--connection CONNINFO] [--password-stdin]
      Makes NAME a host's login role: it may call the store's functions and
      nothing else. With --password-stdin, the password is read from standard
      input (else: authenticate it with a client certificate, CN=NAME).
  mfa-db add-web NAME [--connection CONNINFO] [--password-stdin]
      Makes NAME the login role of a web approver (mfa-web in fleet mode): it
      may list a user's requests and answer them only with one of that user's
      phones (the database keeps each signature), and read nothing secret.
  mfa-db status [--connection CONNINFO]
      The schema version, enrolled users and hosts.
  mfa-db import [--config PATH] [--keep USER]...
      Moves this host's file store ([state_dir]) into the database of
      [store] connection in the config: secrets, last used steps, recovery
      codes, lockouts, remembered devices. Users already in the database
      are kept as they are there. Each file moved (or found there) is set
      aside in [state_dir]/imported, so that fallback = \"local\" cannot
      check a stale copy; --keep USER leaves a break-glass account in the
      files, not in the database. Idempotent. Stop mfad first.
  mfa-db export --connection CONNINFO [--config PATH]
      The way back: writes every enrollment of the database into this host's
      file store (replacing what is there). Needs an administrator's
      connection: no host can read a secret.

CONNINFO is a libpq connection string of an administrator (a superuser for
setup); default: \"host=/var/run/postgresql dbname=mfa user=postgres\" (run as
postgres: runuser -u postgres -- mfa-db setup).

Exit status: 0 done, 1 failed (the error says why), 2 usage.";

const DEFAULT_ADMIN: &str = "host=/var/run/postgresql dbname=mfa user=postgres";
const CONNECTION: Opt = Opt::value("--connection");
const PASSWORD_STDIN: Opt = Opt::flag("--password-stdin");
const KEEP: Opt = Opt::value("--keep");

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match raw.split_first() {
        Some((first, rest)) if !first.starts_with('-') => (first.as_str(), rest),
        _ => ("", raw.as_slice()),
    };
    let (name, rest) = match (command, rest.split_first()) {
        ("add-host" | "add-web", Some((name, rest))) if !name.starts_with('-') => {
            (Some(name.clone()), rest)
        }
        _ => (None, rest),
    };
    // mfa-db speaks to administrators: English, like mfad.
    let texts = Texts::new(i18n::FALLBACK);
    let opts = [cli::HELP, cli::VERSION, cli::CONFIG, CONNECTION, PASSWORD_STDIN, KEEP];
    let given = match cli::parse(&opts, rest) {
        Ok(given) => given,
        Err(problem) => return usage(&problem.said(&texts)),
    };
    let mut connection: Option<String> = None;
    let mut config_path: Option<PathBuf> = None;
    let mut password_stdin = false;
    let mut keep: Vec<String> = Vec::new();
    for (option, value) in given {
        match option {
            "--help" => {
                say!("{HELP}");
                return ExitCode::SUCCESS;
            }
            "--version" => {
                say!("mfa-db {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            "--connection" => connection = value,
            "--config" => config_path = value.map(PathBuf::from),
            "--keep" => keep.extend(value),
            _ => password_stdin = true,
        }
    }
    let admin = || connection.clone().unwrap_or_else(|| DEFAULT_ADMIN.to_string());
    let done = match command {
        "setup" => setup(&admin()),
        "add-host" => match name {
            Some(name) => add_role(&admin(), &name, Group::Host, password_stdin),
            None => return usage("add-host needs the host's role name"),
        },
        "add-web" => match name {
            Some(name) => add_role(&admin(), &name, Group::Web, password_stdin),
            None => return usage("add-web needs the web approver's role name"),
        },
        "status" => status(&admin()),
        "import" => import(config_path, &keep),
        "export" => match connection {
            Some(c) => export(&c, config_path),
            None => return usage("export needs --connection (an administrator's)"),
        },
        "" => return usage("which command? setup, add-host, add-web, status, import or export"),
        other => return usage(&format!("unknown command {other:?}")),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mfa-db: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("mfa-db: {problem}\nTry 'mfa-db --help'.");
    ExitCode::from(2)
}

/// An administrator's connection (no TLS settings: use a local socket, or
/// sslmode and the server's own trust; hosts use [store] in their config).
fn connect(conninfo: &str) -> Result<postgres::Client, String> {
    let settings = pam_mfa_storage::postgres::Settings::new(
        conninfo,
        Duration::from_secs(10),
        Duration::from_secs(300),
    )?;
    if let Some(host) = settings.remote_host() {
        return Err(format!(
            "{host} is reached over the network, and mfa-db speaks no TLS: run it on the \
             database server (its socket, or localhost)"
        ));
    }
    settings.connect().map_err(|e| format!("{}: {}", settings.place(), describe(&e)))
}

fn setup(conninfo: &str) -> Result<(), String> {
    let mut client = connect(conninfo)?;
    let applied = pam_mfa_storage::schema::apply(&mut client).map_err(|e| e.to_string())?;
    let latest = pam_mfa_storage::schema::latest();
    if applied.is_empty() {
        say!("The database is at version {latest} already: nothing to do.");
    } else {
        let list: Vec<String> = applied.iter().map(i32::to_string).collect();
        say!("The database is at version {latest} (applied now: {}).", list.join(", "));
    }
    Ok(())
}

/// A role name as SQL needs it, quoted; only names a host could have.
fn role(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b))
        && !name.starts_with("pg_")
        && !name.starts_with("mfa_");
    if !ok {
        return Err(format!(
            "{name:?} is not a host's role name: 1 to 63 of a-z 0-9 _ - ., not starting with pg_ or mfa_"
        ));
    }
    Ok(format!("\"{name}\""))
}

/// What a login role made by mfa-db is.
#[derive(Clone, Copy)]
enum Group {
    Host,
    Web,
}

impl Group {
    fn role(self) -> &'static str {
        match self {
            Group::Host => "mfa_host",
            Group::Web => "mfa_web",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Group::Host => "a host",
            Group::Web => "a web approver",
        }
    }

    /// The config section that names the role.
    fn config(self, name: &str) -> String {
        let connection = format!(
            "connection = \"host=DB-HOSTS dbname=mfa user={name} target_session_attrs=read-write\""
        );
        match self {
            Group::Host => format!("[store]\nbackend = \"postgres\"\n{connection}"),
            Group::Web => {
                format!("[web]\n{connection}\npassword_file = \"/etc/pam-mfa/web-db-password\"")
            }
        }
    }
}

fn add_role(conninfo: &str, name: &str, group: Group, password_stdin: bool) -> Result<(), String> {
    let quoted = role(name)?;
    // The password first: nothing is made unless all of it can be.
    let verifier = if password_stdin {
        let mut password = zeroize::Zeroizing::new(String::new());
        std::io::stdin().read_line(&mut password).map_err(|e| format!("standard input: {e}"))?;
        let password = password.trim_end_matches(['\n', '\r']);
        if password.len() < 16 {
            return Err(format!("{}'s password has at least 16 characters", group.what()));
        }
        // Only its SCRAM verifier leaves this process: the server (and its
        // log, should the statement fail) never sees the password.
        Some(postgres_protocol::password::scram_sha_256(password.as_bytes()))
    } else {
        None
    };
    let mut client = connect(conninfo)?;
    let mut tx = client.transaction().map_err(|e| describe(&e))?;
    let existing = tx
        .query_opt(
            "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls OR rolreplication, \
             (SELECT count(*) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid \
              WHERE m.member = r.oid AND g.rolname <> $2) \
             FROM pg_roles r WHERE rolname = $1",
            &[&name, &group.role()],
        )
        .map_err(|e| describe(&e))?;
    let exists = match existing {
        Some(row) => {
            let (powerful, memberships): (bool, i64) = (
                row.try_get(0).map_err(|e| describe(&e))?,
                row.try_get(1).map_err(|e| describe(&e))?,
            );
            if powerful || memberships > 0 {
                return Err(format!(
                    "{name} exists and may do more than {} (a superuser, or a member of other roles): pick another name",
                    group.what()
                ));
            }
            let grant = group.role();
            tx.batch_execute(&format!("GRANT {grant} TO {quoted}; ALTER ROLE {quoted} LOGIN"))
                .map_err(|e| describe(&e))?;
            true
        }
        None => {
            let group = group.role();
            tx.batch_execute(&format!("CREATE ROLE {quoted} LOGIN IN ROLE {group}"))
                .map_err(|e| describe(&e))?;
            false
        }
    };
    if let Some(verifier) = verifier {
        // A SCRAM verifier is base64, digits, '$' and ':': nothing to escape.
        tx.batch_execute(&format!("ALTER ROLE {quoted} PASSWORD '{verifier}'"))
            .map_err(|e| describe(&e))?;
    }
    tx.commit().map_err(|e| describe(&e))?;
    say!(
        "{name} is {}'s role{}. In its /etc/pam-mfa/config.toml:\n\n{}",
        group.what(),
        if exists { " (it existed)" } else { "" },
        group.config(name)
    );
    Ok(())
}

fn status(conninfo: &str) -> Result<(), String> {
    let mut client = connect(conninfo)?;
    let versions = pam_mfa_storage::schema::applied(&mut client).map_err(|e| describe(&e))?;
    let latest = pam_mfa_storage::schema::latest();
    let have = versions.last().copied().unwrap_or(0);
    say!("schema version: {have} (this release: {latest})");
    if have == 0 {
        return Ok(());
    }
    let mut count = |sql: &str| -> Result<i64, String> {
        client.query_one(sql, &[]).and_then(|r| r.try_get(0)).map_err(|e| describe(&e))
    };
    let users = count("SELECT count(*) FROM mfa.account")?;
    let pending = count("SELECT count(*) FROM mfa.pending")?;
    say!("enrolled users: {users} (pending enrollments: {pending})");
    let hosts: Vec<String> = client
        .query(
            "SELECT r.rolname FROM pg_roles r JOIN pg_auth_members m ON m.member = r.oid \
             JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = 'mfa_host' ORDER BY 1",
            &[],
        )
        .map_err(|e| describe(&e))?
        .iter()
        .filter_map(|r| r.try_get(0).ok())
        .collect();
    say!("hosts: {}", if hosts.is_empty() { "none".to_string() } else { hosts.join(", ") });
    Ok(())
}

fn config(path: Option<PathBuf>) -> Result<Config, String> {
    Config::load_trusted(path.as_deref()).map_err(|e| e.to_string())
}

fn import(config_path: Option<PathBuf>, keep: &[String]) -> Result<(), String> {
    let config = config(config_path)?;
    if config.store.backend != Backend::Postgres {
        say!("(the config still says backend = \"file\": mfad keeps using files until it says \"postgres\")");
    }
    let settings = pam_mfa_storage::settings(&config.store)?;
    let database = pam_mfa_storage::postgres::PgStore::open(settings);
    let files = FileRecords::open(config.state_dir.as_path()).map_err(|e| e.to_string())?;
    let (mut moved, mut kept) = (0, 0);
    for (user, _) in files.users().map_err(|e| e.to_string())? {
        if keep.iter().any(|k| k == user.as_str()) {
            say!("{user}: kept in the files (break-glass)");
            continue;
        }
        let Some(account) = files.load(&user).map_err(|e| e.to_string())? else { continue };
        if database.summary(&user, 0).map_err(|e| e.to_string())?.is_some() {
            say!("{user}: already in the database, kept as it is there");
            kept += 1;
        } else {
            database.install(&user, account).map_err(|e| format!("{user}: {e}"))?;
            say!("{user}: moved");
            moved += 1;
        }
        let aside = files.set_aside(&user).map_err(|e| format!("{user}: {e}"))?;
        say!("  (its file is now {})", aside.display());
    }
    say!("{moved} moved, {kept} already there.");
    Ok(())
}

fn export(conninfo: &str, config_path: Option<PathBuf>) -> Result<(), String> {
    let config = config(config_path)?;
    let mut client = connect(conninfo)?;
    let files = FileRecords::open(config.state_dir.as_path()).map_err(|e| e.to_string())?;
    let rows = client
        .query(
            "SELECT username, secret, algorithm, digits, period, enrolled_at, last_step, \
             failures, lockouts, locked_until, skew, max_failures, lockout_seconds, \
             recovery_salt, recovery_hashes, push_blocked_since FROM mfa.account ORDER BY username",
            &[],
        )
        .map_err(|e| describe(&e))?;
    let mut written = 0;
    for row in rows {
        let name: String = row.try_get(0).map_err(|e| describe(&e))?;
        let user = Username::parse(&name).map_err(|e| format!("{name:?}: {e}"))?;
        let account = account_of(&mut client, &row).map_err(|e| format!("{user}: {e}"))?;
        files
            .save(&user, &account, pam_mfa_core::account::Durability::Durable)
            .map_err(|e| format!("{user}: {e}"))?;
        say!("{user}: written");
        written += 1;
    }
    say!("{written} written to {}.", config.state_dir.as_path().display());
    Ok(())
}

/// An account from its row of mfa.account and its other rows.
fn account_of(client: &mut postgres::Client, row: &postgres::Row) -> Result<Account, String> {
    let e = |e: postgres::Error| describe(&e);
    let name: String = row.try_get(0).map_err(e)?;
    let secret: Vec<u8> = row.try_get(1).map_err(e)?;
    let unsigned = |n: i64| u64::try_from(n).unwrap_or(0);
    let limits_of = |f: i32, l: i32, u: i64| LimitState {
        failures: u32::try_from(f).unwrap_or(0),
        lockouts: u32::try_from(l).unwrap_or(0),
        locked_until: unsigned(u),
    };
    let by_address = client
        .query(
            "SELECT address, failures, lockouts, locked_until FROM mfa.address_limit WHERE username = $1",
            &[&name],
        )
        .map_err(e)?
        .iter()
        .map(|r| Ok((r.try_get(0)?, limits_of(r.try_get(1)?, r.try_get(2)?, r.try_get(3)?))))
        .collect::<Result<_, postgres::Error>>()
        .map_err(e)?;
    let remembered = client
        .query(
            "SELECT key, rhost, service, until FROM mfa.remembered WHERE username = $1 ORDER BY id",
            &[&name],
        )
        .map_err(e)?
        .iter()
        .map(|r| {
            Ok(Remembered {
                key: r.try_get(0)?,
                rhost: r.try_get(1)?,
                service: r.try_get(2)?,
                until: unsigned(r.try_get(3)?),
            })
        })
        .collect::<Result<_, postgres::Error>>()
        .map_err(e)?;
    let phones = client
        .query(
            "SELECT credential_id, public_key, name, added_at, sign_count, last_used \
             FROM mfa.phone WHERE username = $1 ORDER BY added_at, credential_id",
            &[&name],
        )
        .map_err(e)?
        .iter()
        .map(pam_mfa_storage::postgres::phone_of_row)
        .collect::<Result<_, postgres::Error>>()
        .map_err(e)?;
    let digits: i32 = row.try_get(3).map_err(e)?;
    let last_step: Option<i64> = row.try_get(6).map_err(e)?;
    let optional = |i: usize| -> Result<Option<u64>, String> {
        Ok(row.try_get::<_, Option<i64>>(i).map_err(e)?.map(unsigned))
    };
    Ok(Account {
        secret: pam_mfa_core::uri::base32(&secret),
        algorithm: row.try_get(2).map_err(e)?,
        digits: u8::try_from(digits).unwrap_or(6),
        period: unsigned(row.try_get(4).map_err(e)?),
        enrolled_at: unsigned(row.try_get(5).map_err(e)?),
        last_step: last_step.map(unsigned),
        limits: limits_of(
            row.try_get(7).map_err(e)?,
            row.try_get(8).map_err(e)?,
            row.try_get(9).map_err(e)?,
        ),
        skew: optional(10)?,
        max_failures: optional(11)?,
        lockout_seconds: optional(12)?,
        recovery: RecoveryHashes {
            salt: row.try_get(13).map_err(e)?,
            hashes: row.try_get(14).map_err(e)?,
        },
        remembered,
        push_blocked_since: unsigned(row.try_get(15).map_err(e)?),
        limits_by_address: by_address,
        phones,
    })
}
