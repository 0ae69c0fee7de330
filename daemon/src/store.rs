//! The enrollment store: one TOML file per user in `<state_dir>/users/`,
//! mode 0600, replaced atomically (temp file in the same directory, fsync,
//! rename, fsync of the directory). A name reaches the file system only as
//! a checked [`Username`].

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use pam_mfa_config::schema::Algorithm;
use pam_mfa_config::username::Username;
use serde::{Deserialize, Serialize};

use crate::limits::LimitState;
use crate::totp::Params;

/// Format version written into every file.
pub const FORMAT_VERSION: u32 = 1;
const TEMP_PREFIX: &str = ".tmp-";
const SUFFIX: &str = ".toml";

/// Everything mfad knows of one enrolled user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub version: u32,
    /// The TOTP secret, base32 without padding.
    pub secret: String,
    pub algorithm: String,
    pub digits: u8,
    pub period: u64,
    /// Unix time the enrollment became active.
    pub enrolled_at: u64,
    /// The last accepted time step: no step at or before it is accepted again.
    #[serde(default)]
    pub last_step: Option<u64>,
    #[serde(default)]
    pub limits: LimitState,
    /// Per-user steps of skew (imported from google-authenticator), else the config's.
    #[serde(default)]
    pub skew: Option<u64>,
    /// Per-user failures before lockout (imported RATE_LIMIT), else the config's.
    #[serde(default)]
    pub max_failures: Option<u64>,
    /// Per-user first lockout in seconds (imported RATE_LIMIT), else the config's.
    #[serde(default)]
    pub lockout_seconds: Option<u64>,
    /// Salt of the recovery code hashes.
    #[serde(default)]
    pub recovery_salt: String,
    /// Salted SHA-256 hashes of the unused recovery codes.
    #[serde(default)]
    pub recovery: Vec<String>,
    /// Remote addresses remembered after a second factor, with the unix
    /// time until which they are.
    #[serde(default)]
    pub remembered: Vec<Remembered>,
    /// Unix time a push request was reported as "not me" (0: never, or
    /// cleared since): push requests stay refused until a code login or
    /// an administrator clears it.
    #[serde(default)]
    pub push_blocked_since: u64,
    /// Under `[limits] scope = "user+address"`: the failures of each
    /// address (see `limits::address_key`), bounded.
    #[serde(default)]
    pub limits_by_address: std::collections::BTreeMap<String, LimitState>,
}

/// A device that may skip the second factor until `until`: an SSH key
/// (its SHA-256, hex) from a remote address through a PAM service. An
/// entry without a key (from before keys were bound) matches nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remembered {
    pub rhost: String,
    pub until: u64,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub service: String,
}

impl Record {
    /// The TOTP parameters, checked (a hand-edited file can hold anything).
    pub fn params(&self) -> Result<Params, String> {
        let algorithm = Algorithm::from_name(&self.algorithm)
            .ok_or_else(|| format!("unknown algorithm {:?}", self.algorithm))?;
        if !(6..=8).contains(&self.digits) {
            return Err(format!("digits {} is not 6 to 8", self.digits));
        }
        if self.period == 0 || self.period > 3600 {
            return Err(format!("period {} is not 1 to 3600", self.period));
        }
        Ok(Params { algorithm, digits: self.digits, period: self.period })
    }

    /// The raw secret bytes.
    pub fn secret_bytes(&self) -> Result<Vec<u8>, String> {
        let secret = totp_rs::Secret::try_from_base32(&self.secret)
            .map_err(|_| "the secret is not valid base32".to_string())?;
        let bytes = secret.as_ref().to_vec();
        if bytes.len() < 10 {
            return Err("the secret is shorter than 80 bits".into());
        }
        Ok(bytes)
    }
}

impl Drop for Record {
    /// The secret is wiped from memory when the record goes.
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.secret.zeroize();
    }
}

/// Parses the text of a store file, as [`Store::load`] does after reading
/// it: the TOML, then the format version. The TOTP parameters and secret are
/// checked later, where they are used ([`Record::params`],
/// [`Record::secret_bytes`]), so a record with bad ones can still be listed
/// and removed.
pub fn parse_record(text: &str) -> Result<Record, String> {
    let record: Record = toml::from_str(text).map_err(|e| e.message().to_string())?;
    if record.version != FORMAT_VERSION {
        return Err(format!("format version {} is not {FORMAT_VERSION}", record.version));
    }
    Ok(record)
}

