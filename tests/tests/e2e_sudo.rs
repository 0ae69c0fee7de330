//! End to end, as root: number matching for sudo. The system bus with the
//! packaged policy, mfad as `pam-mfa`, a test user with two real SSH
//! sessions (each its own audit session through pam_loginuid), and a sudo
//! whose PAM service has pam_mfa.so in push mode. Session 1 runs
//! `sudo -k true`; session 2 runs `mfa-approve` and types the number.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use pam_mfa_tests::system::{
    ensure_user, require_root, Scratch, Sshd, SudoService, SystemBus, SystemMfad,
};

const USER: &str = "mfa-e2e-sudo";

struct Flow {
    code: Option<i32>,
    session1: String,
    session2: String,
}

fn sudo_flow(scratch: &Scratch, sshd: &Sshd, mfad: &SystemMfad, mode: &str) -> Flow {
    let logs = tempfile::tempdir().unwrap();
    let (log1, log2) = (logs.path().join("s1"), logs.path().join("s2"));
    let out = pam_mfa_tests::command("expect")
        .arg(pam_mfa_tests::workspace().join("tests/data/sudo-push.exp"))
        .arg(&sshd.client_key)
        .arg(sshd.port.to_string())
        .arg(USER)
        .arg(scratch.path("mfa-approve"))
        .arg(&mfad.config)
        .arg(mode)
        .arg(&log1)
        .arg(&log2)
        .output()
        .expect("expect not found: apt-get install expect");
    let read =
        |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default().replace('\r', "");
    let flow = Flow { code: out.status.code(), session1: read(&log1), session2: read(&log2) };
    if !out.stderr.is_empty() {
        println!("--- {mode}: expect said ---\n{}", String::from_utf8_lossy(&out.stderr));
    }
    println!("--- {mode}: session 1 (sudo) ---\n{}", flow.session1);
    println!("--- {mode}: session 2 (mfa-approve) ---\n{}", flow.session2);
    flow
}

#[test]
fn sudo_is_approved_from_another_ssh_session_and_refused_otherwise() {
    require_root();
    let _bus = SystemBus::ensure();
    let scratch = Scratch::new();
    ensure_user(USER, false);
    // Key-only sessions here: the rule under test is "another session"
    // ("different"); e2e_approver_sessions.rs holds the default, "mfa".
    // Four requests in a row: more than the default burst.
    let mfad = SystemMfad::start(
        &scratch,
        "[push]\ntimeout_seconds = 8\napprover_session = \"different\"\nrequest_burst = 10\n",
    );
    mfad.enroll(&scratch, USER);
    let module = scratch.path("libpam_mfa.so");
    let _sudo = SudoService::install(
        USER,
        "sudo-mfa-e2e",
        &format!("auth required {} mode=push config={}", module.display(), mfad.config.display()),
    );
    let sshd = Sshd::start_with(
        &scratch,
        "sshd-mfa-e2e-sudo",
        USER,
        "auth required pam_deny.so",
        "publickey",
        "session required pam_loginuid.so",
    );

    let ok = sudo_flow(&scratch, &sshd, &mfad, "approve");
    assert_eq!(ok.code, Some(0), "sudo was not approved");
    assert!(ok.session1.contains("SUDO-EXIT=0"));
    assert!(ok.session2.contains("Sign-in request for mfa-e2e-sudo"), "{}", ok.session2);
    assert!(ok.session2.contains("service:     sudo-mfa-e2e"), "{}", ok.session2);
    assert!(ok.session2.contains("terminal:    /dev/pts/"), "{}", ok.session2);
    assert!(ok.session2.contains("command:     sudo -k true"), "{}", ok.session2);
    assert!(ok.session2.contains("Approved."), "{}", ok.session2);

    let wrong = sudo_flow(&scratch, &sshd, &mfad, "wrong");
    assert_eq!(wrong.code, Some(1));
    assert!(wrong.session1.contains("A wrong number was typed"), "{}", wrong.session1);
    assert!(wrong.session2.contains("wrong number"), "{}", wrong.session2);

    let same = sudo_flow(&scratch, &sshd, &mfad, "same");
    assert_eq!(same.code, Some(1));
    assert!(same.session1.contains("another login session"), "{}", same.session1);
    assert!(same.session1.contains("No approval came in time"), "{}", same.session1);

    let none = sudo_flow(&scratch, &sshd, &mfad, "none");
    assert_eq!(none.code, Some(1));
    assert!(none.session1.contains("No approval came in time"), "{}", none.session1);

    let log = mfad.log_text();
    for result in ["approved", "wrong-number", "expired"] {
        assert!(log.contains(&format!("result=\"{result}\"")), "{result}: {log}");
    }
    assert!(log.contains("SameSession"), "{log}");
}
