//! The file store: one TOML file per user in `<state_dir>/users/`, mode
//! 0600, replaced atomically (temp file in the same directory, fsync,
//! rename, fsync of the directory). A name reaches the file system only as
//! a checked [`Username`]. The file format ([`Record`]) is this module's
//! own: the core's [`Account`] can change without changing what is on
//! disk, and files written by every release since format 1 keep working.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use pam_mfa_core::account::{Account, Durability, RecoveryHashes, Remembered};
use pam_mfa_core::limits::LimitState;
use pam_mfa_core::passkey::Phone;
use pam_mfa_core::storage::{Locked, Records, StorageError};
use pam_mfa_protocol::username::Username;
use serde::{Deserialize, Serialize};

/// Format version written into every file.
pub const FORMAT_VERSION: u32 = 1;
const TEMP_PREFIX: &str = ".tmp-";
const SUFFIX: &str = ".toml";

/// One user's file, as written since format 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub version: u32,
    /// The TOTP secret, base32 without padding.
    pub secret: String,
    pub algorithm: String,
    pub digits: u8,
    pub period: u64,
    pub enrolled_at: u64,
    #[serde(default)]
    pub last_step: Option<u64>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub skew: Option<u64>,
    #[serde(default)]
    pub max_failures: Option<u64>,
    #[serde(default)]
    pub lockout_seconds: Option<u64>,
    #[serde(default)]
    pub recovery_salt: String,
    #[serde(default)]
    pub recovery: Vec<String>,
    #[serde(default)]
    pub remembered: Vec<Device>,
    #[serde(default)]
    pub push_blocked_since: u64,
    #[serde(default)]
    pub limits_by_address: BTreeMap<String, Limits>,
    #[serde(default)]
    pub phones: Vec<PhoneRecord>,
}

/// A [`Phone`] on disk; binary values in base64url.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneRecord {
    pub credential_id: String,
    pub public_key: String,
    pub name: String,
    pub added_at: u64,
    #[serde(default)]
    pub sign_count: u32,
    #[serde(default)]
    pub last_used: u64,
}

impl PhoneRecord {
    fn of(phone: &Phone) -> PhoneRecord {
        PhoneRecord {
            credential_id: URL_SAFE_NO_PAD.encode(&phone.credential_id),
            public_key: URL_SAFE_NO_PAD.encode(&phone.public_key),
            name: phone.name.clone(),
            added_at: phone.added_at,
            sign_count: phone.sign_count,
            last_used: phone.last_used,
        }
    }

    fn phone(&self) -> Result<Phone, String> {
        let decode = |what: &str, text: &str| {
            URL_SAFE_NO_PAD.decode(text).map_err(|e| format!("phone {}: {what}: {e}", self.name))
        };
        Ok(Phone {
            credential_id: decode("credential_id", &self.credential_id)?,
            public_key: decode("public_key", &self.public_key)?,
            name: self.name.clone(),
            added_at: self.added_at,
            sign_count: self.sign_count,
            last_used: self.last_used,
        })
    }
}

/// A [`LimitState`] on disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default)]
    pub failures: u32,
    #[serde(default)]
    pub lockouts: u32,
    #[serde(default)]
    pub locked_until: u64,
}

/// A [`Remembered`] device on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    pub rhost: String,
    pub until: u64,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub service: String,
}

impl From<LimitState> for Limits {
    fn from(s: LimitState) -> Limits {
        Limits { failures: s.failures, lockouts: s.lockouts, locked_until: s.locked_until }
    }
}

impl From<Limits> for LimitState {
    fn from(l: Limits) -> LimitState {
        LimitState { failures: l.failures, lockouts: l.lockouts, locked_until: l.locked_until }
    }
}

impl Record {
    pub fn of(account: &Account) -> Record {
        Record {
            version: FORMAT_VERSION,
            secret: account.secret.clone(),
            algorithm: account.algorithm.clone(),
            digits: account.digits,
            period: account.period,
            enrolled_at: account.enrolled_at,
            last_step: account.last_step,
            limits: account.limits.into(),
            skew: account.skew,
            max_failures: account.max_failures,
            lockout_seconds: account.lockout_seconds,
            recovery_salt: account.recovery.salt.clone(),
            recovery: account.recovery.hashes.clone(),
            remembered: account
                .remembered
                .iter()
                .map(|r| Device {
                    rhost: r.rhost.clone(),
                    until: r.until,
                    key: r.key.clone(),
                    service: r.service.clone(),
                })
                .collect(),
            push_blocked_since: account.push_blocked_since,
            limits_by_address: account
                .limits_by_address
                .iter()
                .map(|(k, s)| (k.clone(), (*s).into()))
                .collect(),
            phones: account.phones.iter().map(PhoneRecord::of).collect(),
        }
    }

