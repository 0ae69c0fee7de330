//! A real browser for the tests: Debian's headless Chromium driven over
//! the DevTools protocol (with `chromiumoxide`), behind a synchronous API
//! for plain `#[test]` functions. Each [`Browser`] is its own Chromium in
//! its own process group, with a temporary HOME (whose NSS database
//! trusts the test's CA, and only it: no "ignore certificate errors") and
//! a temporary profile; test host names resolve to 127.0.0.1. Every call
//! waits a bounded time and panics with a clear message on failure.
//!
//! Chromium must be installed (`apt-get install chromium libnss3-tools`):
//! tests that use it fail, they do not skip, when it is missing.

use std::borrow::Cow;
use std::fs;
use std::future::Future;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::emulation::SetLocaleOverrideParams;
use chromiumoxide::cdp::browser_protocol::input::InsertTextParams;
use chromiumoxide::cdp::browser_protocol::log::EventEntryAdded;
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::cdp::js_protocol::runtime::{
    EvaluateParams, EventConsoleApiCalled, EventExceptionThrown, RemoteObject,
};
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::handler::HandlerConfig;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::types::{Method, MethodId};
use futures::StreamExt;
use serde_json::{json, Value};

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

/// One headless Chromium with its own temporary HOME and profile, ended
/// (its whole process group) and removed when dropped.
pub struct Browser {
    rt: Arc<tokio::runtime::Runtime>,
    browser: chromiumoxide::Browser,
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
        let rt = Arc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .thread_name("chromium-cdp")
                .build()
                .unwrap(),
        );
        let config = HandlerConfig {
            // chromiumoxide's default ignores certificate errors: trust
            // must come from the CA alone.
            ignore_https_errors: false,
            viewport: Some(Viewport {
                width: PHONE.0,
                height: PHONE.1,
                device_scale_factor: Some(PHONE.2),
                emulating_mobile: true,
                is_landscape: false,
                has_touch: true,
            }),
            request_timeout: CALL,
            ..HandlerConfig::default()
        };
        let connect = chromiumoxide::Browser::connect_with_config(ws_url.clone(), config);
        let (browser, mut handler) = match within(&rt, CALL, connect) {
            Some(Ok(pair)) => pair,
            Some(Err(e)) => {
                panic!("connecting to chromium at {ws_url}: {e}\n{}", log_tail(&log_path))
            }
            None => panic!("connecting to chromium at {ws_url} took more than {CALL:?}"),
        };
        // The handler drives every request and event; it ends with the
        // connection.
        rt.spawn(async move { while handler.next().await.is_some() {} });
        Browser { rt, browser, lang: lang.to_string(), _group: group, dir }
    }

    /// A new tab (its own page, phone-sized) at `url`, waited until
    /// loaded; panics when the navigation fails (a certificate error, say).
    pub fn open(&self, url: &str) -> Tab {
        let page = self.block("opening a tab", CALL, self.browser.new_page("about:blank"));
        let tab = Tab {
            rt: Arc::clone(&self.rt),
            page,
            console: Arc::new(Mutex::new(Vec::new())),
            log: self.dir.path().join("chromium.log"),
        };
        tab.listen();
        // ICU style ("nl_NL"): the locale of the page's `Intl`.
        let locale = SetLocaleOverrideParams::builder().locale(self.lang.replace('-', "_")).build();
        tab.block("setting the locale", CALL, tab.page.emulate_locale(locale));
        tab.goto(url);
        tab
    }

    /// Chromium's own output so far (for assertion messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("chromium.log")).unwrap_or_default()
    }

    fn block<F: Future>(&self, what: &str, limit: Duration, fut: F) -> <F::Output as ResultLike>::Ok
    where
        F::Output: ResultLike,
    {
        block(&self.rt, what, limit, fut)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ask it to quit; then `group` ends whatever is left, and `dir`
        // is removed.
        let _ = within(&self.rt, Duration::from_secs(3), self.browser.close());
    }
}

