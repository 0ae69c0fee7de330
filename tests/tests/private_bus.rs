//! Integration: a private dbus-daemon with the packaged policy, a real mfad,
//! real libpam loading the freshly built pam_mfa.so, codes from oathtool.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use pam_mfa_tests::{now, Bus, Mfad, PamService};

fn wrong(code: &str) -> String {
    // A code of the same length that differs in every digit.
    code.bytes().map(|b| char::from(b'0' + (b - b'0' + 5) % 10)).collect()
}

#[test]
fn right_code_signs_in_and_the_same_code_again_is_refused() {
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "");
    let app = mfad.enroll("alice");
    let pam = PamService::new(&format!("config={}", mfad.config.display()));
    let code = app.code_now();

    let first = pam.authenticate("alice", &[&code]);
    assert_eq!(first.result(), "PAM_SUCCESS", "{}", first.text);
    assert_eq!(first.prompts, vec!["Verification code: "]);

    let again = pam.authenticate("alice", &[&code]);
    assert_eq!(again.result(), "PAM_AUTH_ERR", "{}", again.text);
    assert!(mfad.log_text().contains("result=\"replayed\""), "{}", mfad.log_text());
}

#[test]
fn wrong_code_is_refused() {
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "");
    let app = mfad.enroll("bob");
    let pam = PamService::new(&format!("config={}", mfad.config.display()));
    let bad = wrong(&app.code_now());
    let run = pam.authenticate("bob", &[&bad, &bad, &bad]);
    assert_eq!(run.result(), "PAM_AUTH_ERR", "{}", run.text);
    // Asked three times (max_prompts defaults to 3), told why each time.
    assert_eq!(run.prompts.len(), 3, "{}", run.text);
    assert_eq!(run.errors, vec!["Wrong code."; 3]);
    assert!(mfad.log_text().contains("result=\"rejected\""));
}

#[test]
fn enough_wrong_codes_lock_the_user_out() {
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "[limits]\nmax_failures = 3\nlockout_seconds = 600\n");
    let app = mfad.enroll("carol");
    let pam = PamService::new(&format!("max_prompts=1 config={}", mfad.config.display()));
    let bad = wrong(&app.code_now());
    for _ in 0..2 {
        assert_eq!(pam.authenticate("carol", &[&bad]).result(), "PAM_AUTH_ERR");
    }
    // The third wrong code starts the lockout, and says until when.
    let third = pam.authenticate("carol", &[&bad]);
    assert_eq!(third.result(), "PAM_MAXTRIES", "{}", third.text);
    assert!(third.errors[0].starts_with("Wrong code. Too many wrong codes: locked until "));
    // Now even the right code is refused, without being checked.
    let locked = pam.authenticate("carol", &[&app.code_now()]);
    assert_eq!(locked.result(), "PAM_MAXTRIES", "{}", locked.text);
    assert!(locked.errors[0].starts_with("Too many wrong codes: locked until "), "{}", locked.text);
    assert!(locked.errors[0].ends_with(" UTC."), "{}", locked.text);
    assert!(mfad.log_text().contains("result=\"locked-out\""));
}

#[test]
fn unknown_user_fails_without_nullok_and_is_ignored_with_it() {
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "");
    // The module is followed by pam_permit: only the module can refuse.
    let strict = PamService::followed_by_permit(&format!("config={}", mfad.config.display()));
    let run = strict.authenticate("nobody-enrolled", &["123456"]);
    assert_eq!(run.result(), "PAM_AUTH_ERR", "{}", run.text);
    // Asked and refused like an enrolled user typing wrong codes: nothing
    // tells an attacker whether the account is enrolled.
    assert_eq!(run.prompts.len(), 3, "{}", run.text);
    assert_eq!(run.errors, vec!["Wrong code."; 3]);

    // With nullok the module answers PAM_IGNORE and the rest of the stack decides.
    let lenient =
        PamService::followed_by_permit(&format!("nullok config={}", mfad.config.display()));
    let run = lenient.authenticate("nobody-enrolled", &["123456"]);
    assert_eq!(run.result(), "PAM_SUCCESS", "{}", run.text);
    assert!(run.prompts.is_empty(), "{}", run.text);
    // Alone in the stack, an ignored module cannot let anyone in.
    let alone = PamService::new(&format!("nullok config={}", mfad.config.display()));
    assert_ne!(alone.authenticate("nobody-enrolled", &[]).result(), "PAM_SUCCESS");
}

