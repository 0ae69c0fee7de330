//! A real browser for the tests: Debian's headless Chromium driven over
//! the DevTools protocol, behind a synchronous API for plain `#[test]`
//! functions. Each [`Browser`] is its own Chromium in its own process
//! group, with a temporary HOME (whose NSS database trusts the test's CA,
//! and only it: no "ignore certificate errors") and a temporary profile;
//! test host names resolve to 127.0.0.1. Every call waits a bounded time
//! and panics with a clear message on failure.
//!
//! The protocol client is this file's own: one plain `ws://127.0.0.1`
//! WebSocket (`tungstenite`, blocking) to the browser, each tab a flat
//! session on it (`Target.attachToTarget`), JSON in and out. No async
//! runtime: a DevTools crate built on tokio's "process" feature would,
//! by Cargo's feature unification, give every binary of the workspace
//! (the PAM module too) tokio's signal driver and the socket pair it
//! keeps open.
//!
//! Chromium must be installed (`apt-get install chromium libnss3-tools`):
//! tests that use it fail, they do not skip, when it is missing.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use crate::system;

/// Debian's Chromium. The real program, not the `/usr/bin/chromium`
/// shell wrapper (which adds flags of its own from /etc/chromium.d).
const CHROMIUM: &str = "/usr/lib/chromium/chromium";

/// The limit of one protocol call (navigations included).
const CALL: Duration = Duration::from_secs(30);
/// The limit for an element that `fill` or `click` waits to appear.
const ELEMENT: Duration = Duration::from_secs(10);
/// The emulated phone: CSS pixels and device scale factor.
const PHONE: (u32, u32, f64) = (390, 844, 2.0);
/// The longest a caller holds the socket to read one message, so that
/// callers on other threads (other tabs) take turns.
const POLL: Duration = Duration::from_millis(50);

/// One headless Chromium with its own temporary HOME and profile, ended
/// (its whole process group) and removed when dropped.
pub struct Browser {
    cdp: Arc<Cdp>,
    lang: String,
    /// Chromium's process group, ended before `dir` is removed.
    _group: Group,
    /// HOME (with `.pki/nssdb`), `profile/` and `chromium.log`.
    dir: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium trusting `ca_pem` (a PEM CA certificate file), with
    /// each name in `hosts` mapped to 127.0.0.1, and `lang` (e.g. "en-US"
    /// or "nl-NL") as its language: Accept-Language, `navigator.languages`,
    /// and (set on each tab) the locale of `Intl`.
    pub fn start(ca_pem: &Path, hosts: &[&str], lang: &str) -> Browser {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: apt-get install chromium libnss3-tools"
        );
        let dir = tempfile::Builder::new().prefix("pam-mfa-chromium-").tempdir().unwrap();
        let home = dir.path().join("home");
        let profile = dir.path().join("profile");
        trust_ca(&home, ca_pem);
        // The language list: the profile's preference (what Chromium
        // sends as Accept-Language); `--lang` only picks the UI language.
        fs::create_dir_all(profile.join("Default")).unwrap();
        let prefs = json!({ "intl": { "accept_languages": accept_languages(lang) } });
        fs::write(profile.join("Default/Preferences"), prefs.to_string()).unwrap();
        let log_path = dir.path().join("chromium.log");
        let log = fs::File::create(&log_path).unwrap();
        let mut cmd = Command::new(CHROMIUM);
        cmd.args(["--headless=new", "--no-sandbox", "--remote-debugging-port=0"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--lang={lang}"))
            .args(["--no-first-run", "--no-default-browser-check", "--disable-sync"])
            .args(["--disable-background-networking", "--disable-component-update"])
            .args(["--disable-default-apps", "--disable-extensions", "--password-store=basic"])
            .args(["--hide-scrollbars", "--mute-audio"])
            .arg("about:blank")
            .env("HOME", &home)
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own process group, so that Drop ends all its processes.
            .process_group(0);
        if !hosts.is_empty() {
            let rules: Vec<String> = hosts.iter().map(|h| format!("MAP {h} 127.0.0.1")).collect();
            cmd.arg(format!("--host-resolver-rules={}", rules.join(",")));
        }
        // From here on a panic ends the group (before `dir` goes).
        let group = Group(cmd.spawn().unwrap_or_else(|e| panic!("{CHROMIUM}: {e}")));
        let ws_url = devtools_url(&profile, &group)
            .unwrap_or_else(|why| panic!("chromium did not start: {why}\n{}", log_tail(&log_path)));
        let cdp = Cdp::connect(&ws_url).unwrap_or_else(|e| {
            panic!("connecting to chromium at {ws_url}: {e}\n{}", log_tail(&log_path))
        });
        Browser { cdp: Arc::new(cdp), lang: lang.to_string(), _group: group, dir }
    }

    /// A new tab (its own page, phone-sized) at `url`, waited until
    /// loaded; panics when the navigation fails (a certificate error, say).
    pub fn open(&self, url: &str) -> Tab {
        let call = |method: &str, params: Value| {
            self.cdp
                .call(None, method, params, CALL)
                .unwrap_or_else(|e| panic!("chromium: opening a tab: {method}: {e}"))
        };
        let created = call("Target.createTarget", json!({ "url": "about:blank" }));
        let target = created["targetId"].as_str().unwrap_or_else(|| panic!("{created}"));
        let attached =
            call("Target.attachToTarget", json!({ "targetId": target, "flatten": true }));
        let session = attached["sessionId"].as_str().unwrap_or_else(|| panic!("{attached}"));
        // Its console is kept from now on (events of other sessions are not).
        self.cdp.state().console.insert(session.to_string(), Vec::new());
        // From here on a panic closes the tab.
        let tab = Tab {
            cdp: Arc::clone(&self.cdp),
            target: target.to_string(),
            session: session.to_string(),
            log: self.dir.path().join("chromium.log"),
        };
        // Console calls, exceptions; browser log entries (a failed load).
        tab.cdp("Runtime.enable", json!({}));
        tab.cdp("Log.enable", json!({}));
        let (width, height, scale) = PHONE;
        tab.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({
                "width": width,
                "height": height,
                "deviceScaleFactor": scale,
                "mobile": true,
                "screenOrientation": { "type": "portraitPrimary", "angle": 0 },
            }),
        );
        tab.cdp("Emulation.setTouchEmulationEnabled", json!({ "enabled": true }));
        // ICU style ("nl_NL"): the locale of the page's `Intl`.
        tab.cdp("Emulation.setLocaleOverride", json!({ "locale": self.lang.replace('-', "_") }));
        tab.goto(url);
        tab
    }

