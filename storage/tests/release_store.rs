//! Files written by the current release (0.1, format 1; made by its mfad's
//! own code, `tests/release-0.1/`) keep working: the same codes, replay
//! refusals, recovery codes, remembered devices, counted failures and
//! push block. Also: what the store keeps of recovery codes is hashed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use pam_mfa_config::schema::{Algorithm, Config, LimitScope, Ranged};
use pam_mfa_core::account::Device;
use pam_mfa_core::service::Service;
use pam_mfa_core::totp::{code_at, Params};
use pam_mfa_protocol::username::Username;
use pam_mfa_protocol::wire::VerifyOutcome;
use pam_mfa_storage::file;

/// When the release wrote the files (mid-step).
const T: u64 = 1_790_000_010;

struct Urandom;

impl pam_mfa_core::random::Random for Urandom {
    fn fill(&self, buf: &mut [u8]) -> std::io::Result<()> {
        use std::io::Read;
        fs::File::open("/dev/urandom")?.read_exact(buf)
    }
}

/// A copy of the release's state directory (opening a store may tidy it).
fn release_state() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let users = state.join("users");
    fs::create_dir_all(&users).unwrap();
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/release-0.1/users");
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let to = users.join(entry.file_name());
        fs::copy(entry.path(), &to).unwrap();
        fs::set_permissions(&to, fs::Permissions::from_mode(0o600)).unwrap();
    }
    for d in [&state, &users] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o700)).unwrap();
    }
    dir
}

fn service(state: &Path) -> Service {
    let mut config = Config::default();
    config.remember.seconds = Ranged::clamped(86400);
    config.limits.scope = LimitScope::UserAddress;
    let store = Arc::new(file::open(state).unwrap());
    Service::new(config, store, Box::new(Urandom), "newhost")
}

fn user(name: &str) -> Username {
    Username::parse(name).unwrap()
}

fn params() -> Params {
    Params { algorithm: Algorithm::Sha1, digits: 6, period: 30 }
}

fn secret_of(state: &Path, name: &str) -> Vec<u8> {
    let text = fs::read_to_string(state.join(format!("users/{name}.toml"))).unwrap();
    let line = text.lines().find(|l| l.starts_with("secret = ")).unwrap();
    let b32 = line.trim_start_matches("secret = ").trim_matches('"');
    totp_rs::Secret::try_from_base32(b32).unwrap().as_ref().to_vec()
}

#[test]
fn an_imported_enrollment_of_the_release_works_as_before() {
    let dir = release_state();
    let state = dir.path().join("state");
    let svc = service(&state);
    let legacy = user("legacy");
    let status = svc.status(&legacy, T).unwrap().unwrap();
    assert_eq!((status.enrolled_at, status.recovery_left, status.locked_for), (T, 1, 0));
    assert_eq!(svc.push_blocked(&legacy).unwrap(), Some(T));
    let context: HashMap<String, String> = [
        ("ssh_key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFixture"),
        ("rhost", "192.0.2.7"),
        ("service", "sshd"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let device = Device::of(&context).unwrap();
    assert!(svc.is_remembered(&legacy, &device, T + 100).unwrap(), "the remembered key");
    let secret = secret_of(&state, "legacy");
    // The step the release accepted stays used; the next one signs in once.
    let used = code_at(&secret, params(), T);
    assert_eq!(svc.verify(&legacy, &used, T + 5).unwrap().outcome, VerifyOutcome::Replayed);
    // The spent scratch code stays spent; the other one works once.
    assert_eq!(svc.verify(&legacy, "11223344", T + 5).unwrap().outcome, VerifyOutcome::Rejected);
    assert_eq!(
        svc.verify(&legacy, "55667788", T + 5).unwrap().outcome,
        VerifyOutcome::RecoveryAccepted
    );
    // Its imported RATE_LIMIT (3 failures) still counts, per address: the
    // release counted one failure from 198.51.100.9.
    let bad = "000000";
    for _ in 0..2 {
        let v = svc.verify_from(&legacy, bad, "198.51.100.9", "sshd", None, T + 6).unwrap();
        assert_eq!(v.outcome, VerifyOutcome::Rejected);
    }
    let locked = svc.verify_from(&legacy, bad, "198.51.100.9", "sshd", None, T + 6).unwrap();
    assert_eq!(locked.outcome, VerifyOutcome::LockedOut, "the release's failure counted");
    let next = code_at(&secret, params(), T + 30);
    assert_eq!(svc.verify(&legacy, &next, T + 30).unwrap().outcome, VerifyOutcome::Accepted);
    assert_eq!(svc.push_blocked(&legacy).unwrap(), None, "a code login ends the block");
    // What the new code wrote, the release's format still holds (version 1).
    let text = fs::read_to_string(state.join("users/legacy.toml")).unwrap();
    assert!(text.starts_with("version = 1\n"), "{text}");
}

#[test]
fn a_confirmed_enrollment_of_the_release_works_as_before() {
    let dir = release_state();
    let state = dir.path().join("state");
    let svc = service(&state);
    let enrolled = user("enrolled");
    assert_eq!(svc.list().unwrap(), vec![(enrolled.clone(), T), (user("legacy"), T)]);
    let secret = secret_of(&state, "enrolled");
    let confirming = code_at(&secret, params(), T);
    assert_eq!(svc.verify(&enrolled, &confirming, T).unwrap().outcome, VerifyOutcome::Replayed);
    let codes = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/release-0.1/enrolled-recovery-codes"),
    )
    .unwrap();
    let first = codes.lines().next().unwrap();
    assert_eq!(
        svc.verify(&enrolled, first, T + 1).unwrap().outcome,
        VerifyOutcome::RecoveryAccepted
    );
    assert_eq!(svc.status(&enrolled, T + 1).unwrap().unwrap().recovery_left, 9);
}

#[test]
fn recovery_codes_are_stored_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let svc = service(&state);
    let bob = user("bob");
    let started = svc.begin(&bob, false, "", false, T).unwrap();
    let b32 = started.uri.split("secret=").nth(1).unwrap().split('&').next().unwrap();
    let secret = totp_rs::Secret::try_from_base32(b32).unwrap().as_ref().to_vec();
    let codes = svc.confirm(&bob, &code_at(&secret, params(), T), T).unwrap();
    let stored = fs::read_to_string(state.join("users/bob.toml")).unwrap();
    for code in &codes {
        assert!(!stored.contains(code.as_str()), "{code:?} is in the file");
        assert!(!stored.contains(&code.replace('-', "")), "{code:?} is in the file");
    }
}
