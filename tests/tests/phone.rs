//! The phone as approver, end to end in a real browser: a real mfad on a
//! private bus, the real mfa-web over HTTPS with a test CA that headless
//! Chromium trusts, Chromium's virtual passkey authenticator, real libpam
//! (pam-harness in mode=push) asking, and `mfa-enroll --add-phone` in the
//! terminal.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use pam_mfa_tests::browser::{Browser, Tab};
use pam_mfa_tests::phone::{
    add_phone, answer, api, log_since, pending_id, phone_of, start, state, Enrolling, Web, ALICE,
    EVIL, HOST, SHORT,
};
use pam_mfa_tests::system::ensure_user;
use pam_mfa_tests::PamService;

#[test]
fn a_phone_added_with_a_passkey_approves_a_request_signed_over_it() {
    let w = start();
    let (_app, _) = w.mfad.enroll_with_recovery(ALICE);
    let browser = Browser::start(&w.ca_cert, &[HOST, EVIL], "en-US");
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
    let shown = request.shown();
    assert!(
        shown.contains(&format!("approve on your phone by typing {}", request.number)),
        "{shown}"
    );
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

const BOB: &str = "mfa-phone-bob";

#[test]
fn a_phone_is_refused_for_each_reason_and_changes_nothing_then() {
    let w = start();
    ensure_user(BOB, false);
    w.mfad.enroll_with_recovery(ALICE);
    w.mfad.enroll_with_recovery(BOB);
    let (_alice_browser, alice, alice_key) = phone_of(&w, ALICE, "Alice's phone");
    let (_bob_browser, bob, _) = phone_of(&w, BOB, "Bob's phone");
    let pam = PamService::new(&format!("mode=push config={}", w.mfad.config.display()));
    let request = pam.start_push(ALICE, None);
    let id = pending_id(&alice);
    let number = request.number;

    // Another user's request answers as if it did not exist.
    assert_eq!(bob.eval("window.__t.pending().then(r => r.length)"), serde_json::json!(0));
    for (path, body) in [
        ("/api/approve/begin", format!("{{id: '{id}', number: {number}}}")),
        ("/api/deny", format!("{{id: '{id}'}}")),
        ("/api/report", format!("{{id: '{id}'}}")),
    ] {
        let answer = bob.eval(&format!("window.__t.post('{path}', {body})"));
        assert_eq!(answer["status"], 404, "{path}: {answer}");
        assert_eq!(answer["body"]["error"], "unknown", "{path}: {answer}");
    }

    // A bogus signature, then a missing user verification: each refused by
    // mfad for its reason, and the request still waits.
    for (bogus, bad_uv, reason) in
        [(true, false, "bad-signature"), (false, true, "no-user-verification")]
    {
        let from = w.mfad.log_text().len();
        alice.override_bits(&alice_key, bogus, bad_uv, false);
        let answer = alice.eval(&format!("window.__t.approve('{id}', {number})"));
        assert_eq!(answer["status"], 403, "{reason}: {answer}");
        assert_eq!(answer["body"]["error"], "refused", "{reason}: {answer}");
        let log = log_since(&w, from);
        assert!(
            log.lines().any(|l| l.contains("passkey-refused")
                && l.contains(&format!("reason=\"{reason}\""))
                || l.contains("passkey-refused") && l.contains(&format!("reason={reason}"))),
            "{reason} not in {log}"
        );
        assert_eq!(pending_id(&alice), id, "a refused passkey changes nothing");
    }
    alice.override_bits(&alice_key, false, false, false);

    // The right approval, kept for a replay.
    let approved = alice.eval(&format!("window.__t.approve('{id}', {number})"));
    assert_eq!(approved["body"]["outcome"], "approved", "{approved}");
    assert_eq!(request.finish().result(), "PAM_SUCCESS");

    // Replayed: on the ended request, and moved to a new one.
    let replay = format!(
        "window.__t.post('/api/approve/finish', {{id: '{id}', number: {number}, credential: {}}})",
        approved["credential"]
    );
    let answer = alice.eval(&replay);
    assert_eq!(answer["body"]["error"], "unknown", "the ended request: {answer}");
    let next = pam.start_push(ALICE, None);
    let next_id = pending_id(&alice);
    let from = w.mfad.log_text().len();
    let moved = format!(
        "window.__t.post('/api/approve/finish', {{id: '{next_id}', number: {}, credential: {}}})",
        next.number, approved["credential"]
    );
    let answer = alice.eval(&moved);
    assert_eq!(answer["body"]["error"], "refused", "moved to another request: {answer}");
    let log = log_since(&w, from);
    assert!(log.contains("wrong-challenge"), "{log}");
    assert_eq!(pending_id(&alice), next_id, "the new request still waits");

    // Bob's passkey cannot approve Alice's request, even signed over it.
    let from = w.mfad.log_text().len();
    let signed_by_bob = bob.eval(&format!(
        "window.__t.sign({{challenge: '{}', rpId: '{HOST}', userVerification: 'required'}})",
        alice.eval(&format!(
            "window.__t.post('/api/approve/begin', {{id: '{next_id}', number: {}}})",
            next.number
        ))["body"]["publicKey"]["challenge"]
            .as_str()
            .unwrap()
    ));
    let answer = alice.eval(&format!(
        "window.__t.post('/api/approve/finish', {{id: '{next_id}', number: {}, credential: {signed_by_bob}}})",
        next.number
    ));
    assert_eq!(answer["body"]["error"], "refused", "{answer}");
    assert!(log_since(&w, from).contains("unknown-phone"), "{}", log_since(&w, from));
    assert_eq!(pending_id(&alice), next_id);
    let denied = alice.eval(&format!("window.__t.post('/api/deny', {{id: '{next_id}'}})"));
    assert_eq!(denied["body"]["outcome"], "denied", "{denied}");
    assert_eq!(next.finish().result(), "PAM_AUTH_ERR");
}

#[test]
fn a_post_from_another_origin_is_refused_and_mfad_refuses_its_assertion() {
    let w = start();
    w.mfad.enroll_with_recovery(ALICE);
    let (_browser, alice, _) = phone_of(&w, ALICE, "Alice's phone");
    let pam = PamService::new(&format!("mode=push config={}", w.mfad.config.display()));
    let request = pam.start_push(ALICE, None);
    let id = pending_id(&alice);
    let begun = alice.eval(&format!(
        "window.__t.post('/api/approve/begin', {{id: '{id}', number: {}}})",
        request.number
    ));
    let challenge = begun["body"]["publicKey"]["challenge"].as_str().unwrap().to_string();

    // The same server under another name: another origin, same passkeys' RP ID.
    let port = w.origin.rsplit(':').next().unwrap();
    let other = format!("https://{EVIL}:{port}");
    alice.goto(&format!("{other}/"));
    api(&alice);
    let answer = alice.eval("window.__t.post('/api/signin/begin', {})");
    assert_eq!(answer["status"], 403, "{answer}");
    assert!(w.log().contains("origin-refused"), "{}", w.log());

    // Signed there over the right request and number: mfad refuses the origin.
    let signed = alice.eval(&format!(
        "window.__t.sign({{challenge: '{challenge}', rpId: '{HOST}', userVerification: 'required'}})"
    ));
    let from = w.mfad.log_text().len();
    let refused = web_approve(&w, ALICE, &id, request.number, &signed);
    assert!(refused.contains("wrong-origin"), "{refused}");
    assert!(log_since(&w, from).contains("wrong-origin"));
    let run = request.finish();
    assert_ne!(run.result(), "PAM_SUCCESS", "{}", run.text);
}

/// Calls mfad's Web1.Approve (as root, as mfa-web would) with an
/// assertion the page made; returns the error text ("" when taken).
fn web_approve(
    w: &Web,
    user: &str,
    id: &str,
    number: u32,
    credential: &serde_json::Value,
) -> String {
    use base64::Engine;
    let b64 = |key: &str| {
        let text = credential["response"][key]
            .as_str()
            .unwrap_or_else(|| credential[key].as_str().unwrap());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).unwrap()
    };
    let (raw, data, client, signature) =
        (b64("rawId"), b64("authenticatorData"), b64("clientDataJSON"), b64("signature"));
    let config = pam_mfa_config::schema::Config::load(&w.mfad.config).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let conn =
            zbus::connection::Builder::address(config.bus.address.as_str()).build().await.unwrap();
        let web = pam_mfa_client::WebProxy::new(&conn).await.unwrap();
        match web.approve(user, id, number, &raw, &data, &client, &signature).await {
            Ok(outcome) => format!("taken: {outcome}"),
            Err(e) => e.to_string(),
        }
    })
}