    /// Chromium's own output so far (for assertion messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("chromium.log")).unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ask it to quit; then `group` ends whatever is left, and `dir`
        // is removed.
        let _ = self.cdp.call(None, "Browser.close", json!({}), Duration::from_secs(3));
    }
}

/// One tab of a [`Browser`], closed when dropped.
pub struct Tab {
    cdp: Arc<Cdp>,
    target: String,
    /// The tab's session on the browser's connection.
    session: String,
    /// Chromium's output, quoted when a load fails.
    log: PathBuf,
}

impl Tab {
    /// Goes to `url` and waits until it is loaded; panics when the
    /// navigation fails.
    pub fn goto(&self, url: &str) {
        if let Err(e) = self.navigate(url) {
            let log = log_tail(&self.log);
            panic!("loading {url}: {e}\nconsole: {:#?}\nchromium: {log}", self.console());
        }
    }

    /// Goes to `url` and waits until it is loaded, or returns Chromium's
    /// error (e.g. `net::ERR_CERT_AUTHORITY_INVALID`).
    pub fn navigate(&self, url: &str) -> Result<(), String> {
        // The answer comes once the navigation is committed, or failed.
        let nav = self.call("Page.navigate", json!({ "url": url }), CALL)?;
        if let Some(error) = nav["errorText"].as_str().filter(|e| !e.is_empty()) {
            return Err(error.to_string());
        }
        self.wait_for("document.readyState === 'complete'", CALL, &format!("{url} to load"));
        Ok(())
    }

    /// Sends the DevTools command `method` with `params` to this tab and
    /// returns its result.
    pub fn cdp(&self, method: &str, params: Value) -> Value {
        self.call(method, params, CALL).unwrap_or_else(|e| panic!("chromium: {method}: {e}"))
    }

