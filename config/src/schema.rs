//! The one schema of `/etc/pam-mfa/config.toml`.
//!
//! Every key has a default, so a machine with no file works. Unknown keys and
//! values out of range are refused with the file, line and column and what is
//! allowed. What each key means is written once, in [`crate::reference`]
//! (the text of pam-mfa.toml(5) and of the example file, which take their
//! defaults from here); its tests fail when a key or a range here differs
//! from what it says.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use pam_mfa_protocol::names;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub issuer: Issuer,
    pub state_dir: AbsolutePath,
    pub language: Language,
    pub totp: TotpConfig,
    pub limits: Limits,
    pub enroll: EnrollConfig,
    pub push: PushConfig,
    pub policy: PolicyConfig,
    pub remember: RememberConfig,
    pub bus: BusConfig,
    pub store: StoreConfig,
    pub web: WebConfig,
}

/// What the PAM module reads of the config: only the keys it uses, each
/// checked as in [`Config`]. The rest (`issuer`, `state_dir`, `[totp]`,
/// `[limits]`, `[enroll]`) is mfad's: the module does not read it, so a
/// mistake there is mfad's to refuse and does not stop sudo.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct ModuleConfig {
    pub language: Language,
    pub push: PushConfig,
    pub policy: PolicyConfig,
    pub remember: RememberConfig,
    pub bus: BusConfig,
}

/// `[totp]`: parameters of new enrollments (RFC 6238).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TotpConfig {
    pub algorithm: Algorithm,
    pub digits: Ranged<6, 8>,
    pub period: Ranged<15, 300>,
    pub skew: Ranged<0, 10>,
}

/// `[limits]`: rate limiting of failed attempts, per user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_failures: Ranged<1, 100>,
    pub lockout_seconds: Ranged<1, 86_400>,
    pub lockout_max_seconds: Ranged<1, 604_800>,
    pub scope: LimitScope,
}

/// `[limits] scope`: see [`Limits`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum LimitScope {
    #[default]
    #[serde(rename = "user")]
    User,
    #[serde(rename = "user+address")]
    UserAddress,
}

/// `[enroll]`: the setup of a new enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrollConfig {
    pub pending_seconds: Ranged<1, 3600>,
    pub confirm_tries: Ranged<1, 10>,
    pub require_account: bool,
}

impl Default for EnrollConfig {
    fn default() -> Self {
        EnrollConfig {
            pending_seconds: Ranged(300),
            confirm_tries: Ranged(5),
            require_account: true,
        }
    }
}

/// `[policy]`: who must use a second factor. Users it does not cover get
/// PAM_IGNORE (the rest of the stack decides).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    pub require_groups: Vec<String>,
    pub exempt_users: Vec<String>,
    pub exempt_groups: Vec<String>,
    pub enroll_deadline: Deadline,
}

/// An optional `YYYY-MM-DD` date, as days since 1970-01-01.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Deadline(pub Option<i64>);

impl Serialize for Deadline {
    /// As written: "" for none, else the date ("YYYY-MM-DD").
    fn serialize<S: serde::Serializer>(&self, to: S) -> Result<S::Ok, S::Error> {
        let date = self.0.map(|days| {
            let utc = pam_mfa_protocol::timefmt::utc(u64::try_from(days).unwrap_or(0) * 86_400);
            utc.chars().take(10).collect::<String>()
        });
        to.serialize_str(date.as_deref().unwrap_or(""))
    }
}

impl TryFrom<String> for Deadline {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        if value.is_empty() {
            return Ok(Deadline(None));
        }
        pam_mfa_protocol::timefmt::days_from_date(&value)
            .map(|d| Deadline(Some(d)))
            .ok_or_else(|| format!("{value:?} is not a date: use \"YYYY-MM-DD\" or \"\""))
    }
}