    /// The account kept; an error names what does not decode.
    pub fn into_account(mut self) -> Result<Account, String> {
        let phones = self.phones.iter().map(PhoneRecord::phone).collect::<Result<_, _>>()?;
        Ok(Account {
            secret: std::mem::take(&mut self.secret),
            algorithm: std::mem::take(&mut self.algorithm),
            digits: self.digits,
            period: self.period,
            enrolled_at: self.enrolled_at,
            last_step: self.last_step,
            limits: self.limits.into(),
            skew: self.skew,
            max_failures: self.max_failures,
            lockout_seconds: self.lockout_seconds,
            recovery: RecoveryHashes {
                salt: std::mem::take(&mut self.recovery_salt),
                hashes: std::mem::take(&mut self.recovery),
            },
            remembered: std::mem::take(&mut self.remembered)
                .into_iter()
                .map(|d| Remembered {
                    rhost: d.rhost,
                    until: d.until,
                    key: d.key,
                    service: d.service,
                })
                .collect(),
            push_blocked_since: self.push_blocked_since,
            limits_by_address: std::mem::take(&mut self.limits_by_address)
                .into_iter()
                .map(|(k, l)| (k, l.into()))
                .collect(),
            phones,
        })
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

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |error| StorageError::Io { place: path.display().to_string(), error }
}

fn corrupt(path: &Path, message: impl Into<String>) -> StorageError {
    StorageError::Corrupt { place: path.display().to_string(), message: message.into() }
}

/// The files below one state directory.
#[derive(Debug, Clone)]
pub struct FileRecords {
    users: PathBuf,
}

/// The file store: [`FileRecords`] with the core's per-user locking.
pub type FileStore = Locked<FileRecords>;

/// Opens (and creates, mode 0700) `<state_dir>/users`. Refuses a state
/// directory that others can write, and removes temp files left by a crash.
pub fn open(state_dir: &Path) -> Result<FileStore, StorageError> {
    FileRecords::open(state_dir).map(Locked::new)
}

impl FileRecords {
    /// Opens (and creates, mode 0700) `<state_dir>/users`. Refuses a state
    /// directory that others can write, and removes temp files left by a crash.
    pub fn open(state_dir: &Path) -> Result<FileRecords, StorageError> {
        let users = state_dir.join("users");
        for dir in [state_dir, users.as_path()] {
            match fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(dir)(e)),
            }
            let meta = fs::symlink_metadata(dir).map_err(io_err(dir))?;
            if !meta.is_dir() {
                return Err(corrupt(dir, "is not a directory"));
            }
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(corrupt(
                    dir,
                    "is open to group or others: chmod 0700 it (it holds secrets)",
                ));
            }
        }
        let store = FileRecords { users };
        store.remove_stale_temp_files()?;
        store.check_file_modes()?;
        Ok(store)
    }

    fn path_of(&self, user: &Username) -> PathBuf {
        self.users.join(format!("{user}{SUFFIX}"))
    }

    /// Moves `user`'s file out of the store, into `<state_dir>/imported/`
    /// (mode 0700): kept for the record, never read as an enrollment
    /// again (after it moved into a database). Returns where it went.
    pub fn set_aside(&self, user: &Username) -> Result<PathBuf, StorageError> {
        let dir = self.users.parent().unwrap_or(&self.users).join("imported");
        fs::DirBuilder::new().mode(0o700).recursive(true).create(&dir).map_err(io_err(&dir))?;
        let to = dir.join(format!("{user}{SUFFIX}"));
        fs::rename(self.path_of(user), &to).map_err(io_err(&to))?;
        Ok(to)
    }

    fn remove_stale_temp_files(&self) -> Result<(), StorageError> {
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
    fn check_file_modes(&self) -> Result<(), StorageError> {
        for entry in fs::read_dir(&self.users).map_err(io_err(&self.users))? {
            let entry = entry.map_err(io_err(&self.users))?;
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
            if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
                return Err(corrupt(
                    &path,
                    "is not a private regular file: chmod 0600 it (it holds a secret)",
                ));
            }
        }
        Ok(())
    }

    /// The user's file, parsed; `None` when the user is not enrolled.
    pub fn load_record(&self, user: &Username) -> Result<Option<Record>, StorageError> {
        let path = self.path_of(user);
        let text = match fs::read_to_string(&path) {
            Ok(text) => zeroize::Zeroizing::new(text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        parse_record(&text).map(Some).map_err(|message| corrupt(&path, message))
    }

    /// Writes the user's file. Always complete on disk before it replaces
    /// the old one (never torn); `durable` also syncs the directory, so
    /// that the new contents survive a power loss right after.
    fn write(&self, user: &Username, record: &Record, durable: bool) -> Result<(), StorageError> {
        let path = self.path_of(user);
        let text = toml::to_string(record)
            .map(zeroize::Zeroizing::new)
            .map_err(|e| corrupt(&path, e.to_string()))?;
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

    /// The names of all users with a store file, sorted (readable or not).
    pub fn names(&self) -> Result<Vec<Username>, StorageError> {
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

    fn sync_dir(&self) -> Result<(), StorageError> {
        let dir = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc_o_directory())
            .open(&self.users)
            .map_err(io_err(&self.users))?;
        dir.sync_all().map_err(io_err(&self.users))
    }
}

impl Records for FileRecords {
    fn load(&self, user: &Username) -> Result<Option<Account>, StorageError> {
        let Some(record) = self.load_record(user)? else { return Ok(None) };
        record.into_account().map(Some).map_err(|message| corrupt(&self.path_of(user), message))
    }

    fn save(
        &self,
        user: &Username,
        account: &Account,
        durability: Durability,
    ) -> Result<(), StorageError> {
        self.write(user, &Record::of(account), durability == Durability::Durable)
    }

    fn remove(&self, user: &Username) -> Result<bool, StorageError> {
        let path = self.path_of(user);
        match fs::remove_file(&path) {
            Ok(()) => self.sync_dir().map(|()| true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    fn users(&self) -> Result<Vec<(Username, u64)>, StorageError> {
        let mut out = Vec::new();
        for user in self.names()? {
            match self.load_record(&user) {
                Ok(Some(record)) => out.push((user, record.enrolled_at)),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(user = %user, error = %e, "skipping unreadable store file")
                }
            }
        }
        Ok(out)
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
            limits: Limits { failures: 2, lockouts: 1, locked_until: 5 },
            skew: Some(2),
            max_failures: None,
            lockout_seconds: Some(30),
            recovery_salt: "00ff".into(),
            recovery: vec!["ab".repeat(32)],
            remembered: vec![Device {
                rhost: "192.0.2.7".into(),
                until: 9,
                key: "ab".repeat(32),
                service: "sshd".into(),
            }],
            push_blocked_since: 0,
            limits_by_address: Default::default(),
            phones: Vec::new(),
        }
    }

    fn user(name: &str) -> Username {
        Username::parse(name).unwrap()
    }

    fn save(store: &FileRecords, name: &str, record: Record) {
        store.save(&user(name), &record.into_account().unwrap(), Durability::Durable).unwrap();
    }

    #[test]
    fn the_format_holds_every_field_of_an_account() {
        assert_eq!(Record::of(&record().into_account().unwrap()), record());
    }

    #[test]
    fn store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileRecords::open(&dir.path().join("state")).unwrap();
        assert_eq!(store.load(&user("alice")).unwrap(), None);
        save(&store, "alice", record());
        assert_eq!(store.load_record(&user("alice")).unwrap(), Some(record()));
        assert_eq!(store.users().unwrap(), vec![(user("alice"), 1_700_000_000)]);
        assert!(store.remove(&user("alice")).unwrap());
        assert!(!store.remove(&user("alice")).unwrap());
        assert_eq!(store.load(&user("alice")).unwrap(), None);
    }

    #[test]
    fn store_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileRecords::open(&dir.path().join("state")).unwrap();
        save(&store, "bob", record());
        let mode =
            fs::metadata(dir.path().join("state/users/bob.toml")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = fs::metadata(dir.path().join("state/users")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_corrupt_file_is_reported_and_others_are_unharmed() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileRecords::open(&dir.path().join("state")).unwrap();
        save(&store, "good", record());
        fs::write(dir.path().join("state/users/bad.toml"), "secret = [").unwrap();
        assert!(matches!(store.load(&user("bad")), Err(StorageError::Corrupt { .. })));
        assert_eq!(store.load_record(&user("good")).unwrap(), Some(record()));
        assert_eq!(
            store.users().unwrap(),
            vec![(user("good"), 1_700_000_000)],
            "the bad one is left out"
        );
    }

    #[test]
    fn stale_temp_files_are_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        FileRecords::open(&dir.path().join("state")).unwrap();
        let stale = dir.path().join("state/users/.tmp-crashed");
        fs::write(&stale, "half").unwrap();
        FileRecords::open(&dir.path().join("state")).unwrap();
        assert!(!stale.exists());
    }

    #[test]
    fn a_state_directory_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        fs::create_dir(&state).unwrap();
        fs::set_permissions(&state, fs::Permissions::from_mode(0o755)).unwrap();
        let err = FileRecords::open(&state).unwrap_err();
        assert!(err.to_string().contains("open to group or others"), "{err}");
    }

    #[test]
    fn a_store_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileRecords::open(&dir.path().join("state")).unwrap();
        save(&store, "carol", record());
        let file = dir.path().join("state/users/carol.toml");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let err = FileRecords::open(&dir.path().join("state")).unwrap_err();
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
