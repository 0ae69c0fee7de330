//! pam-mfa's stores: implementations of the core's
//! [`pam_mfa_core::storage::Storage`], each passing its conformance suite.
//! `file`: one private file per user below `/var/lib/pam-mfa` (the
//! default; one host). `postgres`: one database for a fleet of hosts,
//! whose rules run inside it (`schema` brings it to this build's version).

pub mod fallback;
pub mod file;
pub mod postgres;
pub mod schema;
pub mod web;

use std::sync::Arc;
use std::time::Duration;

use pam_mfa_config::schema::{Backend, Config, StoreConfig};
use pam_mfa_core::storage::Storage;

/// The store the config names: the file store in `state_dir`, or the
/// database of `[store]` (behind the local break-glass store when
/// `fallback = "local"`). An error says which key to fix.
pub fn open(config: &Config) -> Result<Arc<dyn Storage>, String> {
    let state_dir = config.state_dir.as_path();
    let local = || {
        file::open(state_dir)
            .map_err(|e| format!("cannot open the state directory {}: {e}", state_dir.display()))
    };
    match config.store.backend {
        Backend::File => Ok(Arc::new(local()?)),
        Backend::Postgres => {
            // mfad must answer "cannot be reached" before the client gives
            // up on mfad: a module's timeout is not an answer.
            let (store, bus) = (config.store.timeout_ms.get(), config.bus.timeout_ms.get());
            if store >= bus {
                return Err(format!(
                    "[store] timeout_ms ({store}) must be below [bus] timeout_ms ({bus}), so that \
                     a login is told the database cannot be reached before the bus call ends"
                ));
            }
            let database = postgres::PgStore::open(settings(&config.store)?);
            match config.store.fallback {
                pam_mfa_config::schema::Fallback::None => Ok(Arc::new(database)),
                pam_mfa_config::schema::Fallback::Local => {
                    Ok(Arc::new(fallback::Fallback { primary: database, local: local()? }))
                }
            }
        }
    }
}

/// How to reach the database of `[store]`.
pub fn settings(store: &StoreConfig) -> Result<postgres::Settings, String> {
    if store.connection.as_str().is_empty() {
        return Err("[store] backend = \"postgres\" needs [store] connection".into());
    }
    let timeout = Duration::from_millis(store.timeout_ms.get());
    let connect = Duration::from_millis(store.connect_timeout_ms.get());
    let mut settings = postgres::Settings::new(store.connection.as_str(), connect, timeout)
        .map_err(|e| format!("[store] connection: {e}"))?;
    settings.pool_size = usize::try_from(store.pool_size.get()).unwrap_or(4);
    if let Some(path) = store.password_file.get() {
        settings.config.password(read_private(path)?.trim_end_matches(['\n', '\r']));
    }
    let client = match (store.client_cert.get(), store.client_key.get()) {
        (Some(cert), Some(key)) => {
            read_private(key)?;
            Some((cert, key))
        }
        (None, None) => None,
        _ => return Err("[store] client_cert and client_key go together".into()),
    };
    match store.ca_file.get() {
        Some(ca) => settings.with_tls(ca, client).map_err(|e| format!("[store] TLS: {e}")),
        None if client.is_some() => Err("[store] client_cert needs ca_file (TLS)".into()),
        None => match settings.remote_host() {
            // Codes, answers and new secrets would cross the network in clear.
            Some(host) => Err(format!(
                "[store] connection reaches {host} over the network: set ca_file (TLS)"
            )),
            None => Ok(settings),
        },
    }
}

/// How mfa-web reaches the fleet's database in fleet mode: `[web]
/// connection` and `password_file` (its own role), TLS and timeouts of
/// `[store]`; `None` when `[web] connection` is empty.
pub fn web_settings(config: &Config) -> Result<Option<postgres::Settings>, String> {
    let web = &config.web;
    if web.connection.as_str().is_empty() {
        return Ok(None);
    }
    let mut store = config.store.clone();
    store.connection = web.connection.clone();
    store.password_file = web.password_file.clone();
    let none = StoreConfig::default();
    (store.client_cert, store.client_key) = (none.client_cert, none.client_key);
    settings(&store).map(Some).map_err(|e| e.replace("[store] connection", "[web] connection"))
}

/// A file only its owner may read (a password, a private key).
fn read_private(path: &std::path::Path) -> Result<String, String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "{}: others may read it (mode {:o}): chmod 600 it",
            path.display(),
            meta.mode() & 0o777
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(text: &str) -> Config {
        match Config::parse(Path::new("config.toml"), text) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    fn refused(text: &str) -> String {
        match open(&config(text)) {
            Ok(_) => panic!("opened: {text}"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_database_store_needs_a_connection_and_answers_before_the_bus_gives_up() {
        let e = refused("[store]\nbackend = \"postgres\"\n");
        assert!(e.contains("needs [store] connection"), "{e}");
        let e = refused(
            "[store]\nbackend = \"postgres\"\nconnection = \"host=/tmp dbname=mfa\"\ntimeout_ms = 3000\n",
        );
        assert!(
            e.contains("[store] timeout_ms (3000) must be below [bus] timeout_ms (3000)"),
            "{e}"
        );
        let e = refused(
            "[store]\nbackend = \"postgres\"\nconnection = \"host=/tmp dbname=mfa\"\nclient_cert = \"/c.pem\"\n",
        );
        assert!(e.contains("client_cert and client_key go together"), "{e}");
        let e = refused("[store]\nbackend = \"postgres\"\nconnection = \"host=127.0.0.1,db2.example dbname=mfa\"\n");
        assert!(e.contains("reaches db2.example over the network: set ca_file (TLS)"), "{e}");
        for local in [
            "host=/var/run/postgresql dbname=mfa",
            "host=127.0.0.1 dbname=mfa",
            "host=localhost,::1 dbname=mfa",
        ] {
            let text = format!("[store]\nbackend = \"postgres\"\nconnection = \"{local}\"\n");
            assert!(open(&config(&text)).is_ok(), "{local}");
        }
    }

    #[test]
    fn a_password_is_never_in_the_config_and_its_file_must_be_private() {
        for connection in [
            "host=db dbname=mfa password=hunter2",
            "postgresql://web1:hunter2@db/mfa",
            "postgres://web1:hunter2@db:5432/mfa",
        ] {
            let text = format!("[store]\nconnection = \"{connection}\"\n");
            let e = Config::parse(Path::new("config.toml"), &text).err().map(|e| e.to_string());
            assert!(
                e.as_deref().is_some_and(|e| e.contains("password_file")),
                "{connection}: {e:?}"
            );
        }
        assert!(Config::parse(
            Path::new("c"),
            "[store]\nconnection = \"postgresql://web1@db/mfa\"\n"
        )
        .is_ok());
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let file = dir.path().join("password");
        std::fs::write(&file, "secret\n").unwrap_or_else(|e| panic!("{e}"));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        let e = refused(&format!(
            "[store]\nbackend = \"postgres\"\nconnection = \"host=/tmp dbname=mfa\"\npassword_file = \"{}\"\n",
            file.display()
        ));
        assert!(e.contains("others may read it (mode 644): chmod 600 it"), "{e}");
    }
}