/// `[remember]`: skip the second factor for a while from an address that
/// just passed it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RememberConfig {
    pub seconds: Ranged<0, 2_592_000>,
    pub ssh_services: Vec<String>,
}

/// `[push]`: number matching, approved from `mfa-approve`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    pub timeout_seconds: Ranged<5, 600>,
    pub request_burst: Ranged<1, 1000>,
    pub request_every_seconds: Ranged<1, 3600>,
    pub approver_session: ApproverSession,
    pub allow_root_approval: bool,
    pub show_command: bool,
    pub show_remote_host: bool,
}

/// `approver_session`: see [`PushConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApproverSession {
    Mfa,
    Different,
    Any,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            timeout_seconds: Ranged(60),
            request_burst: Ranged(3),
            request_every_seconds: Ranged(20),
            approver_session: ApproverSession::Mfa,
            allow_root_approval: false,
            show_command: true,
            show_remote_host: true,
        }
    }
}

/// `[store]`: where mfad keeps enrollments: files on this host, or one
/// PostgreSQL database for a fleet of hosts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub backend: Backend,
    pub connection: Connection,
    pub password_file: MaybePath,
    pub ca_file: MaybePath,
    pub client_cert: MaybePath,
    pub client_key: MaybePath,
    pub connect_timeout_ms: Ranged<100, 30_000>,
    pub timeout_ms: Ranged<100, 60_000>,
    pub pool_size: Ranged<1, 64>,
    pub fallback: Fallback,
}

/// `[store] backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    File,
    Postgres,
}

/// `[store] fallback`: what a host does while its database is unreachable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    /// Refuse every second factor (fail closed).
    #[default]
    None,
    /// Check codes of users enrolled in this host's own file store only.
    Local,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: Backend::File,
            connection: Connection(String::new()),
            password_file: MaybePath(None),
            ca_file: MaybePath(None),
            client_cert: MaybePath(None),
            client_key: MaybePath(None),
            connect_timeout_ms: Ranged(1000),
            timeout_ms: Ranged(2500),
            pool_size: Ranged(4),
            fallback: Fallback::None,
        }
    }
}

/// A libpq connection string with no password in it (the config file is
/// readable by the PAM module's processes; a password goes in a file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct Connection(String);

impl Connection {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Connection {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        let lower = value.to_ascii_lowercase();
        let url_password = ["postgres://", "postgresql://"].iter().any(|scheme| {
            lower
                .strip_prefix(scheme)
                .and_then(|rest| rest.split(['@', '/']).next().filter(|_| rest.contains('@')))
                .is_some_and(|userinfo| userinfo.contains(':'))
        });
        if lower.contains("password") || url_password {
            return Err("the connection string holds a password: put it in password_file (mode 0600) instead".into());
        }
        Ok(Connection(value))
    }
}

/// `[web]`: the phone approver (mfa-web), and what mfad checks of it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    pub public_url: PublicUrl,
    pub listen: Listen,
    pub certificate: MaybePath,
    pub key: MaybePath,
    pub user: SystemUser,
    pub session_seconds: Ranged<60, 3600>,
    pub link_seconds: Ranged<60, 1800>,
    pub connection: Connection,
    pub password_file: MaybePath,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            public_url: PublicUrl(String::new()),
            listen: Listen(std::net::SocketAddr::from(([0, 0, 0, 0], 8443))),
            certificate: MaybePath(None),
            key: MaybePath(None),
            user: SystemUser("pam-mfa-web".into()),
            session_seconds: Ranged(600),
            link_seconds: Ranged(300),
            connection: Connection(String::new()),
            password_file: MaybePath(None),
        }
    }
}

impl WebConfig {
    /// The relying-party id of passkeys: the host of `public_url`.
    pub fn rp_id(&self) -> Option<&str> {
        self.public_url.host()
    }
}

/// `https://host[:port]` with no path, or "" (no web approver). It is the
/// WebAuthn origin: passkeys are bound to its host.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct PublicUrl(String);

