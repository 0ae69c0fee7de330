//! The phone approver under test: mfad with `[web]` on a private bus, the
//! real mfa-web over HTTPS with a test CA, pages in headless Chromium
//! with a virtual passkey, and `mfa-enroll --add-phone`. Shared by
//! `tests/phone.rs` and the phone benchmark.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::browser::{Browser, Tab, TestCa};
use crate::system::{ensure_user, free_port, require_root};
use crate::{bin, command, wait_for, Bus, Mfad};

/// The user the tests' phones belong to.
pub const ALICE: &str = "mfa-phone-alice";

pub const HOST: &str = "approver.test";
/// The same server under another name: another web origin.
pub const EVIL: &str = "evil.approver.test";
pub const SHORT: Duration = Duration::from_secs(20);

/// Where the web approver serves: a free port, a certificate of [`HOST`]
/// (and [`EVIL`]) from a test CA.
pub struct Site {
    ca: TestCa,
    pub port: u16,
    pub origin: String,
    cert: PathBuf,
    key: PathBuf,
}

impl Site {
    pub fn with_test_ca() -> Site {
        let ca = TestCa::new("pam-mfa phone test CA");
        let (cert, key) = ca.server_cert(HOST, &[HOST, EVIL]);
        let port = free_port();
        Site { ca, port, origin: format!("https://{HOST}:{port}"), cert, key }
    }

    /// The keys of `[web]` that serve this site.
    pub fn web_keys(&self) -> String {
        format!(
            "public_url = \"{}\"\nlisten = \"127.0.0.1:{}\"\ncertificate = \"{}\"\nkey = \"{}\"\nuser = \"root\"\n",
            self.origin,
            self.port,
            self.cert.display(),
            self.key.display()
        )
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.ca.cert.clone()
    }

    /// Runs mfa-web with `config`, its log in `log`, until it listens.
    fn serve(&self, config: &std::path::Path, log: &std::path::Path) -> Child {
        let file = std::fs::File::create(log).unwrap();
        let mut web = command(bin("mfa-web"))
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        let up = wait_for(SHORT, || std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok());
        if !up {
            let _ = web.kill();
            panic!("mfa-web did not listen: {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        web
    }
}

pub struct Web {
    _site: Site,
    _bus: Bus,
    pub mfad: Mfad,
    web: Child,
    pub origin: String,
    pub ca_cert: PathBuf,
}

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.web.kill();
        let _ = self.web.wait();
    }
}

/// mfad with `[web]`, and mfa-web serving it on a free port.
pub fn start() -> Web {
    start_with("request_burst = 20\n")
}

/// As [`start`], with `push` as the keys of mfad's `[push]`.
pub fn start_with(push: &str) -> Web {
    require_root();
    ensure_user(ALICE, false);
    let site = Site::with_test_ca();
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, &format!("[push]\n{push}[web]\n{}", site.web_keys()));
    let web = site.serve(&mfad.config, &mfad.dir.path().join("mfa-web.log"));
    let (origin, ca_cert) = (site.origin.clone(), site.ca_cert());
    Web { _site: site, _bus: bus, mfad, web, origin, ca_cert }
}

/// mfa-web in fleet mode: a config of its own, on the fleet's database
/// as the web approver's role `role` (through the server's socket).
pub struct FleetWeb {
    pub dir: tempfile::TempDir,
    web: Child,
}

impl Drop for FleetWeb {
    fn drop(&mut self) {
        let _ = self.web.kill();
        let _ = self.web.wait();
    }
}

impl FleetWeb {
    pub fn start(site: &Site, pg: &crate::postgres::Postgres, role: &str) -> FleetWeb {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("web.toml");
        std::fs::write(
            &config,
            format!(
                "[web]\n{}connection = \"{}\"\n[store]\ntimeout_ms = 800\n",
                site.web_keys(),
                pg.conninfo(role, "mfa")
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        let web = site.serve(&config, &dir.path().join("mfa-web.log"));
        FleetWeb { dir, web }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mfa-web.log")).unwrap_or_default()
    }
}

impl Web {
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.mfad.dir.path().join("mfa-web.log")).unwrap_or_default()
    }
}

/// `mfa-enroll --add-phone --json` as root for `user`, its lines as they come.
pub struct Enrolling {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Enrolling {
    /// For `user`, with mfad's config at `config`.
    pub fn start(config: &std::path::Path, user: &str) -> Enrolling {
        let mut child = command(bin("mfa-enroll"))
            .arg("--config")
            .arg(config)
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
    pub fn next(&self, event: &str) -> serde_json::Value {
        let line = self.lines.recv_timeout(SHORT).unwrap_or_else(|_| panic!("no {event} line"));
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["event"], event, "{line}");
        value
    }