    /// Adds a virtual passkey authenticator (CTAP 2.1, internal, resident
    /// keys, user verification that succeeds, presence simulated) to this
    /// tab; returns its id.
    pub fn add_authenticator(&self) -> String {
        self.cdp("WebAuthn.enable", json!({ "enableUI": false }));
        let added = self.cdp(
            "WebAuthn.addVirtualAuthenticator",
            json!({ "options": {
                "protocol": "ctap2",
                "ctap2Version": "ctap2_1",
                "transport": "internal",
                "hasResidentKey": true,
                "hasUserVerification": true,
                "isUserVerified": true,
                "automaticPresenceSimulation": true,
            }}),
        );
        added["authenticatorId"].as_str().unwrap_or_else(|| panic!("no id in {added}")).to_string()
    }

    /// Removes the virtual authenticator `id`.
    pub fn remove_authenticator(&self, id: &str) {
        self.cdp("WebAuthn.removeVirtualAuthenticator", json!({ "authenticatorId": id }));
    }

    /// From now on authenticator `id` answers with a bogus signature, with
    /// the UV (user verified) flag clear, with the UP (user present) flag
    /// clear, as asked (`WebAuthn.setResponseOverrideBits`).
    pub fn override_bits(&self, id: &str, bogus_signature: bool, bad_uv: bool, bad_up: bool) {
        self.cdp(
            "WebAuthn.setResponseOverrideBits",
            json!({
                "authenticatorId": id,
                "isBogusSignature": bogus_signature,
                "isBadUV": bad_uv,
                "isBadUP": bad_up,
            }),
        );
    }

    /// The credentials authenticator `id` holds, as the protocol gives
    /// them: `credentialId` (standard base64; the page sees base64url),
    /// `rpId`, `userHandle` (base64), `signCount`, `isResidentCredential`…
    pub fn credentials(&self, id: &str) -> Vec<Value> {
        let got = self.cdp("WebAuthn.getCredentials", json!({ "authenticatorId": id }));
        match &got["credentials"] {
            Value::Array(list) => list.clone(),
            _ => panic!("WebAuthn.getCredentials gave {got}"),
        }
    }

    /// Evaluates `js` (an expression; a returned promise is awaited) as a
    /// user gesture and returns its JSON value (`undefined`: null); panics
    /// on an exception.
    pub fn eval(&self, js: &str) -> Value {
        match self.try_eval(js, CALL) {
            Ok(value) => value,
            Err(e) => panic!("evaluating {js}: {e}\nconsole: {:#?}", self.console()),
        }
    }

    fn try_eval(&self, js: &str, limit: Duration) -> Result<Value, String> {
        let params = json!({
            "expression": js,
            "awaitPromise": true,
            "returnByValue": true,
            "userGesture": true,
        });
        let reply = self.call("Runtime.evaluate", params, limit)?;
        if let Some(details) = reply.get("exceptionDetails") {
            let what = details.get("exception").map(describe).unwrap_or_default();
            return Err(format!("{} {what}", details["text"].as_str().unwrap_or_default()));
        }
        // No value: `undefined`.
        Ok(reply["result"]["value"].clone())
    }