/// Where the tests leave screenshots (README shows copies of them).
fn screenshot(tab: &Tab, name: &str) {
    let dir = pam_mfa_tests::workspace().join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    tab.screenshot(&path);
    let png = std::fs::read(&path).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name}");
}

/// `mfa-enroll --add-phone` as the user in a terminal, the seed's way: a
/// current code first, then the QR code, read off the screen with zbarimg.
struct Terminal {
    child: Child,
    screen: mpsc::Receiver<u8>,
    seen: Vec<u8>,
}

impl Terminal {
    fn add_phone(w: &Web, user: &str, code: &str) -> Terminal {
        let mut child = pam_mfa_tests::in_this_session(user, &w.mfad.user_bin())
            .arg("--config")
            .arg(&w.mfad.config)
            .arg("--add-phone")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, screen) = mpsc::channel();
        std::thread::spawn(move || {
            let mut byte = [0u8; 1];
            while std::io::Read::read(&mut stdout, &mut byte).unwrap_or(0) == 1 {
                if tx.send(byte[0]).is_err() {
                    break;
                }
            }
        });
        let mut t = Terminal { child, screen, seen: Vec::new() };
        t.until("Current code from your authenticator app: ");
        let mut stdin = t.child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, format!("{code}\n").as_bytes()).unwrap();
        t
    }

    /// The two-digit number on a line of its own after `text`.
    fn number_after(&mut self, text: &str) -> String {
        loop {
            let screen = self.until(text);
            let after = screen.rsplit(text).next().unwrap_or("");
            let found = after
                .split_inclusive('\n')
                .filter(|line| line.ends_with('\n'))
                .map(str::trim)
                .find(|w| w.len() == 2 && w.bytes().all(|b| b.is_ascii_digit()));
            if let Some(number) = found {
                return number.to_string();
            }
            let byte =
                self.screen.recv_timeout(SHORT).unwrap_or_else(|_| panic!("no number:\n{screen}"));
            self.seen.push(byte);
        }
    }

    /// Reads the screen until it shows `text`; returns all of it so far.
    fn until(&mut self, text: &str) -> String {
        while !String::from_utf8_lossy(&self.seen).contains(text) {
            let byte = self.screen.recv_timeout(SHORT).unwrap_or_else(|_| {
                panic!("{text:?} not shown:\n{}", String::from_utf8_lossy(&self.seen))
            });
            self.seen.push(byte);
        }
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    fn finish(mut self) -> (i32, String) {
        let status = self.child.wait().unwrap();
        while let Ok(byte) = self.screen.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(byte);
        }
        (status.code().unwrap_or(-1), String::from_utf8_lossy(&self.seen).into_owned())
    }
}

