//! Names fixed by the design, so that code, bus policy and packaging agree.

/// Well-known bus name owned by mfad.
pub const BUS_NAME: &str = "io.github.pam_mfa";
/// The one object mfad serves.
pub const OBJECT_PATH: &str = "/io/github/pam_mfa";
/// The PAM side: root only (policy and daemon).
pub const PAM_INTERFACE: &str = "io.github.pam_mfa.Pam1";
/// Self-service enrollment: everyone, for themselves (daemon-checked).
pub const ENROLL_INTERFACE: &str = "io.github.pam_mfa.Enroll1";
/// Approver agents: everyone, for their own challenges (daemon-checked).
pub const APPROVER_INTERFACE: &str = "io.github.pam_mfa.Approver1";
/// The web approver (mfa-web): its own user and root (policy and daemon).
pub const WEB_INTERFACE: &str = "io.github.pam_mfa.Web1";
/// Administration: root only.
pub const ADMIN_INTERFACE: &str = "io.github.pam_mfa.Admin1";
/// Prefix of the D-Bus error names mfad returns.
pub const ERROR_PREFIX: &str = "io.github.pam_mfa.Error";

/// The system bus, named explicitly: the address is never taken from the
/// environment of a (possibly setuid) caller.
pub const SYSTEM_BUS_ADDRESS: &str = "unix:path=/run/dbus/system_bus_socket";
pub const DEFAULT_CONFIG_PATH: &str = "/etc/pam-mfa/config.toml";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/pam-mfa";
/// The system user mfad runs as.
pub const SERVICE_USER: &str = "pam-mfa";