/// Why the store could not do what was asked.
#[derive(Debug)]
pub enum StoreError {
    Io {
        path: PathBuf,
        error: io::Error,
    },
    /// A file that does not parse: reported, never overwritten silently.
    Corrupt {
        path: PathBuf,
        message: String,
    },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            StoreError::Corrupt { path, message } => {
                write!(f, "{}: unreadable store file: {message}", path.display())
            }
        }
    }
}

impl std::error::Error for StoreError {}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |error| StoreError::Io { path: path.to_path_buf(), error }
}

/// The store below one state directory.
#[derive(Debug, Clone)]
pub struct Store {
    users: PathBuf,
}

impl Store {
    /// Opens (and creates, mode 0700) `<state_dir>/users`. Refuses a state
    /// directory that others can write, and removes temp files left by a crash.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        let users = state_dir.join("users");
        for dir in [state_dir, users.as_path()] {
            match fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(dir)(e)),
            }
            let meta = fs::symlink_metadata(dir).map_err(io_err(dir))?;
            if !meta.is_dir() {
                return Err(StoreError::Corrupt {
                    path: dir.to_path_buf(),
                    message: "is not a directory".into(),
                });
            }
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(StoreError::Corrupt {
                    path: dir.to_path_buf(),
                    message: "is open to group or others: chmod 0700 it (it holds secrets)".into(),
                });
            }
        }
        let store = Store { users };
        store.remove_stale_temp_files()?;
        store.check_file_modes()?;
        Ok(store)
    }

    fn path_of(&self, user: &Username) -> PathBuf {
        self.users.join(format!("{user}{SUFFIX}"))
    }

    fn remove_stale_temp_files(&self) -> Result<(), StoreError> {
        for entry in fs::read_dir(&self.users).map_err(io_err(&self.users))? {
            let entry = entry.map_err(io_err(&self.users))?;
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                let path = entry.path();
                fs::remove_file(&path).map_err(io_err(&path))?;
            }
        }
        Ok(())
    }

    /// Refuses store files that group or others may read or write.
    fn check_file_modes(&self) -> Result<(), StoreError> {
        for entry in fs::read_dir(&self.users).map_err(io_err(&self.users))? {
            let entry = entry.map_err(io_err(&self.users))?;
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
            if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
                return Err(StoreError::Corrupt {
                    path,
                    message: "is not a private regular file: chmod 0600 it (it holds a secret)"
                        .into(),
                });
            }
        }
        Ok(())
    }

    /// The user's record, or `None` when the user is not enrolled.
    pub fn load(&self, user: &Username) -> Result<Option<Record>, StoreError> {
        let path = self.path_of(user);
        let text = match fs::read_to_string(&path) {
            Ok(text) => zeroize::Zeroizing::new(text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        parse_record(&text).map(Some).map_err(|message| StoreError::Corrupt { path, message })
    }

    /// Writes the user's record durably: when this returns `Ok`, the new
    /// contents survive a crash, and a crash before never leaves a torn file.
    pub fn save(&self, user: &Username, record: &Record) -> Result<(), StoreError> {
        self.write(user, record, true)
    }

    /// Like [`Store::save`], without the directory fsync: the file is still
    /// complete on disk before it replaces the old one (never torn), but a
    /// power loss right after may bring back the previous version. For
    /// updates whose loss is harmless (a failure counted), not for an
    /// accepted code or a new enrollment.
    pub fn save_atomic(&self, user: &Username, record: &Record) -> Result<(), StoreError> {
        self.write(user, record, false)
    }

    fn write(&self, user: &Username, record: &Record, durable: bool) -> Result<(), StoreError> {
        let path = self.path_of(user);
        let text = toml::to_string(record)
            .map(zeroize::Zeroizing::new)
            .map_err(|e| StoreError::Corrupt { path: path.clone(), message: e.to_string() })?;
        let mut temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .permissions(fs::Permissions::from_mode(0o600))
            .tempfile_in(&self.users)
            .map_err(io_err(&self.users))?;
        temp.write_all(text.as_bytes()).map_err(io_err(temp.path()))?;
        temp.as_file().sync_all().map_err(io_err(&path))?;
        temp.persist(&path).map_err(|e| io_err(&path)(e.error))?;
        if durable {
            self.sync_dir()?;
        }
        Ok(())
    }

    /// Removes the user's record; `Ok(false)` when there was none.
    pub fn remove(&self, user: &Username) -> Result<bool, StoreError> {
        let path = self.path_of(user);
        match fs::remove_file(&path) {
            Ok(()) => self.sync_dir().map(|()| true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// The names of all users with a store file, sorted.
    pub fn users(&self) -> Result<Vec<Username>, StoreError> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.users).map_err(io_err(&self.users))? {
            let entry = entry.map_err(io_err(&self.users))?;
            let file = entry.file_name();
            let Some(name) = file.to_str().and_then(|f| f.strip_suffix(SUFFIX)) else {
                continue;
            };
            if let Ok(user) = Username::parse(name) {
                names.push(user);
            }
        }
        names.sort();
        Ok(names)
    }

    fn sync_dir(&self) -> Result<(), StoreError> {
        let dir = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc_o_directory())
            .open(&self.users)
            .map_err(io_err(&self.users))?;
        dir.sync_all().map_err(io_err(&self.users))
    }
}

fn libc_o_directory() -> i32 {
    nix::fcntl::OFlag::O_DIRECTORY.bits()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            version: FORMAT_VERSION,
            secret: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into(),
            algorithm: "SHA1".into(),
            digits: 6,
            period: 30,
            enrolled_at: 1_700_000_000,
            last_step: Some(56_666_666),
            limits: LimitState { failures: 2, lockouts: 1, locked_until: 5 },
            skew: Some(2),
            max_failures: None,
            lockout_seconds: Some(30),
            recovery_salt: "00ff".into(),
            recovery: vec!["ab".repeat(32)],
            remembered: vec![Remembered {
                rhost: "192.0.2.7".into(),
                until: 9,
                key: "ab".repeat(32),
                service: "sshd".into(),
            }],
            push_blocked_since: 0,
            limits_by_address: Default::default(),
        }
    }

    fn user(name: &str) -> Username {
        Username::parse(name).unwrap()
    }

    #[test]
    fn store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state")).unwrap();
        assert_eq!(store.load(&user("alice")).unwrap(), None);
        store.save(&user("alice"), &record()).unwrap();
        assert_eq!(store.load(&user("alice")).unwrap(), Some(record()));
        assert_eq!(store.users().unwrap(), vec![user("alice")]);
        assert!(store.remove(&user("alice")).unwrap());
        assert!(!store.remove(&user("alice")).unwrap());
        assert_eq!(store.load(&user("alice")).unwrap(), None);
    }

    #[test]
    fn store_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state")).unwrap();
        store.save(&user("bob"), &record()).unwrap();
        let mode =
            fs::metadata(dir.path().join("state/users/bob.toml")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = fs::metadata(dir.path().join("state/users")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_corrupt_file_is_reported_and_others_are_unharmed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state")).unwrap();
        store.save(&user("good"), &record()).unwrap();
        fs::write(dir.path().join("state/users/bad.toml"), "secret = [").unwrap();
        assert!(matches!(store.load(&user("bad")), Err(StoreError::Corrupt { .. })));
        assert_eq!(store.load(&user("good")).unwrap(), Some(record()));
    }

    #[test]
    fn stale_temp_files_are_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        Store::open(&dir.path().join("state")).unwrap();
        let stale = dir.path().join("state/users/.tmp-crashed");
        fs::write(&stale, "half").unwrap();
        Store::open(&dir.path().join("state")).unwrap();
        assert!(!stale.exists());
    }

    #[test]
    fn a_state_directory_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        fs::create_dir(&state).unwrap();
        fs::set_permissions(&state, fs::Permissions::from_mode(0o755)).unwrap();
        let err = Store::open(&state).unwrap_err();
        assert!(err.to_string().contains("open to group or others"), "{err}");
    }

    #[test]
    fn a_store_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state")).unwrap();
        store.save(&user("carol"), &record()).unwrap();
        let file = dir.path().join("state/users/carol.toml");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let err = Store::open(&dir.path().join("state")).unwrap_err();
        assert!(err.to_string().contains("chmod 0600"), "{err}");
    }

    #[test]
    fn unsafe_usernames_never_reach_the_store() {
        // The store takes only `Username`, and this is the gate.
        for name in ["../../etc/shadow", "a/b", "..", ""] {
            assert!(Username::parse(name).is_err(), "{name:?}");
        }
    }
}