#[test]
fn mfad_not_running_fails_closed_within_the_timeout() {
    let bus = Bus::start();
    let mut mfad = Mfad::start(&bus, "");
    mfad.enroll("dave");
    mfad.stop();
    let pam = PamService::new(&format!("config={}", mfad.config.display()));
    let run = pam.authenticate("dave", &["123456"]);
    assert_eq!(run.result(), "PAM_AUTHINFO_UNAVAIL", "{}", run.text);
    assert!(run.elapsed_ms[0] < 1000 + 2000, "took {} ms", run.elapsed_ms[0]);
    assert!(run.left_nothing_behind(), "{}", run.text);

    // No bus at all.
    drop(bus);
    let run = pam.authenticate("dave", &["123456"]);
    assert_eq!(run.result(), "PAM_AUTHINFO_UNAVAIL", "{}", run.text);
}

#[test]
fn hung_mfad_fails_closed_within_the_timeout() {
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "");
    mfad.enroll("erin");
    let pid = nix::unistd::Pid::from_raw(mfad.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let pam = PamService::new(&format!("config={}", mfad.config.display()));
    let run = pam.authenticate("erin", &["123456"]);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert_eq!(run.result(), "PAM_AUTHINFO_UNAVAIL", "{}", run.text);
    // timeout_ms = 1000 in the test config; the module must give up then.
    assert!((900..3000).contains(&run.elapsed_ms[0]), "took {} ms", run.elapsed_ms[0]);
}

#[test]
fn the_module_leaves_no_thread_or_fd_behind() {
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "[limits]\nmax_failures = 100\n");
    mfad.enroll("frank");
    let pam = PamService::new(&format!("config={}", mfad.config.display()));
    let run = pam.authenticate_repeated("frank", &["000000"; 20], 20);
    assert_eq!(run.results.len(), 20, "{}", run.text);
    assert!(run.results.iter().all(|r| r == "PAM_AUTH_ERR" || r == "PAM_SUCCESS"));
    assert!(run.left_nothing_behind(), "{}", run.text);
}

#[test]
fn the_log_names_the_attempt_but_never_the_code() {
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "");
    let app = mfad.enroll("grace");
    let pam = PamService::new(&format!("config={}", mfad.config.display()));
    let code = app.code_now();
    let bad = wrong(&code);
    assert_eq!(pam.authenticate("grace", &[&bad]).result(), "PAM_AUTH_ERR");
    assert_eq!(pam.authenticate("grace", &[&code]).result(), "PAM_SUCCESS");
    let log = mfad.log_text();
    assert!(log.contains("user=grace"), "{log}");
    assert!(log.contains("rhost=\"192.0.2.7\""), "{log}");
    assert!(log.contains("service=\"mfa-test\""), "{log}");
    assert!(!log.contains(&code) && !log.contains(&bad), "a code is in the log:\n{log}");
    assert!(!log.contains(&app.secret), "the secret is in the log");
}

#[test]
fn a_code_from_the_next_step_is_accepted_once_then_older_ones_are_replays() {
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "");
    let app = mfad.enroll("heidi");
    let pam = PamService::new(&format!("config={}", mfad.config.display()));
    let t = now();
    // skew = 1: the next step's code is valid now, and after it is used
    // the current step's code is a replay.
    let next = app.code_at(t + 30);
    let current = app.code_at(t);
    if next == current {
        return; // a one-in-a-million collision: nothing to tell apart
    }
    assert_eq!(pam.authenticate("heidi", &[&next]).result(), "PAM_SUCCESS");
    assert_eq!(pam.authenticate("heidi", &[&current]).result(), "PAM_AUTH_ERR");
    assert!(mfad.log_text().contains("result=\"replayed\""));
}

#[test]
fn bad_config_is_refused_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[totp]\ndigits = 12\n").unwrap();
    let out = std::process::Command::new(pam_mfa_tests::bin("mfad"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.toml:2:10"), "{err}");
    assert!(err.contains("allowed is 6 to 8"), "{err}");
}