    pub fn finish(mut self) -> (i32, String) {
        let status = self.child.wait().unwrap();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        (status.code().unwrap_or(-1), err)
    }
}

pub fn state(tab: &Tab, wanted: &str) {
    tab.wait_for(
        &format!("document.body.dataset.state === '{wanted}'"),
        SHORT,
        &format!("page state {wanted}"),
    );
}

/// Adds a phone to `user` through the page in `tab` (a virtual passkey
/// on it), passing the test number from the terminal. Returns its name.
pub fn add_phone(w: &Web, tab: &Tab, user: &str, name: &str) {
    add_phone_at(&w.mfad.config, &w.origin, tab, user, name);
}

/// [`add_phone`] for the mfad of `config` and the web approver at `origin`.
pub fn add_phone_at(config: &std::path::Path, origin: &str, tab: &Tab, user: &str, name: &str) {
    let enrolling = Enrolling::start(config, user);
    let link = enrolling.next("phone_link")["link"].as_str().unwrap().to_string();
    assert!(link.starts_with(&format!("{origin}/add#t=")), "{link}");
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
pub fn answer(tab: &Tab, number: u32) -> String {
    let waiting = "document.querySelector('.request:not([data-outcome])')";
    tab.wait_for(waiting, SHORT, "a request card");
    let id = tab.eval(&format!("{waiting}.dataset.id"));
    let card = format!(".request[data-id='{}']", id.as_str().unwrap());
    tab.fill(&format!("{card} .number"), &number.to_string());
    tab.click(&format!("{card} .approve"));
    let done = format!("document.querySelector(\"{card}[data-outcome]\")");
    tab.wait_for(&done, SHORT, "an outcome");
    tab.eval(&format!("{done}.dataset.outcome")).as_str().unwrap().to_string()
}

/// Page-side helpers for tests that speak the API themselves: base64url,
/// a POST with the session's CSRF token, and a passkey signature.
pub const API_JS: &str = r#"window.__t = {
  b2a: b => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''),
  a2b: s => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4)), c => c.charCodeAt(0)),
  async post(path, body) {
    const s = await fetch('/api/session');
    const csrf = s.ok ? (await s.json()).csrf : '';
    const r = await fetch(path, {method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf}, body: JSON.stringify(body)});
    return {status: r.status, body: await r.json()};
  },
  async sign(publicKey) {
    const pk = {...publicKey, challenge: this.a2b(publicKey.challenge)};
    if (pk.allowCredentials) pk.allowCredentials = pk.allowCredentials.map(c => ({...c, id: this.a2b(c.id)}));
    const c = await navigator.credentials.get({publicKey: pk});
    return {id: c.id, rawId: this.b2a(c.rawId), type: c.type, response: {
      authenticatorData: this.b2a(c.response.authenticatorData),
      clientDataJSON: this.b2a(c.response.clientDataJSON),
      signature: this.b2a(c.response.signature)}};
  },
  async approve(id, number) {
    const begun = await this.post('/api/approve/begin', {id, number});
    if (begun.status != 200) return begun;
    const credential = await this.sign(begun.body.publicKey);
    const done = await this.post('/api/approve/finish', {id, number, credential});
    done.credential = credential;
    return done;
  },
  async pending() { return (await (await fetch('/api/requests')).json()).requests; },
}; true"#;

pub fn api(tab: &Tab) {
    assert_eq!(tab.eval(API_JS), serde_json::json!(true));
}

/// The id of the one pending request the page's user sees.
pub fn pending_id(tab: &Tab) -> String {
    tab.wait_for("window.__t.pending().then(r => r.length == 1)", SHORT, "one pending request");
    tab.eval("window.__t.pending().then(r => r[0].id)").as_str().unwrap().to_string()
}

/// mfad's log lines since `from` bytes.
pub fn log_since(w: &Web, from: usize) -> String {
    w.mfad.log_text().get(from..).unwrap_or("").to_string()
}

/// `phone`'s browser, with its own passkey, signed in to the page as `user`.
pub fn phone_of(w: &Web, user: &str, name: &str) -> (Browser, Tab, String) {
    let browser = Browser::start(&w.ca_cert, &[HOST, EVIL], "en-US");
    let tab = browser.open("about:blank");
    let passkey = tab.add_authenticator();
    add_phone(w, &tab, user, name);
    tab.goto(&format!("{}/", w.origin));
    state(&tab, "list");
    api(&tab);
    (browser, tab, passkey)
}
