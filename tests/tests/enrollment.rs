//! Enrollment as users meet it: the QR code in the terminal (decoded by
//! zbarimg, an independent decoder), the whole dialogue in a pseudo-terminal
//! as a real user, the refusals, and the google-authenticator import.
//! Private bus and real mfad; test accounts are real (created as root).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::io::{BufReader, Read, Write};
use std::process::Stdio;

use pam_mfa_tests::system::{ensure_user, require_root};
use pam_mfa_tests::{
    begin_json, bin, command, now, terminal_qr_to_pgm, zbarimg, Bus, JsonEnrollment, Mfad, Otpauth,
    PamService,
};

use pam_mfa_tests::wrong_code as wrong;

/// Runs mfa-enroll as root for `user` with `--qr=STYLE`, reads the screen up
/// to the code prompt, decodes the QR, answers with oathtool's code for the
/// decoded URI, and returns (decoded URI, URI printed as text, the rest).
fn enroll_reading_the_qr(mfad: &Mfad, user: &str, style: &str) -> (String, String, String) {
    let mut child = command(bin("mfa-enroll"))
        .arg("--config")
        .arg(&mfad.config)
        .args(["--user", user, &format!("--qr={style}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut screen = Vec::new();
    let prompt = b"Enter the code the app shows now: ";
    let mut byte = [0u8; 1];
    while !screen.ends_with(prompt) {
        assert_eq!(stdout.read(&mut byte).unwrap(), 1, "{}", String::from_utf8_lossy(&screen));
        screen.push(byte[0]);
    }
    let screen = String::from_utf8(screen).unwrap();
    let decoded = zbarimg(&terminal_qr_to_pgm(&screen, style == "ascii"));
    let printed = screen.lines().find_map(|l| l.trim().strip_prefix("URI: ")).unwrap().to_string();
    let app = Otpauth::parse(&decoded);
    writeln!(child.stdin.take().unwrap(), "{}", app.code_at(now() - app.period)).unwrap();
    let mut rest = String::new();
    BufReader::new(stdout).read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "{screen}{rest}");
    (decoded, printed, rest)
}

#[test]
fn terminal_qr_decodes_to_the_uri_and_its_codes_sign_in() {
    for (extra, style) in
        [("", "utf8"), ("[totp]\nalgorithm = \"SHA256\"\ndigits = 8\n", "utf8"), ("", "ascii")]
    {
        let bus = Bus::start();
        let mfad = Mfad::start(&bus, extra);
        let (decoded, printed, rest) = enroll_reading_the_qr(&mfad, "qr-user", style);
        assert_eq!(decoded, printed, "the QR code holds exactly the URI");
        let app = Otpauth::parse(&decoded);
        if extra.is_empty() {
            assert_eq!((app.algorithm.as_str(), app.digits), ("SHA1", 6));
        } else {
            assert_eq!((app.algorithm.as_str(), app.digits), ("SHA256", 8));
        }
        assert!(decoded.contains("issuer=pam-mfa"), "{decoded}");
        assert!(rest.contains("second factor is on"), "{rest}");
        let pam = PamService::new(&format!("config={}", mfad.config.display()));
        let run = pam.authenticate("qr-user", &[&app.code_now()]);
        assert_eq!(run.result(), "PAM_SUCCESS", "{style} {extra}: {}", run.text);
    }
}

#[test]
fn a_user_enrolls_in_a_terminal_and_a_recovery_code_works_once() {
    require_root();
    let user = "mfa-enroll-t1";
    ensure_user(user, false);
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "");
    let out = command("expect")
        .arg(pam_mfa_tests::workspace().join("tests/data/enroll-dialogue.exp"))
        .arg(user)
        .arg(mfad.user_bin())
        .arg(&mfad.config)
        .output()
        .expect("expect not found: apt-get install expect");
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "dialogue failed:\n{screen}");
    assert!(screen.contains("That code is not right"), "{screen}");
    assert!(
        screen.contains("The app works: the second factor is on for mfa-enroll-t1"),
        "{screen}"
    );
    assert!(screen.contains("Store them offline"), "{screen}");
    let recovery: Vec<&str> = screen
        .split_whitespace()
        .filter(|w| w.len() == 19 && w.matches('-').count() == 3)
        .collect();
    assert_eq!(recovery.len(), 10, "{screen}");

    let pam = PamService::new(&format!("config={}", mfad.config.display()));
    let first = pam.authenticate(user, &[recovery[0]]);
    assert_eq!(first.result(), "PAM_SUCCESS", "{}", first.text);
    let again = pam.authenticate(user, &[recovery[0]]);
    assert_eq!(again.result(), "PAM_AUTH_ERR", "{}", again.text);
    assert!(mfad.log_text().contains("result=\"recovery-accepted\""));
    assert!(!mfad.log_text().contains(recovery[0]), "a recovery code is in the log");
}

