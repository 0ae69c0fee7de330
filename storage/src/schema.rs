//! The database's schema, versioned: each file of `storage/sql/` is one
//! version, applied once, in order, in one transaction with the version
//! it brings, under an advisory lock (two admins running the setup at
//! once wait for each other). Applying again does nothing; a newer
//! release brings its new versions and applies only those.

use postgres::Client;

/// Every version: (number, name, SQL). Never edit a released one: add the next.
pub const VERSIONS: &[(i32, &str, &str)] = &[
    (1, "totp", include_str!("../sql/001-totp.sql")),
    (2, "store", include_str!("../sql/002-store.sql")),
    (3, "phones", include_str!("../sql/003-phones.sql")),
    (4, "web", include_str!("../sql/004-web.sql")),
];

/// The version this build's store needs.
pub fn latest() -> i32 {
    VERSIONS.iter().map(|(n, _, _)| *n).max().unwrap_or(0)
}

/// Any number: the key of the advisory lock that serializes setups.
const SETUP_LOCK: i64 = 0x0070_616d_2d6d_6661;

/// Why the schema was not applied.
#[derive(Debug)]
pub enum SetupError {
    /// pgcrypto is in another schema: ours names it in schema mfa.
    PgcryptoElsewhere(String),
    Database(postgres::Error),
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetupError::PgcryptoElsewhere(schema) => write!(
                f,
                "pgcrypto is installed in schema {schema:?} of this database; pam-mfa keeps it in \
                 schema mfa, where no login role can shadow it. Use a database of its own \
                 (createdb mfa), or if nothing else uses pgcrypto here: \
                 ALTER EXTENSION pgcrypto SET SCHEMA mfa (after CREATE SCHEMA mfa)"
            ),
            SetupError::Database(e) => write!(f, "{}", crate::postgres::describe(e)),
        }
    }
}

impl From<postgres::Error> for SetupError {
    fn from(e: postgres::Error) -> Self {
        SetupError::Database(e)
    }
}

/// Brings the database to the latest version; returns the versions
/// applied now (empty: it was up to date). Needs a role that may create
/// roles and extensions (a superuser, as in README's Fleet setup).
pub fn apply(client: &mut Client) -> Result<Vec<i32>, SetupError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SETUP_LOCK])?;
    let pgcrypto = tx.query_opt(
        "SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace \
         WHERE e.extname = 'pgcrypto'",
        &[],
    )?;
    if let Some(row) = pgcrypto {
        let schema: String = row.try_get(0)?;
        if schema != "mfa" {
            return Err(SetupError::PgcryptoElsewhere(schema));
        }
    }
    tx.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS mfa;
         CREATE TABLE IF NOT EXISTS mfa.schema_version (
             version integer PRIMARY KEY,
             name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now());
         REVOKE ALL ON mfa.schema_version FROM PUBLIC;",
    )?;
    let have: Vec<i32> = tx
        .query("SELECT version FROM mfa.schema_version", &[])?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut applied = Vec::new();
    for (version, name, sql) in VERSIONS {
        if have.contains(version) {
            continue;
        }
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO mfa.schema_version (version, name) VALUES ($1, $2)",
            &[version, name],
        )?;
        applied.push(*version);
    }
    tx.commit()?;
    Ok(applied)
}

/// The versions applied so far, in order.
pub fn applied(client: &mut Client) -> Result<Vec<i32>, postgres::Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('mfa.schema_version') IS NOT NULL", &[])?
        .try_get(0)?;
    if !exists {
        return Ok(Vec::new());
    }
    client
        .query("SELECT version FROM mfa.schema_version ORDER BY version", &[])?
        .iter()
        .map(|row| row.try_get(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_numbered_one_up_and_files_say_their_number() {
        for (i, (n, _, sql)) in VERSIONS.iter().enumerate() {
            assert_eq!(usize::try_from(*n).ok(), Some(i + 1));
            assert!(sql.contains(&format!("version {n}")), "file of version {n} says so");
        }
        assert_eq!(latest(), 4);
    }
}