impl PublicUrl {
    /// The origin, e.g. `https://approver.example:8443`; `None` when unset.
    pub fn origin(&self) -> Option<&str> {
        (!self.0.is_empty()).then_some(self.0.as_str())
    }

    pub fn host(&self) -> Option<&str> {
        let rest = self.0.strip_prefix("https://")?;
        Some(rest.rsplit_once(':').map_or(rest, |(host, _)| host))
    }
}

impl TryFrom<String> for PublicUrl {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        if value.is_empty() {
            return Ok(PublicUrl(value));
        }
        let value = value.trim_end_matches('/').to_string();
        let bad = || {
            format!("{value:?} is not https://host or https://host:port (no path; a DNS name, as passkeys need)")
        };
        let rest = value.strip_prefix("https://").ok_or_else(bad)?;
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        };
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })
            && !host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
        if !host_ok || !port_ok {
            return Err(bad());
        }
        Ok(PublicUrl(value))
    }
}

impl From<PublicUrl> for String {
    fn from(u: PublicUrl) -> String {
        u.0
    }
}

/// An address and port to listen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Listen(pub std::net::SocketAddr);

impl TryFrom<String> for Listen {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        value.parse().map(Listen).map_err(|_| {
            format!("{value:?} is not an address and port, e.g. \"0.0.0.0:8443\" or \"[::]:8443\"")
        })
    }
}

impl From<Listen> for String {
    fn from(l: Listen) -> String {
        l.0.to_string()
    }
}

/// The name of a system account.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct SystemUser(String);

impl SystemUser {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SystemUser {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        match pam_mfa_protocol::username::Username::parse(&value) {
            Ok(_) => Ok(SystemUser(value)),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl From<SystemUser> for String {
    fn from(u: SystemUser) -> String {
        u.0
    }
}

/// An absolute path, or "" for none.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct MaybePath(Option<PathBuf>);

impl MaybePath {
    pub fn get(&self) -> Option<&Path> {
        self.0.as_deref()
    }
}

impl TryFrom<String> for MaybePath {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        if value.is_empty() {
            return Ok(MaybePath(None));
        }
        AbsolutePath::try_from(value).map(|p| MaybePath(Some(p.0)))
    }
}

impl From<MaybePath> for String {
    fn from(p: MaybePath) -> String {
        p.0.map(|p| p.display().to_string()).unwrap_or_default()
    }
}

/// `[bus]`: where mfad and its clients meet.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusConfig {
    pub address: BusAddress,
    pub timeout_ms: Ranged<100, 60_000>,
    pub service_user: ServiceUser,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            issuer: Issuer("pam-mfa".into()),
            state_dir: AbsolutePath(PathBuf::from(names::DEFAULT_STATE_DIR)),
            language: Language::default(),
            totp: TotpConfig::default(),
            limits: Limits::default(),
            enroll: EnrollConfig::default(),
            push: PushConfig::default(),
            policy: PolicyConfig::default(),
            remember: RememberConfig::default(),
            bus: BusConfig::default(),
            store: StoreConfig::default(),
            web: WebConfig::default(),
        }
    }
}

impl Default for TotpConfig {
    fn default() -> Self {
        TotpConfig {
            algorithm: Algorithm::Sha1,
            digits: Ranged(6),
            period: Ranged(30),
            skew: Ranged(1),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_failures: Ranged(5),
            lockout_seconds: Ranged(30),
            lockout_max_seconds: Ranged(3600),
            scope: LimitScope::User,
        }
    }
}

impl Default for RememberConfig {
    fn default() -> Self {
        RememberConfig { seconds: Ranged(0), ssh_services: vec!["sshd".into()] }
    }
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            address: BusAddress(names::SYSTEM_BUS_ADDRESS.into()),
            timeout_ms: Ranged(3000),
            service_user: ServiceUser(names::SERVICE_USER.into()),
        }
    }
}