#[test]
fn replacing_without_a_current_code_is_refused_and_changes_nothing() {
    require_root();
    let user = "mfa-enroll-t2";
    ensure_user(user, false);
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "");
    let app = mfad.enroll(user);

    let (code, out, _) = mfad.enroll_as(Some(user), &["--json"], "");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("\"error\":\"AlreadyEnrolled\""), "{out}");
    assert!(out.contains("mfa-enroll --reset"), "says how an administrator resets: {out}");

    let bad = wrong(&app.code_now());
    let (code, out, _) = mfad.enroll_as(Some(user), &["--replace", "--json"], &format!("{bad}\n"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("\"error\":\"ProofRefused\""), "{out}");

    let pam = PamService::new(&format!("config={}", mfad.config.display()));
    assert_eq!(pam.authenticate(user, &[&app.code_now()]).result(), "PAM_SUCCESS");
}

#[test]
fn a_user_cannot_enroll_reset_or_read_another() {
    require_root();
    ensure_user("mfa-enroll-t3", false);
    ensure_user("mfa-enroll-t4", false);
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "");
    let app = mfad.enroll("mfa-enroll-t4");
    for args in [
        vec!["--user", "mfa-enroll-t4", "--json"],
        vec!["--user", "mfa-enroll-t4", "--replace", "--json"],
        vec!["--reset", "mfa-enroll-t4", "--json"],
        vec!["--status", "mfa-enroll-t4", "--json"],
        vec!["--list", "--json"],
    ] {
        let (code, out, err) = mfad.enroll_as(Some("mfa-enroll-t3"), &args, "");
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(out.contains("\"error\":\"AccessDenied\""), "{args:?}: {out}");
        assert!(out.contains("only root may do this for another user"), "{args:?}: {out}");
    }
    let pam = PamService::new(&format!("config={}", mfad.config.display()));
    assert_eq!(pam.authenticate("mfa-enroll-t4", &[&app.code_now()]).result(), "PAM_SUCCESS");
    assert!(mfad.log_text().contains("refused: not authorized"));
}

#[test]
fn confirming_an_expired_enrollment_is_refused() {
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "[enroll]\npending_seconds = 1\n");
    let JsonEnrollment { mut child, mut stdout, app } =
        begin_json(&bin("mfa-enroll"), &mfad.config, "late");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    writeln!(child.stdin.take().unwrap(), "{}", app.code_now()).unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(1), "{rest}");
    assert!(rest.contains("\"error\":\"PendingExpired\""), "{rest}");
    let (_, status, _) = mfad.enroll_as(None, &["--status", "late", "--json"], "");
    assert!(status.contains("\"enrolled\":false"), "{status}");
}

#[test]
fn an_abandoned_replacement_leaves_the_active_enrollment_alone() {
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "");
    let app = mfad.enroll("keeper");
    let (_, before, _) = mfad.enroll_as(None, &["--status", "keeper", "--json"], "");
    // Root starts a replacement and walks away (standard input just ends).
    let (code, out, _) = mfad.enroll_as(None, &["--user", "keeper", "--replace", "--json"], "");
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("\"event\":\"begin\""), "{out}");
    let (_, after, _) = mfad.enroll_as(None, &["--status", "keeper", "--json"], "");
    let enrolled_at =
        |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap()["enrolled_at"].clone();
    assert_eq!(enrolled_at(&before), enrolled_at(&after));
    assert!(after.contains("\"pending\":true"), "{after}");
    let pam = PamService::new(&format!("config={}", mfad.config.display()));
    assert_eq!(pam.authenticate("keeper", &[&app.code_now()]).result(), "PAM_SUCCESS");
}

#[test]
fn new_recovery_codes_replace_the_old_ones_after_a_current_code() {
    require_root();
    let user = "mfa-enroll-t5";
    ensure_user(user, false);
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "");
    let (app, old) = mfad.enroll_with_recovery(user);
    let (code, out, _) = mfad.enroll_as(
        Some(user),
        &["--new-recovery-codes", "--json"],
        &format!("{}\n", app.code_now()),
    );
    assert_eq!(code, 0, "{out}");
    let new: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let new: Vec<String> = new["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().into())
        .collect();
    assert_eq!(new.len(), 10);
    let pam = PamService::new(&format!("config={}", mfad.config.display()));
    assert_eq!(pam.authenticate(user, &[&old[0]]).result(), "PAM_AUTH_ERR");
    assert_eq!(pam.authenticate(user, &[&new[0]]).result(), "PAM_SUCCESS");
}