#[test]
fn the_seeds_way_two_phones_from_the_terminal_qr_one_removed_in_dutch_too() {
    let w = start();
    let (app, _) = w.mfad.enroll_with_recovery(ALICE);

    // The password and a shell are not enough: without a current code, no link.
    let (refused, screen) = Terminal::add_phone(&w, ALICE, "000000").finish();
    assert_ne!(refused, 0, "{screen}");
    assert!(!screen.contains("/add#t="), "a link without the second factor:\n{screen}");
    let log = w.mfad.log_text();
    assert!(
        log.lines().any(|l| l.contains("phone-link-opened") && l.contains("result=\"refused\"")),
        "{log}"
    );

    // The first phone, from the QR code the terminal draws.
    let mut terminal = Terminal::add_phone(&w, ALICE, &app.code_now());
    let screen = terminal.until("Waiting for the phone");
    let link = pam_mfa_tests::zbarimg(&pam_mfa_tests::terminal_qr_to_pgm(&screen, false));
    assert!(link.starts_with(&format!("{}/add#t=", w.origin)), "{link}");
    assert!(screen.contains(&link), "the link is printed as text too");
    let first = Browser::start(&w.ca_cert, &[HOST, EVIL], "en-US");
    let one = first.open("about:blank");
    one.add_authenticator();
    one.goto(&link);
    state(&one, "add");
    one.fill("#add-name", "Pixel");
    one.click("#add-create");
    state(&one, "test");
    let number = terminal.number_after("Last step");
    one.fill("#test-number", &number);
    one.click("#test-approve");
    state(&one, "ready");
    let (code, screen) = terminal.finish();
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("Done: Pixel approves sign-ins of mfa-phone-alice now"), "{screen}");

    // A used link adds nothing more.
    let token = link.rsplit("#t=").next().unwrap();
    api(&one);
    let again = one.eval(&format!("window.__t.post('/api/register/begin', {{token: '{token}'}})"));
    assert_eq!(
        (again["status"].clone(), again["body"]["error"].clone()),
        (400.into(), "refused".into()),
        "{again}"
    );

    // The second phone, in Dutch: the page speaks the browser's language.
    let second = Browser::start(&w.ca_cert, &[HOST, EVIL], "nl-NL");
    let two = second.open("about:blank");
    let two_key = two.add_authenticator();
    // Its test request is for the new phone alone: the first phone, signed
    // over it with the right number, and mfa-approve are both refused.
    let adding = Enrolling::start(&w.mfad.config, ALICE);
    let link = adding.next("phone_link")["link"].as_str().unwrap().to_string();
    two.goto(&link);
    state(&two, "add");
    two.fill("#add-name", "iPhone");
    two.click("#add-create");
    state(&two, "test");
    let test = adding.next("phone_test");
    let (test_id, test_number) = (test["id"].as_str().unwrap(), test["number"].as_u64().unwrap());
    one.goto(&format!("{}/", w.origin));
    state(&one, "list");
    api(&one);
    let from = w.mfad.log_text().len();
    let by_first = one.eval(&format!("window.__t.approve('{test_id}', {test_number})"));
    assert_eq!(by_first["body"]["error"], "refused", "{by_first}");
    assert!(log_since(&w, from).contains("unknown-phone"), "{}", log_since(&w, from));
    let by_approver = approver_approve(&w, test_id, test_number);
    assert!(by_approver.contains("NoSuchChallenge"), "{by_approver}");
    assert!(log_since(&w, from).contains("approval-refused-phone-test"), "{}", log_since(&w, from));
    two.fill("#test-number", &test_number.to_string());
    two.click("#test-approve");
    state(&two, "ready");
    assert_eq!(adding.next("phone_added")["name"], "iPhone");
    assert_eq!(adding.finish().0, 0);
    two.goto(&format!("{}/", w.origin));
    state(&two, "list");
    assert_eq!(two.eval("document.documentElement.lang"), serde_json::json!("nl"));
    assert!(two.eval("document.body.innerText").as_str().unwrap().contains("Afmelden"));
    let listed = w.mfad.enroll_cmd(&["--phones", "--json", "--user", ALICE]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed["phones"].as_array().unwrap().len(), 2, "{listed}");

    // Either phone approves; the screenshots come from the first.
    one.goto(&format!("{}/", w.origin));
    state(&one, "list");
    one.click("#signout");
    state(&one, "signin");
    screenshot(&one, "sign-in");
    one.click("#signin");
    state(&one, "list");
    let pam = PamService::new(&format!("mode=push config={}", w.mfad.config.display()));
    let request = pam.start_push(ALICE, None);
    one.wait_for("document.querySelector('.request:not([data-outcome])')", SHORT, "a card");
    screenshot(&one, "request");
    assert_eq!(answer(&two, request.number), "approved");
    // The other phone's page drops the request as it ends, live.
    one.wait_for(
        "!document.querySelector('.request:not([data-outcome])')",
        SHORT,
        "the request gone from the other phone",
    );
    assert_eq!(request.finish().result(), "PAM_SUCCESS");
    let request = pam.start_push(ALICE, None);
    assert_eq!(answer(&one, request.number), "approved");
    screenshot(&one, "approved");
    assert_eq!(request.finish().result(), "PAM_SUCCESS");

    // Removed, the second phone can neither sign in nor approve.
    let id = listed["phones"].as_array().unwrap().iter().find(|p| p["name"] == "iPhone").unwrap()
        ["id"]
        .as_str()
        .unwrap()
        .to_string();
    let removed = w.mfad.enroll_cmd(&["--remove-phone", &id, "--user", ALICE]);
    assert!(removed.status.success(), "{}", String::from_utf8_lossy(&removed.stderr));
    let request = pam.start_push(ALICE, None);
    api(&two);
    let pending = pending_id(&two);
    let refused = two.eval(&format!("window.__t.approve('{pending}', {})", request.number));
    assert_eq!(refused["body"]["error"], "refused", "{refused}");
    assert!(w.mfad.log_text().contains("unknown-phone"));
    two.click("#signout");
    state(&two, "signin");
    let _ = two_key;
    let signin = two.eval("window.__t.post('/api/signin/begin', {}).then(b => window.__t.sign(b.body.publicKey)).then(c => window.__t.post('/api/signin/finish', {credential: c}))");
    assert_eq!(signin["body"]["error"], "refused", "{signin}");
    assert_eq!(answer(&one, request.number), "approved", "the first phone still approves");
    assert_eq!(request.finish().result(), "PAM_SUCCESS");
}

