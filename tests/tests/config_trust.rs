//! A config file someone else than root can change is refused, as sshd's
//! StrictModes refuses such files: by the module (PAM_AUTHINFO_UNAVAIL,
//! whatever failmode says) and by mfad (it does not start). Real libpam,
//! a private bus, a real mfad; each refusal is undone and the same call
//! then succeeds, so the mode is what made the difference.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::fs::{self, Permissions};
use std::os::unix::fs::PermissionsExt;

use pam_mfa_tests::{bin, command, now, Bus, Mfad, PamService};

#[test]
fn a_config_others_can_change_is_refused_by_the_module_and_mfad() {
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "");
    let app = mfad.enroll("trusty");
    let (config, dir) = (&mfad.config, mfad.dir.path());
    let strict = PamService::new(&format!("config={}", config.display()));
    let lenient = PamService::new(&format!("config={} failmode=open", config.display()));
    // Two fresh steps (enrolling spent the previous one): now, the next.
    let codes = app.codes_from(now(), 2);

    // The control: root's 0644 file under root's 0755 directories.
    assert_eq!(strict.authenticate("trusty", &[&codes[0]]).result(), "PAM_SUCCESS");

    // (a) the file writable by others; (c) its directory writable by others.
    for (path, loose, kept) in [(config.as_path(), 0o666, 0o644), (dir, 0o777, 0o755)] {
        fs::set_permissions(path, Permissions::from_mode(loose)).unwrap();
        assert_eq!(strict.authenticate("trusty", &[&codes[1]]).result(), "PAM_AUTHINFO_UNAVAIL");
        assert_eq!(lenient.authenticate("trusty", &[&codes[1]]).result(), "PAM_AUTHINFO_UNAVAIL");
        let out = command(bin("mfad")).arg("--config").arg(config).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "mfad started on {}", path.display());
        assert!(err.contains("not trusted") && err.contains("chmod go-w"), "{err}");
        fs::set_permissions(path, Permissions::from_mode(kept)).unwrap();
    }
    // (b) a file a user owns (here: nobody's).
    std::os::unix::fs::chown(config, Some(65534), None).unwrap();
    assert_eq!(strict.authenticate("trusty", &[&codes[1]]).result(), "PAM_AUTHINFO_UNAVAIL");
    let out = command(bin("mfad")).arg("--config").arg(config).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("chown root"));
    std::os::unix::fs::chown(config, Some(0), None).unwrap();

    // Trusted again: the code that was refused above is accepted.
    assert_eq!(strict.authenticate("trusty", &[&codes[1]]).result(), "PAM_SUCCESS");
}

#[test]
fn the_environment_never_chooses_the_bus() {
    // A hostile caller of sudo sets the bus variables to a bus where a fake
    // mfad says yes to everything; the module still asks the config's mfad.
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "");
    let app = mfad.enroll("env-proof");
    let hostile = Bus::start();
    let mut fake = command(bin("fake-mfad"))
        .arg(&hostile.address)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(fake.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready");
    let pam = PamService::new(&format!("config={} max_prompts=1", mfad.config.display()));
    let env = [
        ("DBUS_SYSTEM_BUS_ADDRESS", hostile.address.as_str()),
        ("DBUS_SESSION_BUS_ADDRESS", hostile.address.as_str()),
        ("DBUS_STARTER_ADDRESS", hostile.address.as_str()),
    ];
    let wrong = pam_mfa_tests::wrong_code(&app.code_now());
    let run = pam.authenticate_with_env("env-proof", &[&wrong], &env);
    assert_eq!(run.result(), "PAM_AUTH_ERR", "the fake would have said yes: {}", run.text);
    assert!(mfad.log_text().contains("result=\"rejected\""), "the real mfad decided");
    let _ = fake.kill();
    let _ = fake.wait();
}