#[test]
fn a_google_authenticator_file_is_imported_and_keeps_working() {
    require_root();
    let user = "mfa-enroll-t6";
    ensure_user(user, false);
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("google_authenticator");
    let text = pam_mfa_tests::google_authenticator_file(&file);
    let secret = text.lines().next().unwrap().to_string();
    let scratch: Vec<&str> = text.lines().filter(|l| l.len() == 8 && !l.starts_with('"')).collect();
    assert_eq!(scratch.len(), 3, "{text}");

    let path = file.display().to_string();
    let (code, out, err) = mfad.enroll_as(
        None,
        &["--user", user, "--import-google-authenticator", &path, "--json"],
        "",
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"recovery_codes\":3"), "{out}");

    let app = Otpauth::parse(&format!("otpauth://totp/x?secret={secret}"));
    let pam = PamService::new(&format!("config={}", mfad.config.display()));
    assert_eq!(pam.authenticate(user, &[&app.code_now()]).result(), "PAM_SUCCESS");
    assert_eq!(pam.authenticate(user, &[scratch[1]]).result(), "PAM_SUCCESS");
    assert_eq!(pam.authenticate(user, &[scratch[1]]).result(), "PAM_AUTH_ERR");
}

#[test]
fn wrong_first_codes_are_bounded_by_mfad() {
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "[enroll]\nconfirm_tries = 2\n");
    let (code, out, _) =
        mfad.enroll_as(None, &["--json", "--user", "fumbler"], "000000\n000001\n000002\n");
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[1].contains("\"event\":\"wrong_code\"") && lines[1].contains("1 try left"),
        "{out}"
    );
    assert!(lines[2].contains("\"error\":\"NoPendingEnrollment\""), "{out}");
    assert!(lines[2].contains("too many wrong codes"), "{out}");
    let (_, status, _) = mfad.enroll_as(None, &["--status", "fumbler", "--json"], "");
    assert!(
        status.contains("\"enrolled\":false") && status.contains("\"pending\":false"),
        "{status}"
    );
}

#[test]
fn output_cut_short_by_its_reader_ends_quietly() {
    // `mfa-enroll --help | head -n 1`: the reader goes away; no panic
    // message at the user, the status a shell shows for SIGPIPE.
    for program in ["mfa-enroll", "mfa-approve"] {
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        drop(read_end);
        let out = command(bin(program))
            .args(["--config", "/dev/null", "--help"])
            .stdout(Stdio::from(write_end))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(141), "{program}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{program} said something");
    }
}

#[test]
fn root_cannot_enroll_a_name_no_account_has() {
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "[enroll]\nrequire_account = true\n");
    for name in ["users", "alice.toml", "nobody-has-this-name"] {
        let out = mfad.enroll_cmd(&["--user", name, "--json"]);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{name}: {said}");
        assert!(said.contains(&format!("no account is named \\\"{name}\\\"")), "{name}: {said}");
        assert!(!said.contains("otpauth://"), "{name}: a secret was made: {said}");
    }
    assert!(mfad.log_text().contains("enrollment-refused-no-account"));
    let stored = std::fs::read_dir(mfad.dir.path().join("state/users")).unwrap().count();
    assert_eq!(stored, 0, "nothing was stored");
    // An account the system knows is enrolled as before.
    let (app, _) = mfad.enroll_with_recovery("root");
    let pam = PamService::new(&format!("config={}", mfad.config.display()));
    assert_eq!(pam.authenticate("root", &[&app.code_now()]).result(), "PAM_SUCCESS");
}

#[test]
fn the_first_code_shown_as_typed_is_spent_and_cannot_sign_in() {
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "");
    let JsonEnrollment { mut child, mut stdout, app } =
        begin_json(&bin("mfa-enroll"), &mfad.config, "echoed");
    // Confirmed with the current step's code: the one a shoulder surfer
    // would have read off the screen.
    let code = app.code_now();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{code}").unwrap();
    drop(stdin);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(rest.contains("\"enrolled\""), "{rest}");
    let pam = PamService::new(&format!("config={} max_prompts=1", mfad.config.display()));
    let run = pam.authenticate("echoed", &[&code]);
    assert_eq!(run.result(), "PAM_AUTH_ERR", "{}", run.text);
    assert!(run.errors.iter().any(|e| e.contains("already used")), "{}", run.text);
}