/// Approver1.Approve as root (as `mfa-approve` calls it); the error, or
/// "taken".
fn approver_approve(w: &Web, id: &str, number: u64) -> String {
    let config = pam_mfa_config::schema::Config::load(&w.mfad.config).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let conn =
            zbus::connection::Builder::address(config.bus.address.as_str()).build().await.unwrap();
        let approver = pam_mfa_client::ApproverProxy::new(&conn).await.unwrap();
        match approver.approve(id, u32::try_from(number).unwrap()).await {
            Ok(outcome) => format!("taken: {outcome}"),
            Err(e) => format!("{e:?}"),
        }
    })
}

#[test]
fn mfad_refuses_web1_to_another_user_even_when_the_bus_lets_the_call_through() {
    pam_mfa_tests::system::require_root();
    ensure_user(ALICE, false);
    // The bus policy is the first fence: here a mandatory rule opens it.
    let bus = pam_mfa_tests::Bus::start_with_policy(
        "<policy context=\"mandatory\"><allow send_destination=\"io.github.pam_mfa\" \
         send_interface=\"io.github.pam_mfa.Web1\"/></policy>",
    );
    let mfad = pam_mfa_tests::Mfad::start(
        &bus,
        "[web]\npublic_url = \"https://approver.test\"\nuser = \"root\"\n",
    );
    let register = |as_user: &str| {
        std::process::Command::new("runuser")
            .args(["-u", as_user, "--", "dbus-send", &format!("--bus={}", bus.address)])
            .args(["--print-reply", "--reply-timeout=5000", "--dest=io.github.pam_mfa"])
            .args(["/io/github/pam_mfa", "io.github.pam_mfa.Web1.Register"])
            .output()
            .unwrap()
    };
    let other = register(ALICE);
    let said = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success(), "{said}");
    assert!(
        said.contains("io.github.pam_mfa.Error.AccessDenied")
            && said.contains("is for the web approver's user only"),
        "mfad's own refusal, not the bus's: {said}"
    );
    assert!(mfad.log_text().contains("refused: not the web approver"), "{}", mfad.log_text());
    // The web approver's user (root here) is answered.
    let web = register("root");
    assert!(web.status.success(), "{}", String::from_utf8_lossy(&web.stderr));
    assert!(String::from_utf8_lossy(&web.stdout).contains("https://approver.test"));
}