    /// Waits until the JS expression `js` is truthy, up to `limit`; panics
    /// with `what`, the page's text and its console on timeout.
    pub fn wait_for(&self, js: &str, limit: Duration, what: &str) {
        let start = Instant::now();
        let check = format!("!!({js})");
        loop {
            let left = limit.saturating_sub(start.elapsed()).max(Duration::from_millis(100));
            let last = match self.try_eval(&check, left) {
                Ok(Value::Bool(true)) => return,
                Ok(other) => other.to_string(),
                // A navigation under way destroys the context: try again.
                Err(e) => e,
            };
            if start.elapsed() >= limit {
                let text = self.try_eval("document.body ? document.body.innerText : ''", CALL);
                let url = self.try_eval("location.href", CALL);
                panic!(
                    "waited {limit:?} for {what} ({js}: {last})\nat {}\npage text: {}\nconsole: {:#?}",
                    url.map(|u| u.to_string()).unwrap_or_else(|e| e),
                    text.map(|t| t.as_str().unwrap_or_default().to_string()).unwrap_or_else(|e| e),
                    self.console()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Types `text` into the element matched by the CSS `selector` (waited
    /// for): focuses it, clears it, inserts the text as typing does
    /// (`input` events), then fires `change`.
    pub fn fill(&self, selector: &str, text: &str) {
        let sel = serde_json::to_string(selector).unwrap();
        self.wait_for(&format!("document.querySelector({sel})"), ELEMENT, selector);
        self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel}); e.focus(); e.value = ''; }})()"
        ));
        self.cdp("Input.insertText", json!({ "text": text }));
        let value = self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel});
                e.dispatchEvent(new Event('change', {{ bubbles: true }})); return e.value; }})()"
        ));
        assert_eq!(value, text, "{selector} holds {value} after typing {text:?}");
    }

    /// Clicks (a real mouse click, in view) the element matched by the CSS
    /// `selector`, waited for until it is displayed.
    pub fn click(&self, selector: &str) {
        let sel = serde_json::to_string(selector).unwrap();
        self.wait_for(
            &format!("(e => e && e.getClientRects().length > 0)(document.querySelector({sel}))"),
            ELEMENT,
            &format!("{selector} to be displayed"),
        );
        // Scrolled into view unless wholly visible already, then the
        // center of its first box (CSS pixels of the viewport).
        let point = self.eval(&format!(
            "(async e => {{
                const seen = await new Promise(resolve => {{
                    const o = new IntersectionObserver(entries => {{
                        o.disconnect(); resolve(entries[0].intersectionRatio); }});
                    o.observe(e);
                }});
                if (seen !== 1) e.scrollIntoView({{ block: 'center', inline: 'center', behavior: 'instant' }});
                const r = [...e.getClientRects()].find(r => r.width * r.height > 1);
                return r ? [r.left + r.width / 2, r.top + r.height / 2] : null;
            }})(document.querySelector({sel}))"
        ));
        let (Some(x), Some(y)) = (point[0].as_f64(), point[1].as_f64()) else {
            panic!("clicking {selector}: it has no box to click ({point})");
        };
        self.cdp("Input.dispatchMouseEvent", json!({ "type": "mouseMoved", "x": x, "y": y }));
        for kind in ["mousePressed", "mouseReleased"] {
            self.cdp(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            );
        }
    }

    /// Saves a PNG screenshot of the (phone-sized) viewport to `path`.
    pub fn screenshot(&self, path: &Path) {
        self.cdp("Page.bringToFront", json!({}));
        let shot = self.cdp("Page.captureScreenshot", json!({ "format": "png" }));
        let data = shot["data"].as_str().unwrap_or_else(|| panic!("no screenshot data"));
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap_or_else(|e| panic!("screenshot data: {e}"));
        fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// The console messages, uncaught exceptions and browser log entries
    /// (a failed load, say) seen so far, for assertion messages.
    pub fn console(&self) -> Vec<String> {
        // Whatever the browser has sent meanwhile first.
        self.cdp.drain();
        self.cdp.state().console.get(&self.session).cloned().unwrap_or_default()
    }

    fn call(&self, method: &str, params: Value, limit: Duration) -> Result<Value, String> {
        self.cdp.call(Some(&self.session), method, params, limit)
    }
}

impl Drop for Tab {
    fn drop(&mut self) {
        let close = json!({ "targetId": self.target });
        let _ = self.cdp.call(None, "Target.closeTarget", close, Duration::from_secs(2));
        self.cdp.state().console.remove(&self.session);
    }
}

/// A DevTools protocol connection: one WebSocket to the browser, shared
/// by its tabs (each a session on it). There is no reader thread: a caller
/// reads (a message at a time, holding the socket at most [`POLL`]) until
/// its own answer is in, keeping the answers of others' calls for them and
/// the console events of the tabs.
struct Cdp {
    ws: Mutex<WebSocket<TcpStream>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The id of the last command sent.
    last_id: u64,
    /// The ids of the calls waiting for their answers…
    waiting: HashSet<u64>,
    /// …and the answers read for them.
    answers: HashMap<u64, Value>,
    /// The console lines of each tab's session.
    console: HashMap<String, Vec<String>>,
    /// Why the connection is no more.
    lost: Option<String>,
}

