//! End to end, as root: a sudo inside an SSH session approved from the
//! phone. The system bus with the packaged policy, mfad as `pam-mfa`,
//! mfa-web over HTTPS (a test CA the headless Chromium trusts, a virtual
//! passkey), a real sshd and a real sudo whose PAM service has pam_mfa.so
//! in push mode. The SSH session shows "approve on your phone" with the
//! number; the page shows who asks and what for, and the number typed
//! there (signed by the passkey) lets sudo through; a wrong one does not.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::process::{Child, Stdio};

use pam_mfa_tests::browser::{Browser, TestCa};
use pam_mfa_tests::phone::{add_phone_at, answer, state, HOST, SHORT};
use pam_mfa_tests::system::{
    ensure_user, free_port, require_root, Scratch, Sshd, SudoService, SystemBus, SystemMfad,
};
use pam_mfa_tests::{bin, command, wait_for};

const USER: &str = "mfa-e2e-phone";

struct WebProcess(Child);

impl Drop for WebProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sudo -k true` in an SSH session of USER, started; the number it
/// shows, and the running session (its exit: 0 when sudo succeeded).
fn sudo_in_ssh(sshd: &Sshd, log: &std::path::Path) -> (u32, Child) {
    let child = command("expect")
        .arg(pam_mfa_tests::workspace().join("tests/data/sudo-phone.exp"))
        .arg(&sshd.client_key)
        .arg(sshd.port.to_string())
        .arg(USER)
        .arg(log)
        .stdout(Stdio::null())
        .spawn()
        .expect("expect not found: apt-get install expect");
    let number_file = std::path::PathBuf::from(format!("{}.number", log.display()));
    let shown = wait_for(SHORT, || number_file.exists());
    assert!(
        shown,
        "no number shown in the SSH session:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    let number = std::fs::read_to_string(&number_file).unwrap().trim().parse().unwrap();
    std::fs::remove_file(&number_file).unwrap();
    (number, child)
}

#[test]
fn a_sudo_in_an_ssh_session_is_approved_on_the_phone_and_a_wrong_number_refuses_it() {
    require_root();
    let _bus = SystemBus::ensure();
    let scratch = Scratch::new();
    ensure_user(USER, false);
    let ca = TestCa::new("pam-mfa e2e phone CA");
    let (cert, key) = ca.server_cert(HOST, &[HOST]);
    let port = free_port();
    let origin = format!("https://{HOST}:{port}");
    let mfad = SystemMfad::start(
        &scratch,
        &format!(
            "[push]\ntimeout_seconds = 30\nrequest_burst = 10\n[web]\npublic_url = \"{origin}\"\nlisten = \"127.0.0.1:{port}\"\ncertificate = \"{}\"\nkey = \"{}\"\nuser = \"root\"\n",
            cert.display(),
            key.display()
        ),
    );
    let web_log = scratch.path("mfa-web.log");
    let _web = WebProcess(
        command(bin("mfa-web"))
            .arg("--config")
            .arg(&mfad.config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&web_log).unwrap())
            .spawn()
            .unwrap(),
    );
    let up = wait_for(SHORT, || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    assert!(
        up,
        "mfa-web did not listen: {}",
        std::fs::read_to_string(&web_log).unwrap_or_default()
    );
    mfad.enroll(&scratch, USER);

    let browser = Browser::start(&ca.cert, &[HOST], "en-US");
    let tab = browser.open("about:blank");
    tab.add_authenticator();
    add_phone_at(&mfad.config, &origin, &tab, USER, "Phone");
    tab.goto(&format!("{origin}/"));
    state(&tab, "list");

    let module = scratch.path("libpam_mfa.so");
    let _sudo = SudoService::install(
        USER,
        "sudo-mfa-phone",
        &format!("auth required {} mode=push config={}", module.display(), mfad.config.display()),
    );
    let sshd = Sshd::start_with(
        &scratch,
        "sshd-mfa-e2e-phone",
        USER,
        "auth required pam_deny.so",
        "publickey",
        "session required pam_loginuid.so",
    );

    // Approved on the phone: the page says who asks and for what.
    let log = scratch.path("session-approved.log");
    let (number, mut session) = sudo_in_ssh(&sshd, &log);
    tab.wait_for("document.querySelector('.request:not([data-outcome])')", SHORT, "the request");
    let card = tab.eval("document.querySelector('.request:not([data-outcome])').innerText");
    let card = card.as_str().unwrap();
    for shown in [USER, "sudo-mfa-phone", "sudo -k true", "/dev/pts/"] {
        assert!(card.contains(shown), "{shown} not on the card:\n{card}");
    }
    let listed = tab.eval("fetch('/api/requests').then(r => r.text())");
    assert!(
        !listed.as_str().unwrap().contains("number"),
        "the number never reaches the page: {listed}"
    );
    assert_eq!(answer(&tab, number), "approved");
    let exit = wait_for(SHORT, || session.try_wait().unwrap().is_some());
    assert!(exit, "the SSH session did not end");
    let screen = std::fs::read_to_string(&log).unwrap();
    assert_eq!(session.wait().unwrap().code(), Some(0), "{screen}");
    assert!(screen.contains("SUDO-EXIT=0"), "{screen}");

    // A wrong number typed on the phone: sudo refuses.
    tab.goto(&format!("{origin}/"));
    state(&tab, "list");
    let log = scratch.path("session-wrong.log");
    let (number, mut session) = sudo_in_ssh(&sshd, &log);
    let wrong = if number == 99 { 98 } else { number + 1 };
    assert_eq!(answer(&tab, wrong), "wrong-number");
    let exit = wait_for(SHORT, || session.try_wait().unwrap().is_some());
    assert!(exit, "the SSH session did not end");
    let screen = std::fs::read_to_string(&log).unwrap();
    assert_eq!(session.wait().unwrap().code(), Some(1), "{screen}");
    assert!(screen.contains("A wrong number was typed"), "{screen}");
    let journal = mfad.log_text();
    assert!(journal.contains("challenge-ended-by-phone"), "{journal}");
    assert!(journal.contains("service=\"sudo-mfa-phone\""), "{journal}");
}
