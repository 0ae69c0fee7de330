//! What users read, in English or Dutch: chosen by the PAM line, the
//! config, or the locale of the program, through real libpam, a real mfad
//! on a private bus, mfa-enroll in a real terminal and mfa-approve as a
//! real account. Administrator logs stay English.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use pam_mfa_tests::system::{ensure_user, require_root};
use pam_mfa_tests::{in_new_session, workspace, Bus, Mfad, PamService};

const DUTCH: (&str, &str) = ("LANG", "nl_NL.UTF-8");

#[test]
fn pam_prompts_and_notices_are_dutch_from_the_line_the_config_or_the_locale() {
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "[limits]\nmax_failures = 3\n");
    let app = mfad.enroll("taal");
    let config = mfad.config.display().to_string();

    // The PAM line says Dutch: prompts, failures and the lockout in Dutch.
    let line = PamService::new(&format!("language=nl config={config}"));
    let wrong = line.authenticate("taal", &["000000", "000001", "000002"]);
    assert_eq!(wrong.result(), "PAM_MAXTRIES", "{}", wrong.text);
    assert_eq!(wrong.prompts, vec!["Verificatiecode: "; 3], "{}", wrong.text);
    assert_eq!(wrong.errors[..2], ["Onjuiste code.", "Onjuiste code."], "{}", wrong.text);
    assert!(
        wrong.errors[2].starts_with("Onjuiste code. Te veel onjuiste codes: geblokkeerd tot "),
        "{}",
        wrong.text
    );
    // mfad's log, read by administrators, stays English.
    assert!(mfad.log_text().contains("result=\"rejected\""), "{}", mfad.log_text());
    drop(mfad);

    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "");
    let app2 = mfad.enroll("taal");
    let config = mfad.config.display().to_string();
    let auto = PamService::new(&format!("config={config}"));
    // language = "auto" (the default): the locale of the program the
    // module runs in, as sudo runs with its caller's.
    let dutch = auto.authenticate_with_env("taal", &[&app2.code_now()], &[DUTCH]);
    assert_eq!(dutch.result(), "PAM_SUCCESS", "{}", dutch.text);
    assert_eq!(dutch.prompts, vec!["Verificatiecode: "], "{}", dutch.text);
    let english = auto.authenticate_with_env("taal", &["000000"], &[("LANG", "C.UTF-8")]);
    assert_eq!(english.prompts[0], "Verification code: ", "{}", english.text);
    assert_eq!(english.errors[0], "Wrong code.", "{}", english.text);
    // LANGUAGE's list is read ("xx" is no language; Dutch is next).
    let listed = auto.authenticate_with_env(
        "taal",
        &["000000"],
        &[("LANG", "xx_XX"), ("LANGUAGE", "xx:nl")],
    );
    assert_eq!(listed.prompts[0], "Verificatiecode: ", "{}", listed.text);
    // The line overrides the locale.
    let fixed = PamService::new(&format!("language=en config={config}"));
    let run = fixed.authenticate_with_env("taal", &["000000"], &[DUTCH]);
    assert_eq!(run.prompts[0], "Verification code: ", "{}", run.text);
    let _ = app;
}

#[test]
fn the_config_language_wins_over_the_locale_and_the_deadline_notice_is_dutch() {
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "language = \"nl\"\n[policy]\nenroll_deadline = \"2999-12-31\"\n");
    let pam = PamService::followed_by_permit(&format!("config={}", mfad.config.display()));
    let run = pam.authenticate_with_env("nog-niet", &[], &[("LANG", "en_US.UTF-8")]);
    assert_eq!(run.result(), "PAM_SUCCESS", "{}", run.text);
    assert!(
        run.text.contains(
            "info: Tweestapsverificatie is verplicht vanaf 2999-12-31 (UTC): stel het voor die datum in met mfa-enroll."
        ),
        "{}",
        run.text
    );
    // And a PAM line's language overrides the config's.
    let line =
        PamService::followed_by_permit(&format!("language=en config={}", mfad.config.display()));
    let run = line.authenticate("nog-niet", &[]);
    assert!(
        run.text.contains("info: Two-step sign-in is required from 2999-12-31"),
        "{}",
        run.text
    );
}

#[test]
fn a_language_that_is_not_built_in_is_refused_with_the_choices() {
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "");
    let config = mfad.config.with_file_name("bad.toml");
    std::fs::write(&config, "language = \"klingon\"\n").unwrap();
    let out = pam_mfa_tests::command(pam_mfa_tests::bin("mfa-enroll"))
        .arg("--config")
        .arg(&config)
        .arg("--status")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("bad.toml:1:12"), "where: {err}");
    assert!(err.contains("use \"auto\" or one of "), "what is allowed: {err}");
    assert!(err.contains("\"en\"") && err.contains("\"nl\""), "what is allowed: {err}");
    // In a PAM line: refused as a bad line (PAM_SERVICE_ERR), not ignored.
    let pam = PamService::new(&format!("language=tlh config={}", mfad.config.display()));
    assert_eq!(pam.authenticate("taal", &["000000"]).result(), "PAM_SERVICE_ERR");
}