impl Cdp {
    /// Connects to the browser at `url` (`ws://127.0.0.1:port/devtools/browser/…`).
    fn connect(url: &str) -> Result<Cdp, String> {
        let host = url.strip_prefix("ws://").and_then(|rest| rest.split('/').next());
        let addr: SocketAddr = host
            .and_then(|h| h.parse().ok())
            .ok_or_else(|| format!("not a ws://address:port/ URL: {url}"))?;
        let stream = TcpStream::connect_timeout(&addr, CALL).map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(CALL)).map_err(|e| e.to_string())?;
        stream.set_write_timeout(Some(CALL)).map_err(|e| e.to_string())?;
        // Screenshots are large messages.
        let config = WebSocketConfig::default()
            .max_message_size(Some(256 << 20))
            .max_frame_size(Some(256 << 20));
        let (ws, _) = tungstenite::client::client_with_config(url, stream, Some(config))
            .map_err(|e| format!("WebSocket handshake: {e}"))?;
        Ok(Cdp { ws: Mutex::new(ws), state: Mutex::new(State::default()) })
    }

    /// Sends the command `method` with `params` to the tab `session` (or
    /// to the browser) and waits up to `limit` for its result.
    fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
        limit: Duration,
    ) -> Result<Value, String> {
        let start = Instant::now();
        let id = {
            let mut state = self.state();
            if let Some(why) = &state.lost {
                return Err(format!("the DevTools connection is lost: {why}"));
            }
            state.last_id += 1;
            let id = state.last_id;
            state.waiting.insert(id);
            id
        };
        let mut command = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            command["sessionId"] = session.into();
        }
        let sent = lock(&self.ws).send(Message::text(command.to_string()));
        if let Err(e) = sent {
            self.lose(format!("sending: {e}"));
        }
        loop {
            {
                let mut state = self.state();
                let done = if let Some(answer) = state.answers.remove(&id) {
                    Some(result(answer))
                } else if let Some(why) = &state.lost {
                    Some(Err(format!("the DevTools connection is lost: {why}")))
                } else if start.elapsed() >= limit {
                    Some(Err(format!("no answer within {limit:?}")))
                } else {
                    None
                };
                if let Some(done) = done {
                    // A late answer is dropped.
                    state.waiting.remove(&id);
                    return done;
                }
            }
            self.read(limit.saturating_sub(start.elapsed()).min(POLL));
        }
    }

    /// Reads what the browser has sent already (console events, say).
    fn drain(&self) {
        for _ in 0..10_000 {
            if !self.read(Duration::from_millis(1)) {
                break;
            }
        }
    }

    /// Reads a message, waiting up to `wait` for it, and files it; false
    /// when none came.
    fn read(&self, wait: Duration) -> bool {
        let mut ws = lock(&self.ws);
        // (Zero would mean no limit.)
        if let Err(e) = ws.get_mut().set_read_timeout(Some(wait.max(Duration::from_millis(1)))) {
            self.lose(format!("socket: {e}"));
            return false;
        }
        // A read that times out leaves a partial message buffered, for
        // the next read to finish.
        match ws.read() {
            Ok(Message::Text(text)) => {
                drop(ws);
                self.file(text.as_str());
                true
            }
            Ok(Message::Close(frame)) => {
                self.lose(format!("closed by chromium ({frame:?})"));
                false
            }
            Ok(_) => true,
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                false
            }
            Err(e) => {
                self.lose(e.to_string());
                false
            }
        }
    }

    /// Files a message: an answer for its caller, a tab's console event
    /// in its console; the rest is not needed.
    fn file(&self, text: &str) {
        let Ok(message) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let mut state = self.state();
        if let Some(id) = message["id"].as_u64() {
            if state.waiting.contains(&id) {
                state.answers.insert(id, message);
            }
        } else if let (Some(session), Some(line)) =
            (message["sessionId"].as_str(), console_line(&message))
        {
            if let Some(console) = state.console.get_mut(session) {
                console.push(line);
            }
        }
    }

    fn lose(&self, why: String) {
        self.state().lost.get_or_insert(why);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

/// Locks `mutex`, even one a panicking thread held (the data stays sound:
/// no update is left half done).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A command's answer: its result, or its error as text.
fn result(mut answer: Value) -> Result<Value, String> {
    match answer.get("error") {
        Some(error) => {
            let message = error["message"].as_str().unwrap_or_default();
            let data = error["data"].as_str().map(|d| format!(": {d}")).unwrap_or_default();
            Err(format!("{message} ({}){data}", error["code"]))
        }
        None => Ok(answer["result"].take()),
    }
}

/// A console call, an uncaught exception or a browser log entry as a
/// line of text; None for other events.
fn console_line(event: &Value) -> Option<String> {
    let params = &event["params"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    match event["method"].as_str()? {
        "Runtime.consoleAPICalled" => {
            let args: Vec<String> = match &params["args"] {
                Value::Array(args) => args.iter().map(describe).collect(),
                _ => Vec::new(),
            };
            Some(format!("console.{}: {}", text(&params["type"]), args.join(" ")))
        }
        "Runtime.exceptionThrown" => {
            let d = &params["exceptionDetails"];
            let what = d.get("exception").map(describe).unwrap_or_default();
            let (message, url) = (text(&d["text"]), text(&d["url"]));
            Some(format!("exception: {message} {what} ({url}:{})", d["lineNumber"]))
        }
        "Log.entryAdded" => {
            let entry = &params["entry"];
            let (level, message, url) =
                (text(&entry["level"]), text(&entry["text"]), text(&entry["url"]));
            Some(format!("log.{level}: {message} {url}"))
        }
        _ => None,
    }
}

/// A remote object (a console argument, an exception) as text.
fn describe(object: &Value) -> String {
    match (&object["value"], &object["description"]) {
        (Value::String(s), _) => s.clone(),
        (Value::Null, Value::String(description)) => description.clone(),
        (Value::Null, _) if object["subtype"] == "null" => "null".to_string(),
        (Value::Null, _) => object["type"].as_str().unwrap_or_default().to_string(),
        (value, _) => value.to_string(),
    }
}

pub use crate::tls::TestCa;

/// The Accept-Language list for `lang`: "nl-NL" gives "nl-NL,nl".
fn accept_languages(lang: &str) -> String {
    match lang.split_once(['-', '_']) {
        Some((base, _)) => format!("{lang},{base}"),
        None => lang.to_string(),
    }
}

/// Makes `home`/.pki/nssdb, an NSS database trusting `ca_pem` to
/// identify web sites: where Chromium on Linux reads the user's trust.
fn trust_ca(home: &Path, ca_pem: &Path) {
    let db = home.join(".pki/nssdb");
    fs::create_dir_all(&db).unwrap();
    let db = format!("sql:{}", db.display());
    assert!(which("certutil").is_some(), "certutil is missing: apt-get install libnss3-tools");
    let certutil =
        |args: &[&str]| system::run(Command::new("certutil").args(["-d", &db]).args(args));
    certutil(&["-N", "--empty-password"]);
    let ca = ca_pem.to_str().unwrap();
    certutil(&["-A", "-t", "C,,", "-n", "pam-mfa test CA", "-i", ca]);
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// Reads the DevTools websocket address Chromium writes to
/// `profile`/DevToolsActivePort (its port, then its path).
fn devtools_url(profile: &Path, group: &Group) -> Result<String, String> {
    let file = profile.join("DevToolsActivePort");
    let start = Instant::now();
    while start.elapsed() < CALL {
        if let Ok(text) = fs::read_to_string(&file) {
            let lines: Vec<&str> = text.lines().collect();
            if let [port, path, ..] = lines[..] {
                return Ok(format!("ws://127.0.0.1:{port}{path}"));
            }
        }
        if group.leader_exited() {
            return Err("it exited".to_string());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("no {} within {CALL:?}", file.display()))
}

/// A child started as the leader of its own process group. Dropping it
/// waits (up to 5 s, unless panicking) for the leader to exit, kills what
/// is left of the group, then reaps the leader: reaped last, so that the
/// group id cannot be reused meanwhile. (Chromium's two crashpad
/// handlers leave the group, setsid; they end by themselves when Chromium
/// does. `--disable-crashpad-for-testing` would keep them away, but with it
/// Chromium 156's network service crashes.)
struct Group(Child);

impl Group {
    /// Whether the leader has exited, without reaping it.
    fn leader_exited(&self) -> bool {
        use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        !matches!(waitid(Id::Pid(self.pid()), flags), Ok(WaitStatus::StillAlive))
    }

    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(i32::try_from(self.0.id()).unwrap())
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let start = Instant::now();
        let wait = if std::thread::panicking() { Duration::ZERO } else { Duration::from_secs(5) };
        while !self.leader_exited() && start.elapsed() < wait {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = nix::sys::signal::killpg(self.pid(), nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// The last lines of Chromium's output, less its complaints about D-Bus
/// (there is no session bus).
fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.contains(":ERROR:dbus/")).collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