/// HMAC hash of the TOTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Algorithm {
    #[serde(rename = "SHA1")]
    Sha1,
    #[serde(rename = "SHA256")]
    Sha256,
    #[serde(rename = "SHA512")]
    Sha512,
}

impl Algorithm {
    /// The name used in the config file, the store and otpauth URIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    /// The inverse of [`Algorithm::as_str`].
    pub fn from_name(name: &str) -> Option<Self> {
        [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512]
            .into_iter()
            .find(|a| a.as_str() == name)
    }
}

/// An integer that must lie in `MIN..=MAX`; the error says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "i64")]
pub struct Ranged<const MIN: u64, const MAX: u64>(u64);

impl<const MIN: u64, const MAX: u64> Default for Ranged<MIN, MAX> {
    /// The smallest allowed value.
    fn default() -> Self {
        Ranged(MIN)
    }
}

impl<const MIN: u64, const MAX: u64> Ranged<MIN, MAX> {
    pub fn get(self) -> u64 {
        self.0
    }

    /// For building configs in code (tests); values outside the range are
    /// clamped into it.
    pub fn clamped(value: u64) -> Self {
        Ranged(value.clamp(MIN, MAX))
    }
}

impl<const MIN: u64, const MAX: u64> TryFrom<i64> for Ranged<MIN, MAX> {
    type Error = String;
    fn try_from(value: i64) -> Result<Self, String> {
        match u64::try_from(value) {
            Ok(v) if (MIN..=MAX).contains(&v) => Ok(Ranged(v)),
            _ => Err(format!("{value} is out of range: allowed is {MIN} to {MAX}")),
        }
    }
}

/// The otpauth issuer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct Issuer(String);

impl Issuer {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Issuer {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        let n = value.chars().count();
        if n == 0 || n > 64 || value.contains(':') || value.chars().any(char::is_control) {
            return Err(format!(
                "issuer {value:?} is not allowed: use 1 to 64 printable characters without ':'"
            ));
        }
        Ok(Issuer(value))
    }
}

/// `language`: "auto" or a built-in language.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct Language(String);

impl Language {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Language {
    fn default() -> Self {
        Language(crate::i18n::AUTO.to_string())
    }
}

impl TryFrom<String> for Language {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        if value == crate::i18n::AUTO || crate::i18n::languages().any(|l| l == value) {
            return Ok(Language(value));
        }
        let known: Vec<String> = crate::i18n::languages().map(|l| format!("{l:?}")).collect();
        Err(format!(
            "language {value:?} is not built in: use \"auto\" or one of {}",
            known.join(", ")
        ))
    }
}

/// An absolute path.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct AbsolutePath(PathBuf);

impl AbsolutePath {
    pub fn as_path(&self) -> &Path {
        &self.0
    }
}

impl TryFrom<String> for AbsolutePath {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        let path = PathBuf::from(&value);
        if !path.is_absolute() || value.contains('\0') {
            return Err(format!("{value:?} is not an absolute path"));
        }
        Ok(AbsolutePath(path))
    }
}

impl From<&Path> for AbsolutePath {
    fn from(path: &Path) -> Self {
        AbsolutePath(path.to_path_buf())
    }
}

/// A D-Bus address of a unix socket: `unix:path=…` or `unix:abstract=…`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct BusAddress(String);

impl BusAddress {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BusAddress {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        let ok = ["unix:path=/", "unix:abstract="]
            .iter()
            .any(|p| value.starts_with(p) && value.len() > p.len())
            && !value.contains(';');
        if !ok {
            return Err(format!(
                "bus address {value:?} is not allowed: use one \"unix:path=/absolute/socket\" or \"unix:abstract=name\""
            ));
        }
        Ok(BusAddress(value))
    }
}

/// The name of the account mfad runs as (a valid user name).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct ServiceUser(String);