#[test]
fn mfa_enroll_speaks_dutch_in_a_terminal() {
    require_root();
    let user = "mfa-enroll-nl";
    ensure_user(user, false);
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "");
    // As the user, in a pseudo-terminal, with a Dutch locale: a wrong
    // code, then the right one.
    let out = pam_mfa_tests::command("expect")
        .env(DUTCH.0, DUTCH.1)
        .arg(workspace().join("tests/data/enroll-dialogue.exp"))
        .arg(user)
        .arg(mfad.user_bin())
        .arg(&mfad.config)
        .args(["Vul de code in die de app nu toont: ", "Die code klopt niet", "Bewaar ze offline"])
        .output()
        .expect("expect not found: apt-get install expect");
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "dialogue failed:\n{screen}");
    for said in [
        "1. Voeg in je authenticator-app een account toe en scan deze QR-code:",
        "Of typ de sleutel met de hand (op tijd gebaseerd): ",
        "2. Je hebt 5 minuten om de eerste code in te vullen.",
        "Die code klopt niet: onjuiste code (nog 4 pogingen); controleer of de klok van de telefoon goed staat.",
        "Het is gelukt: de app werkt en de tweede factor staat aan voor mfa-enroll-nl.",
        "Je herstelcodes.",
        "De volgende keer dat je je aanmeldt (ssh, sudo), word je om een",
    ] {
        assert!(screen.contains(said), "missing {said:?} in:\n{screen}");
    }
    for english in ["Enter the code", "recovery codes", "The app works", "minutes"] {
        assert!(!screen.contains(english), "English {english:?} in:\n{screen}");
    }
    // What mfad logged of the same refusal stays English.
    let log = mfad.log_text();
    assert!(
        log.contains("enrollment-confirmed") && log.contains("wrong code (4 tries left)"),
        "{log}"
    );
}

#[test]
fn mfa_enroll_follows_the_config_over_the_locale_and_so_does_its_help() {
    let bus = Bus::start();
    let dutch = Mfad::start(&bus, "language = \"nl\"\n");
    let (code, out, _) = dutch.enroll_as(None, &["--status", "--user", "niemand"], "");
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.trim(),
        "niemand heeft geen tweestapsverificatie. Voer mfa-enroll uit om de authenticator-app in te stellen."
    );
    let (_, help, _) = dutch.enroll_as(None, &["--help"], "");
    assert!(help.starts_with("mfa-enroll - stel de authenticator-app in"), "{help}");
    let (code, _, err) = dutch.enroll_as(None, &["--bogus"], "");
    assert_eq!(code, 2);
    assert!(err.contains("onbekend argument \"--bogus\"\nProbeer 'mfa-enroll --help'."), "{err}");
    drop(dutch);

    let bus = Bus::start();
    let english = Mfad::start(&bus, "language = \"en\"\n");
    let mut cmd = pam_mfa_tests::command(pam_mfa_tests::bin("mfa-enroll"));
    cmd.env(DUTCH.0, DUTCH.1);
    let out = english.run_client(cmd, &["--status", "--user", "nobody-here"], "");
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.starts_with("nobody-here is not enrolled."), "{out}");
}

#[test]
fn mfa_approve_describes_and_approves_a_request_in_dutch() {
    require_root();
    let user = "mfa-approve-nl";
    ensure_user(user, false);
    let uid = nix::unistd::User::from_name(user).unwrap().unwrap().uid.as_raw();
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "");
    let (_, recovery) = mfad.enroll_with_recovery(user);
    let pam = PamService::new(&format!("mode=push language=nl config={}", mfad.config.display()));
    let mut request = pam.start_push(user, None);
    assert!(
        request.shown().contains(&format!(
            "Aanmeldingsverzoek: typ {} in mfa-approve (in een andere sessie) om goed te keuren.",
            request.number
        )),
        "{:?}",
        request.shown()
    );
    // From a login that passed a second factor (a recovery code here).
    let mut cmd = mfad.in_verified_session(user, &recovery[0], &mfad.approve_bin());
    cmd.env(DUTCH.0, DUTCH.1);
    let out = mfad.run_client(cmd, &["--once"], &format!("{}\n", request.number));
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{screen}{}", String::from_utf8_lossy(&out.stderr));
    for said in [
        "Wachten op aanmeldingsverzoeken voor mfa-approve-nl",
        "Aanmeldingsverzoek voor mfa-approve-nl",
        "  dienst:         mfa-test\n",
        "  vanaf:          192.0.2.7\n",
        "  verloopt over:  ",
        "Typ het nummer dat op het aanvragende scherm staat (of w om te weigeren, m als jij dit niet was): ",
        "Goedgekeurd.",
    ] {
        assert!(screen.contains(said), "missing {said:?} in:\n{screen}");
    }
    let (line, _) = request.result_line().expect("no result");
    assert_eq!(line, "result: PAM_SUCCESS");

    // Denied with the Dutch word: the requester is told so in Dutch.
    let request = pam.start_push(user, None);
    let mut cmd = in_new_session(uid, Some(user), &mfad.approve_bin());
    cmd.env(DUTCH.0, DUTCH.1);
    let out = mfad.run_client(cmd, &["--once"], "weiger\n");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Geweigerd."));
    let run = request.finish();
    assert_eq!(run.result(), "PAM_AUTH_ERR", "{}", run.text);
    assert!(run.errors.contains(&"De aanmelding is geweigerd in je goedkeurder.".to_string()));
}