/// One tab of a [`Browser`], closed when dropped.
pub struct Tab {
    rt: Arc<tokio::runtime::Runtime>,
    page: chromiumoxide::Page,
    console: Arc<Mutex<Vec<String>>>,
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
        match within(&self.rt, CALL, self.page.goto(url)) {
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err(format!("no load within {CALL:?}")),
        }
        self.wait_for("document.readyState === 'complete'", CALL, &format!("{url} to load"));
        Ok(())
    }

    /// Sends the DevTools command `method` with `params` to this tab and
    /// returns its result.
    pub fn cdp(&self, method: &str, params: Value) -> Value {
        let cmd = Raw { method: method.to_string(), params };
        self.block(method, CALL, self.page.execute(cmd)).result
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
        let params = EvaluateParams::builder()
            .expression(js)
            .await_promise(true)
            .return_by_value(true)
            .user_gesture(true)
            .build()
            .unwrap();
        let reply = match within(&self.rt, limit, self.page.execute(params)) {
            Some(Ok(reply)) => reply.result,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err(format!("no answer within {limit:?}")),
        };
        if let Some(details) = reply.exception_details {
            let what = details.exception.as_ref().map(describe).unwrap_or_default();
            return Err(format!("{} {what}", details.text));
        }
        Ok(reply.result.value.unwrap_or(Value::Null))
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
        self.block("typing", CALL, self.page.execute(InsertTextParams::new(text)));
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
        self.block("clicking", CALL, async {
            self.page.find_element(selector).await?.click().await?;
            Ok::<_, chromiumoxide::error::CdpError>(())
        });
    }

    /// Saves a PNG screenshot of the (phone-sized) viewport to `path`.
    pub fn screenshot(&self, path: &Path) {
        let params = ScreenshotParams::builder().format(CaptureScreenshotFormat::Png).build();
        let png = self.block("screenshot", CALL, self.page.screenshot(params));
        fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// The console messages, uncaught exceptions and browser log entries
    /// (a failed load, say) seen so far, for assertion messages.
    pub fn console(&self) -> Vec<String> {
        self.console.lock().unwrap().clone()
    }

    /// Records console calls, exceptions and log entries into `console`.
    fn listen(&self) {
        let page = &self.page;
        let (calls, thrown, entries) = self.block("listening", CALL, async {
            let calls = page.event_listener::<EventConsoleApiCalled>().await?;
            let thrown = page.event_listener::<EventExceptionThrown>().await?;
            let entries = page.event_listener::<EventEntryAdded>().await?;
            page.enable_log().await?;
            Ok::<_, chromiumoxide::error::CdpError>((calls, thrown, entries))
        });
        let calls = calls.map(|call| {
            let args: Vec<String> = call.args.iter().map(describe).collect();
            format!("console.{}: {}", call.r#type.as_ref(), args.join(" "))
        });
        let thrown = thrown.map(|e| {
            let d = &e.exception_details;
            let what = d.exception.as_ref().map(describe).unwrap_or_default();
            let url = d.url.clone().unwrap_or_default();
            format!("exception: {} {what} ({url}:{})", d.text, d.line_number)
        });
        let entries = entries.map(|e| {
            let entry = &e.entry;
            let url = entry.url.clone().unwrap_or_default();
            format!("log.{}: {} {url}", entry.level.as_ref(), entry.text)
        });
        let mut lines = futures::stream::select(futures::stream::select(calls, thrown), entries);
        let console = Arc::clone(&self.console);
        self.rt.spawn(async move {
            while let Some(line) = lines.next().await {
                console.lock().unwrap().push(line);
            }
        });
    }

    fn block<F: Future>(&self, what: &str, limit: Duration, fut: F) -> <F::Output as ResultLike>::Ok
    where
        F::Output: ResultLike,
    {
        block(&self.rt, what, limit, fut)
    }
}

impl Drop for Tab {
    fn drop(&mut self) {
        let page = self.page.clone();
        let _ = within(&self.rt, Duration::from_secs(2), page.close());
    }
}

/// A test CA (made with the `openssl` CLI) and the server certificates it
/// issues, in a temporary directory.
pub struct TestCa {
    dir: tempfile::TempDir,
    /// The CA certificate (PEM), for [`Browser::start`].
    pub cert: PathBuf,
}

impl TestCa {
    /// A new CA named `name` (its subject CN).
    pub fn new(name: &str) -> TestCa {
        let dir = tempfile::Builder::new().prefix("pam-mfa-ca-").tempdir().unwrap();
        openssl(
            dir.path(),
            &["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        let cert = dir.path().join("ca.crt");
        TestCa { dir, cert }
    }

    /// A server certificate and key (PEM files) for the DNS names `hosts`
    /// (and 127.0.0.1), issued by this CA; `name` names the files.
    pub fn server_cert(&self, name: &str, hosts: &[&str]) -> (PathBuf, PathBuf) {
        let dir = self.dir.path();
        let (key, csr, crt) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"));
        openssl(
            dir,
            &["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
            &["-keyout", &key, "-out", &csr, "-subj", &format!("/CN={}", hosts[0])],
        );
        let names: Vec<String> = hosts.iter().map(|h| format!("DNS:{h}")).collect();
        let ext = dir.join(format!("{name}.ext"));
        fs::write(
            &ext,
            format!(
                "subjectAltName={},IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
                 keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
                names.join(",")
            ),
        )
        .unwrap();
        openssl(
            dir,
            &["x509", "-req", "-in", &csr, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"],
            &["-out", &crt, "-days", "2", "-extfile", &ext.display().to_string()],
        );
        (dir.join(crt), dir.join(key))
    }
}

fn openssl(dir: &Path, args: &[&str], more: &[&str]) {
    system::run(Command::new("openssl").current_dir(dir).args(args).args(more));
}

/// A DevTools command by name, with JSON parameters and result.
#[derive(Debug)]
struct Raw {
    method: String,
    params: Value,
}

impl serde::Serialize for Raw {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.params.serialize(s)
    }
}

impl Method for Raw {
    fn identifier(&self) -> MethodId {
        Cow::Owned(self.method.clone())
    }
}

impl chromiumoxide::types::Command for Raw {
    type Response = Value;
}

/// What a protocol call returns: a `Result` whose error can be shown.
trait ResultLike {
    type Ok;
    fn into_result(self) -> Result<Self::Ok, String>;
}

impl<T, E: std::fmt::Display> ResultLike for Result<T, E> {
    type Ok = T;
    fn into_result(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// Runs `fut` on `rt`, panicking with `what` when it fails or takes more
/// than `limit`.
fn block<F: Future>(
    rt: &tokio::runtime::Runtime,
    what: &str,
    limit: Duration,
    fut: F,
) -> <F::Output as ResultLike>::Ok
where
    F::Output: ResultLike,
{
    match within(rt, limit, fut) {
        Some(out) => out.into_result().unwrap_or_else(|e| panic!("chromium: {what}: {e}")),
        None => panic!("chromium: {what} took more than {limit:?}"),
    }
}

/// Runs `fut` on `rt` for at most `limit`.
fn within<F: Future>(rt: &tokio::runtime::Runtime, limit: Duration, fut: F) -> Option<F::Output> {
    // The timer is made inside the runtime, which it needs.
    rt.block_on(async { tokio::time::timeout(limit, fut).await.ok() })
}

/// A remote object (a console argument, an exception) as text.
fn describe(object: &RemoteObject) -> String {
    match (&object.value, &object.description) {
        (Some(Value::String(s)), _) => s.clone(),
        (Some(value), _) => value.to_string(),
        (None, Some(description)) => description.clone(),
        (None, None) => object.r#type.as_ref().to_string(),
    }
}

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
