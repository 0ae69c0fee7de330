//! The browser harness itself, against a real HTTPS server (`openssl
//! s_server`) whose certificate a test CA issued: the page loads under
//! its name, forms and clicks work, a virtual passkey registers and signs
//! in, screenshots are PNGs; and a certificate from another CA is refused
//! (the browser trusts the test CA, it does not ignore errors).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pam_mfa_tests::browser::{Browser, TestCa};
use pam_mfa_tests::system::free_port;
use pam_mfa_tests::wait_for;

const HOST: &str = "approver.test";

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>harness</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body>
<h1>Harness page</h1>
<form id="greet"><input id="name" autocomplete="off"><button id="go" type="submit">Greet</button></form>
<p id="greeting"></p>
<button id="passkey">Use a passkey</button>
<p id="status"></p>
<script>
window.answer = 6 * 7;
document.getElementById('greet').addEventListener('submit', e => {
  e.preventDefault();
  document.getElementById('greeting').textContent =
    'Hello, ' + document.getElementById('name').value;
});
const b64url = buf => btoa(String.fromCharCode(...new Uint8Array(buf)))
  .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const flags = assertion => new Uint8Array(assertion.response.authenticatorData)[32];
async function signIn(timeout = 5000) {
  const got = await navigator.credentials.get({ publicKey: {
    challenge: crypto.getRandomValues(new Uint8Array(32)),
    rpId: 'approver.test', userVerification: 'required', timeout } });
  return { id: got.id, up: !!(flags(got) & 1), uv: !!(flags(got) & 4),
           user: new TextDecoder().decode(got.response.userHandle) };
}
async function passkey() {
  const made = await navigator.credentials.create({ publicKey: {
    challenge: crypto.getRandomValues(new Uint8Array(32)),
    rp: { id: 'approver.test', name: 'Approver test' },
    user: { id: new TextEncoder().encode('user-1'), name: 'alice', displayName: 'Alice' },
    pubKeyCredParams: [{ type: 'public-key', alg: -7 }, { type: 'public-key', alg: -257 }],
    authenticatorSelection: { residentKey: 'required', userVerification: 'required' } } });
  return { created: b64url(made.rawId), signIn: await signIn() };
}
document.getElementById('passkey').addEventListener('click', () => {
  document.getElementById('status').textContent = 'working';
  passkey().then(r => { window.result = r; document.getElementById('status').textContent = 'done'; },
                 e => { window.result = { error: String(e) };
                        document.getElementById('status').textContent = 'failed: ' + e; });
});
console.log('harness page ready');
</script>
</body></html>
"#;

/// `openssl s_server -WWW` serving `PAGE` as /page.html on 127.0.0.1,
/// with a certificate for `HOST`; stopped when dropped.
struct TlsServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TlsServer {
    fn start(ca: &TestCa, name: &str) -> TlsServer {
        let (cert, key) = ca.server_cert(name, &[HOST]);
        let dir = tempfile::tempdir().unwrap();
        // (s_server -WWW serves files: no query strings.)
        fs::write(dir.path().join("page.html"), PAGE).unwrap();
        fs::write(dir.path().join("again.html"), PAGE).unwrap();
        let port = free_port();
        let child = Command::new("openssl")
            .current_dir(dir.path())
            .args(["s_server", "-quiet", "-WWW", "-accept", &format!("127.0.0.1:{port}")])
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let up = wait_for(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "openssl s_server did not listen on {port}");
        TlsServer { child, port, _dir: dir }
    }

