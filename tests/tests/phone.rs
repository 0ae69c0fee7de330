//! The phone as approver, end to end in a real browser: a real mfad on a
//! private bus, the real mfa-web over HTTPS with a test CA that headless
//! Chromium trusts, Chromium's virtual passkey authenticator, real libpam
//! (pam-harness in mode=push) asking, and `mfa-enroll --add-phone` in the
//! terminal.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use pam_mfa_tests::browser::{Browser, Tab, TestCa};
use pam_mfa_tests::system::{ensure_user, free_port, require_root};
use pam_mfa_tests::{bin, command, wait_for, Bus, Mfad, PamService};

const ALICE: &str = "mfa-phone-alice";
const HOST: &str = "approver.test";
const SHORT: Duration = Duration::from_secs(20);

struct Web {
    _ca: TestCa,
    _bus: Bus,
    mfad: Mfad,
    web: Child,
    origin: String,
    ca_cert: PathBuf,
}

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.web.kill();
        let _ = self.web.wait();
    }
}

/// mfad with `[web]`, and mfa-web serving it on a free port.
fn start() -> Web {
    require_root();
    ensure_user(ALICE, false);
    let ca = TestCa::new("pam-mfa phone test CA");
    let (cert, key) = ca.server_cert(HOST, &[HOST]);
    let port = free_port();
    let origin = format!("https://{HOST}:{port}");
    let bus = Bus::start();
    let mfad = Mfad::start(
        &bus,
        &format!(
            "[web]\npublic_url = \"{origin}\"\nlisten = \"127.0.0.1:{port}\"\ncertificate = \"{}\"\nkey = \"{}\"\nuser = \"root\"\n",
            cert.display(),
            key.display()
        ),
    );
    let log = std::fs::File::create(mfad.dir.path().join("mfa-web.log")).unwrap();
    let web = command(bin("mfa-web"))
        .arg("--config")
        .arg(&mfad.config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let up = wait_for(SHORT, || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    let ca_cert = ca.cert.clone();
    let w = Web { _ca: ca, _bus: bus, mfad, web, origin, ca_cert };
    assert!(up, "mfa-web did not listen: {}", w.log());
    w
}

impl Web {
    fn log(&self) -> String {
        std::fs::read_to_string(self.mfad.dir.path().join("mfa-web.log")).unwrap_or_default()
    }
}

/// `mfa-enroll --add-phone --json` as root for `user`, its lines as they come.
struct Enrolling {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Enrolling {
    fn start(w: &Web, user: &str) -> Enrolling {
        let mut child = command(bin("mfa-enroll"))
            .arg("--config")
            .arg(&w.mfad.config)
            .args(["--add-phone", "--json", "--qr", "none", "--user", user])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Enrolling { child, lines }
    }

    /// The next JSON event, which must be `event`.
    fn next(&self, event: &str) -> serde_json::Value {
        let line = self.lines.recv_timeout(SHORT).unwrap_or_else(|_| panic!("no {event} line"));
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["event"], event, "{line}");
        value
    }

    fn finish(mut self) -> (i32, String) {
        let status = self.child.wait().unwrap();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        (status.code().unwrap_or(-1), err)
    }
}

fn state(tab: &Tab, wanted: &str) {
    tab.wait_for(
        &format!("document.body.dataset.state === '{wanted}'"),
        SHORT,
        &format!("page state {wanted}"),
    );
}

/// Adds a phone to `user` through the page in `tab` (a virtual passkey
/// on it), passing the test number from the terminal. Returns its name.
fn add_phone(w: &Web, tab: &Tab, user: &str, name: &str) {
    let enrolling = Enrolling::start(w, user);
    let link = enrolling.next("phone_link")["link"].as_str().unwrap().to_string();
    assert!(link.starts_with(&format!("{}/add#t=", w.origin)), "{link}");
    tab.goto(&link);
    state(tab, "add");
    tab.fill("#add-name", name);
    tab.click("#add-create");
    state(tab, "test");
    let test = enrolling.next("phone_test");
    assert_eq!(test["name"], name);
    let number = test["number"].as_u64().unwrap();
    tab.fill("#test-number", &number.to_string());
    tab.click("#test-approve");
    state(tab, "ready");
    assert_eq!(enrolling.next("phone_added")["user"], user);
    let (code, err) = enrolling.finish();
    assert_eq!(code, 0, "{err}");
}

/// The card of the request the page shows, answered with `number`; returns its outcome.
fn answer(tab: &Tab, number: u32) -> String {
    tab.wait_for("document.querySelector('.request:not([data-outcome])')", SHORT, "a request card");
    tab.fill(".request:not([data-outcome]) .number", &number.to_string());
    tab.click(".request:not([data-outcome]) .approve");
    tab.wait_for("document.querySelector('.request[data-outcome]')", SHORT, "an outcome");
    tab.eval("document.querySelector('.request[data-outcome]').dataset.outcome")
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_phone_added_with_a_passkey_approves_a_request_signed_over_it() {
    let w = start();
    let (_app, _) = w.mfad.enroll_with_recovery(ALICE);
    let browser = Browser::start(&w.ca_cert, &[HOST], "en-US");
    let tab = browser.open("about:blank");
    let passkey = tab.add_authenticator();
    add_phone(&w, &tab, ALICE, "Test phone");
    let phones = w.mfad.enroll_cmd(&["--phones", "--json", "--user", ALICE]);
    let listed: serde_json::Value = serde_json::from_slice(&phones.stdout).unwrap();
    assert_eq!(listed["phones"][0]["name"], "Test phone", "{listed}");
    assert_eq!(tab.credentials(&passkey).len(), 1);

    // A real PAM request: the page hears of it (no reload) and approves it.
    tab.goto(&format!("{}/", w.origin));
    state(&tab, "list");
    let pam = PamService::new(&format!("mode=push config={}", w.mfad.config.display()));
    let request = pam.start_push(ALICE, None);
    assert_eq!(answer(&tab, request.number), "approved");
    let run = request.finish();
    assert_eq!(run.result(), "PAM_SUCCESS", "{}", run.text);
    let log = w.mfad.log_text();
    let evidence =
        log.lines().find(|l| l.contains("challenge-ended-by-phone") && l.contains("test=false"));
    let evidence = evidence.unwrap_or_else(|| panic!("no evidence in the log: {log}"));
    for field in [
        "result=\"approved\"",
        "phone=Test phone",
        "signature=",
        "client_data=",
        "signed_challenge=",
    ] {
        assert!(evidence.contains(field), "{field} missing in {evidence}");
    }

    // A wrong number typed on the phone ends the request: no sign-in.
    tab.goto(&format!("{}/", w.origin));
    state(&tab, "list");
    let request = pam.start_push(ALICE, None);
    let wrong = if request.number == 99 { 98 } else { request.number + 1 };
    assert_eq!(answer(&tab, wrong), "wrong-number");
    let run = request.finish();
    assert_eq!(run.result(), "PAM_AUTH_ERR", "{}", run.text);

    // Signed out, the page signs in again with the passkey alone.
    tab.click("#signout");
    state(&tab, "signin");
    tab.click("#signin");
    state(&tab, "list");
    drop(tab);
    drop(browser);
    assert!(!w.log().contains("panicked"), "{}", w.log());
}