impl ServiceUser {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ServiceUser {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        pam_mfa_protocol::username::Username::parse(&value)
            .map(|_| ServiceUser(value))
            .map_err(|e| format!("service_user: {e}"))
    }
}

/// Why a config file was refused: where, and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based line and column of the offending text, when known.
    pub position: Option<(usize, usize)>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, column)) => {
                write!(f, "{}:{line}:{column}: {}", self.path.display(), self.message)
            }
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads and validates `path` as a `T`; a missing file is an error.
fn load_as<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        position: None,
        message: format!("cannot read the config file: {e}"),
    })?;
    parse_as(path, &text)
}

/// The config a program was pointed at (`--config`, `config=`), which
/// must exist; else the default file, whose absence means defaults.
fn load_given_as<T: serde::de::DeserializeOwned + Default>(
    path: Option<&Path>,
) -> Result<T, ConfigError> {
    let path = match path {
        Some(path) => return load_as(path),
        None => Path::new(names::DEFAULT_CONFIG_PATH),
    };
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        _ => load_as(path),
    }
}

/// Parses `text` as the contents of `path` (used in error messages).
fn parse_as<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str::<T>(text).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        position: e.span().map(|span| line_column(text, span.start)),
        message: e.message().trim_end().to_string(),
    })
}

impl ModuleConfig {
    /// [`Config::load_given`] for the module's keys.
    pub fn load_given(path: Option<&Path>) -> Result<ModuleConfig, ConfigError> {
        load_given_as(path)
    }

    pub fn parse(path: &Path, text: &str) -> Result<ModuleConfig, ConfigError> {
        parse_as(path, text)
    }
}

