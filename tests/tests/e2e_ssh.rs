//! End to end, as root: the real system bus with the packaged policy, mfad
//! as the `pam-mfa` user, a test account, and a real sshd whose PAM stack
//! has pam_mfa.so. The code comes from oathtool; OpenSSH logs in through
//! keyboard-interactive, driven by expect.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use pam_mfa_tests::system::{
    ensure_user, require_root, Login, Scratch, Sshd, SystemBus, SystemMfad,
};

const USER: &str = "mfa-e2e";

use pam_mfa_tests::wrong_code as wrong;

#[test]
fn ssh_login_with_a_code_then_replay_and_wrong_code_are_refused() {
    require_root();
    let _bus = SystemBus::ensure();
    let scratch = Scratch::new();
    ensure_user(USER, false);
    let mfad = SystemMfad::start(&scratch, "");
    let app = mfad.enroll(&scratch, USER);
    let module = scratch.path("libpam_mfa.so");
    let sshd = Sshd::start(
        &scratch,
        "sshd-mfa-e2e",
        USER,
        &format!(
            "auth required {} max_prompts=1 config={}",
            module.display(),
            mfad.config.display()
        ),
    );

    let code = app.code_now();
    let (login, screen) = sshd.login(USER, &code);
    assert_eq!(login, Login::LoggedIn, "screen:\n{screen}\nsshd:\n{}", sshd.log_text());
    assert!(screen.contains(&format!("logged-in-as-{USER}")), "{screen}");
    assert!(
        sshd.log_text().contains(&format!("Accepted keyboard-interactive/pam for {USER}")),
        "{}",
        sshd.log_text()
    );

    let (login, screen) = sshd.login(USER, &code);
    assert_eq!(login, Login::Denied, "replayed code: {screen}");
    assert!(mfad.log_text().contains("result=\"replayed\""), "{}", mfad.log_text());

    let (login, screen) = sshd.login(USER, &wrong(&app.code_now()));
    assert_eq!(login, Login::Denied, "wrong code: {screen}");
    assert!(mfad.log_text().contains("result=\"rejected\""), "{}", mfad.log_text());

    // mfad ran as its service user, and logged no code.
    let status = std::fs::read_to_string(format!("/proc/{}/status", mfad.pid())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap().to_string();
    let service_uid = nix::unistd::User::from_name("pam-mfa").unwrap().unwrap().uid.as_raw();
    assert!(uid_line.split_whitespace().nth(1) == Some(&service_uid.to_string()), "{uid_line}");
    assert!(!mfad.log_text().contains(&code));
}
