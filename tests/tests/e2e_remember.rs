//! End to end, as root: remember this device ([remember] seconds) through a
//! real sshd with ExposeAuthInfo: a remembered device is the SSH key that
//! authenticated before the code, with the remote address and the service.
//! The same key from the same address skips the code; another key, another
//! address, a login without a key, or a recovery code is asked.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use pam_mfa_tests::system::{
    ensure_user, require_root, Login, Scratch, Sshd, SystemBus, SystemMfad,
};

#[test]
fn a_remembered_device_is_the_ssh_key_and_the_address_never_the_address_alone() {
    const USER: &str = "mfa-e2e-remember";
    require_root();
    let _bus = SystemBus::ensure();
    let scratch = Scratch::new();
    ensure_user(USER, false);
    // The test's sshd services are named after their links.
    let mfad = SystemMfad::start(
        &scratch,
        "[remember]\nseconds = 600\nssh_services = [\"sshd-mfa-remember\", \"sshd-mfa-remember-nokey\"]\n\
         [limits]\nmax_failures = 100\n",
    );
    let (app, recovery) =
        pam_mfa_tests::enroll_json(&scratch.path("mfa-enroll"), &mfad.config, USER);
    let line = format!(
        "auth required {} max_prompts=1 config={}",
        scratch.path("libpam_mfa.so").display(),
        mfad.config.display()
    );
    let sshd = Sshd::start(&scratch, "sshd-mfa-remember", USER, &line);
    // A second key of the user's (say, a colleague's on the same bastion).
    let other = scratch.path("other_key");
    pam_mfa_tests::system::run(
        std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", ""])
            .arg("-f")
            .arg(&other),
    );
    let account = nix::unistd::User::from_name(USER).unwrap().unwrap();
    let keys = account.dir.join(".ssh/authorized_keys");
    let mut authorized = std::fs::read_to_string(&keys).unwrap();
    authorized.push_str(&std::fs::read_to_string(other.with_extension("pub")).unwrap());
    std::fs::write(&keys, authorized).unwrap();
    let mine = sshd.client_key.clone();
    let codes = app.codes_from(pam_mfa_tests::now(), 2);
    let login = |key: &std::path::Path, from: &str, code: &str| {
        let (login, screen) = sshd.login_as(key, from, USER, code, "true");
        (login, format!("{screen}\nsshd:\n{}", sshd.log_text()))
    };

    let (l, s) = login(&mine, "127.0.0.1", &codes[0]);
    assert_eq!(l, Login::LoggedIn, "{s}");
    let (l, s) = login(&mine, "127.0.0.1", "000000");
    assert_eq!(l, Login::NotAsked, "the same key from the same address: {s}");
    let (l, s) = login(&other, "127.0.0.1", "000000");
    assert_eq!(l, Login::Denied, "another key from the same address is asked: {s}");
    let (l, s) = login(&mine, "127.0.0.2", "000000");
    assert_eq!(l, Login::Denied, "the same key from another address is asked: {s}");
    // A recovery code is never remembered.
    let (l, s) = login(&other, "127.0.0.2", &recovery[0]);
    assert_eq!(l, Login::LoggedIn, "{s}");
    let (l, s) = login(&other, "127.0.0.2", "000000");
    assert_eq!(l, Login::Denied, "after a recovery code: asked again: {s}");

    // keyboard-interactive alone (no key): never remembered.
    let password_only = Scratch::new();
    password_only.share_client_key(&scratch);
    let no_key = pam_mfa_tests::system::Sshd::start_with(
        &password_only,
        "sshd-mfa-remember-nokey",
        USER,
        &line,
        "keyboard-interactive",
        "session required pam_permit.so",
    );
    let (l, s) = no_key.login_as(&mine, "127.0.0.3", USER, &codes[1], "true");
    assert_eq!(l, Login::LoggedIn, "{s}");
    let (l, s) = no_key.login_as(&mine, "127.0.0.3", USER, "000000", "true");
    assert_eq!(l, Login::Denied, "no key, nothing remembered: {s}");

    // Forgetting: the remembered key is asked again.
    let out = std::process::Command::new(scratch.path("mfa-enroll"))
        .args(["--config"])
        .arg(&mfad.config)
        .args(["--forget-devices", "--user", USER])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("forgotten: 1"), "{out:?}");
    let (l, s) = login(&mine, "127.0.0.1", "000000");
    assert_eq!(l, Login::Denied, "forgotten: {s}");
    // The journal of mfad never holds a key.
    let pub_key = std::fs::read_to_string(mine.with_extension("pub")).unwrap();
    let blob = pub_key.split_whitespace().nth(1).unwrap();
    assert!(!mfad.log_text().contains(blob));
}