impl Config {
    /// Reads and validates `path`; a missing file is an error.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        load_as(path)
    }

    /// Like [`Config::load`], but a file that does not exist gives the
    /// defaults (a machine with no config file works).
    pub fn load_or_default(path: &Path) -> Result<Config, ConfigError> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            _ => Config::load(path),
        }
    }

    /// The config a program was pointed at (`--config`, `config=`), which
    /// must exist; else the default file, whose absence means defaults.
    pub fn load_given(path: Option<&Path>) -> Result<Config, ConfigError> {
        load_given_as(path)
    }

    /// Like [`Config::load_given`], for the PAM module and mfad: the file
    /// (when there is one) must be one only root can change, as sshd's
    /// StrictModes asks of its files (see [`crate::trust`]).
    pub fn load_trusted(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::check_trusted(path)?;
        Config::load_given(path)
    }

    /// The trust half of [`Config::load_trusted`]: Ok for a file only root
    /// can change, and for a missing file (loading then says what that means).
    pub fn check_trusted(path: Option<&Path>) -> Result<(), ConfigError> {
        let file = path.unwrap_or(Path::new(names::DEFAULT_CONFIG_PATH));
        let absent = matches!(std::fs::symlink_metadata(file), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
        if !absent {
            crate::trust::only_root_can_change(file).map_err(|message| ConfigError {
                path: file.to_path_buf(),
                position: None,
                message: format!("not trusted: {message}"),
            })?;
        }
        Ok(())
    }

    /// Parses `text` as the contents of `path` (used in error messages).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        parse_as(path, text)
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/pam-mfa/config.toml"), text)
    }

    #[test]
    fn the_module_reads_its_keys_as_mfad_does_and_no_others() {
        let text = "language = \"nl\"\n[totp]\ndigits = 99\n[enroll]\nnot_a_key = 1\n\
                    [push]\nshow_command = false\n[remember]\nseconds = 600\n\
                    [bus]\ntimeout_ms = 900\n[policy]\nrequire_groups = [\"wheel\"]\n";
        let path = Path::new("/etc/pam-mfa/config.toml");
        let module = ModuleConfig::parse(path, text).unwrap();
        assert!(parse(text).is_err(), "mfad refuses the [totp] and [enroll] mistakes");
        let mfad = parse(&text.replace("digits = 99", "").replace("not_a_key = 1", "")).unwrap();
        assert_eq!(module.language, mfad.language);
        assert_eq!(module.push, mfad.push);
        assert_eq!(module.policy, mfad.policy);
        assert_eq!(module.remember, mfad.remember);
        assert_eq!(module.bus, mfad.bus);
        // A mistake in a key the module reads is the module's to refuse.
        let err = ModuleConfig::parse(path, "[bus]\ntimeout_ms = 0\n").unwrap_err();
        assert_eq!(err.position, Some((2, 14)), "{err}");
        let err = ModuleConfig::parse(path, "[push]\nnot_a_key = 1\n").unwrap_err();
        assert!(err.message.contains("not_a_key"), "{err}");
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn missing_file_gives_the_defaults_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.toml");
        assert_eq!(Config::load_or_default(&path).unwrap(), Config::default());
        let err = Config::load(&path).unwrap_err();
        assert!(err.message.contains("cannot read"), "{err}");
    }

    #[test]
    fn full_file_is_read() {
        let c = parse(
            "issuer = \"Example\"\nstate_dir = \"/tmp/x\"\n[totp]\nalgorithm = \"SHA256\"\ndigits = 8\nperiod = 60\nskew = 0\n\
             [limits]\nmax_failures = 3\nlockout_seconds = 10\nlockout_max_seconds = 100\n\
             [bus]\naddress = \"unix:path=/tmp/bus\"\ntimeout_ms = 500\n",
        )
        .unwrap();
        assert_eq!(c.issuer.as_str(), "Example");
        assert_eq!(c.totp.algorithm, Algorithm::Sha256);
        assert_eq!(c.totp.digits.get(), 8);
        assert_eq!(c.limits.max_failures.get(), 3);
        assert_eq!(c.bus.address.as_str(), "unix:path=/tmp/bus");
        assert_eq!(c.bus.timeout_ms.get(), 500);
    }

    #[test]
    fn unknown_key_names_line_column_and_allowed_keys() {
        let err = parse("issuer = \"x\"\n[totp]\ndigits = 6\nwindow = 3\n").unwrap_err();
        assert_eq!(err.position, Some((4, 1)), "{err}");
        assert!(err.message.contains("unknown field `window`"), "{err}");
        assert!(err.message.contains("skew"), "lists the allowed keys: {err}");
        assert!(err.to_string().starts_with("/etc/pam-mfa/config.toml:4:1: "));
    }

    #[test]
    fn out_of_range_value_names_its_position_and_range() {
        let err = parse("[totp]\ndigits = 9\n").unwrap_err();
        assert_eq!(err.position, Some((2, 10)), "{err}");
        assert!(err.message.contains("allowed is 6 to 8"), "{err}");
        let err = parse("[limits]\nmax_failures = -1\n").unwrap_err();
        assert_eq!(err.position, Some((2, 16)), "{err}");
    }

    #[test]
    fn bad_algorithm_lists_the_allowed_ones() {
        let err = parse("[totp]\n  algorithm = \"MD5\"\n").unwrap_err();
        assert_eq!(err.position, Some((2, 15)), "{err}");
        assert!(err.message.contains("SHA256"), "{err}");
    }

    #[test]
    fn bad_strings_are_refused() {
        for text in [
            "issuer = \"a:b\"",
            "issuer = \"\"",
            "state_dir = \"relative/dir\"",
            "[bus]\naddress = \"tcp:host=example.org,port=1\"",
            "[bus]\naddress = \"unix:path=/a;unix:path=/b\"",
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.position.is_some(), "{text}: {err}");
        }
    }

    #[test]
    fn syntax_error_has_a_position() {
        let err = parse("issuer = \n").unwrap_err();
        assert_eq!(err.position.map(|p| p.0), Some(1), "{err}");
    }
}