    fn url(&self, path: &str) -> String {
        format!("https://{HOST}:{}/{path}", self.port)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn page_form_passkey_and_screenshot() {
    let started = Instant::now();
    let ca = TestCa::new("pam-mfa browser test CA");
    let server = TlsServer::start(&ca, "server");
    let browser = Browser::start(&ca.cert, &[HOST], "en-US");
    let tab = browser.open(&server.url("page.html"));

    // The page, under its name, over trusted HTTPS.
    assert_eq!(tab.eval("window.answer"), 42);
    assert_eq!(tab.eval("location.href"), server.url("page.html").as_str());
    assert_eq!(tab.eval("window.isSecureContext"), true);
    assert_eq!(tab.eval("Promise.resolve(1 + 2)"), 3, "a promise is awaited");
    assert_eq!(tab.eval("[innerWidth, devicePixelRatio]"), serde_json::json!([390, 2]));
    assert_eq!(tab.eval("navigator.language"), "en-US");
    let console = tab.console();
    assert!(console.iter().any(|l| l == "console.log: harness page ready"), "{console:?}");

    // A form: typed into, submitted by a click.
    tab.fill("#name", "Zoë");
    tab.click("#go");
    tab.wait_for(
        "document.getElementById('greeting').textContent === 'Hello, Zoë'",
        Duration::from_secs(5),
        "the greeting",
    );

    // A passkey: registered, then used with user verification required.
    let authenticator = tab.add_authenticator();
    tab.click("#passkey");
    tab.wait_for("window.result", Duration::from_secs(10), "the passkey ceremonies");
    let result = tab.eval("window.result");
    assert!(result["error"].is_null(), "{result}");
    assert_eq!(result["signIn"]["id"], result["created"], "{result}");
    assert_eq!(result["signIn"]["user"], "user-1", "{result}");
    assert_eq!(result["signIn"]["uv"], true, "{result}");
    assert_eq!(result["signIn"]["up"], true, "{result}");
    let credentials = tab.credentials(&authenticator);
    assert_eq!(credentials.len(), 1, "{credentials:?}");
    let credential = &credentials[0];
    assert_eq!(credential["rpId"], HOST, "{credential}");
    assert_eq!(credential["userHandle"], "dXNlci0x", "base64 of user-1: {credential}");
    assert_eq!(credential["isResidentCredential"], true, "{credential}");
    // One signature at registration, one at sign-in.
    assert_eq!(credential["signCount"], 2, "{credential}");
    // The protocol gives standard base64, the page base64url.
    let id = credential["credentialId"].as_str().unwrap();
    let id_url = id.replace('+', "-").replace('/', "_").trim_end_matches('=').to_string();
    assert_eq!(result["created"], id_url.as_str());

    // Override bits: the next assertion says "not verified".
    tab.override_bits(&authenticator, false, true, false);
    let again = tab.eval("signIn()");
    assert_eq!(again["uv"], false, "{again}");
    assert_eq!(again["id"], result["created"], "{again}");
    tab.override_bits(&authenticator, false, false, false);
    assert_eq!(tab.eval("signIn()")["uv"], true);
    assert_eq!(tab.credentials(&authenticator)[0]["signCount"], 4);

    // Without the authenticator, signing in fails.
    tab.remove_authenticator(&authenticator);
    let refused = tab.eval("signIn(1000).then(() => 'signed in', e => e.name)");
    assert_eq!(refused, "NotAllowedError");

    // A screenshot of the phone-sized viewport.
    let shots = tempfile::tempdir().unwrap();
    let png = shots.path().join("page.png");
    tab.screenshot(&png);
    let bytes = fs::read(&png).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG: {:?}",
        &bytes[..8.min(bytes.len())]
    );
    // 390 x 844 CSS pixels at device scale 2 (the IHDR width and height).
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (780, 1688));

    // goto in the same tab, and wait_for that times out names what it waited for.
    tab.goto(&server.url("again.html"));
    assert_eq!(tab.eval("location.pathname"), "/again.html");
    let timeout = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tab.wait_for("window.never", Duration::from_millis(300), "something that never comes")
    }));
    let message = timeout.unwrap_err();
    let message = message.downcast_ref::<String>().unwrap();
    assert!(message.contains("something that never comes"), "{message}");
    assert!(message.contains("Harness page"), "the page text: {message}");
    eprintln!("browser harness test took {:?}", started.elapsed());
}

#[test]
fn trust_is_the_test_cas_only() {
    let ca = TestCa::new("pam-mfa browser test CA");
    let other = TestCa::new("some other CA");
    let trusted = TlsServer::start(&ca, "server");
    let untrusted = TlsServer::start(&other, "server");
    let browser = Browser::start(&ca.cert, &[HOST], "nl-NL");

    let tab = browser.open(&trusted.url("page.html"));
    assert_eq!(tab.eval("window.answer"), 42);
    // The language: Accept-Language list, and Intl's locale.
    assert_eq!(tab.eval("navigator.languages"), serde_json::json!(["nl-NL", "nl"]));
    assert_eq!(tab.eval("Intl.DateTimeFormat().resolvedOptions().locale"), "nl-NL");

    let error = tab.navigate(&untrusted.url("page.html")).unwrap_err();
    assert!(error.contains("ERR_CERT_AUTHORITY_INVALID"), "{error}");
    let href = tab.eval("location.href");
    assert!(href.as_str().unwrap().starts_with("chrome-error://"), "{href}");
    assert_eq!(tab.eval("typeof window.answer"), "undefined");

    // A new tab at the untrusted server panics, naming the error.
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        browser.open(&untrusted.url("page.html"))
    }));
    let message = opened.err().expect("an untrusted page opened");
    let message = message.downcast_ref::<String>().unwrap();
    assert!(message.contains("ERR_CERT_AUTHORITY_INVALID"), "{message}");
}
