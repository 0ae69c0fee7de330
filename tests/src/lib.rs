//! Helpers for pam-mfa's integration tests: a private `dbus-daemon` with
//! the packaged policy, a real `mfad` on a temp state directory, real
//! libpam through `pam-harness`, and `oathtool` as an independent TOTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod boot;
pub mod browser;
pub mod fleet;
pub mod libpam;
pub mod phone;
pub mod postgres;
pub mod system;
pub mod tls;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The folder holding the built binaries (target/debug or target/release),
/// found from the running test executable (target/*/deps/test-…).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let dir = if deps.ends_with("deps") { deps.parent().unwrap() } else { deps };
    dir.to_path_buf()
}

/// A built binary of the workspace; panics with advice when missing.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` before the tests",
        path.display()
    );
    path
}

/// The freshly built PAM module; the benchmark names the shipped one
/// (target/module, built for size) in `PAM_MFA_TEST_MODULE`. Read by the
/// test programs only: the module itself reads no environment.
pub fn module() -> PathBuf {
    match std::env::var_os("PAM_MFA_TEST_MODULE") {
        // libpam reads a relative module path as one below its own folder.
        Some(path) => std::fs::canonicalize(&path).unwrap_or_else(|e| panic!("{path:?}: {e}")),
        None => bin("libpam_mfa.so"),
    }
}

/// A command for `program` in the C locale whatever the runner's, so
/// what tests read is English unless a test asks for another language
/// (a later `.env("LANG", …)` wins).
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env_remove("LANGUAGE")
        .env("LANG", "C.UTF-8");
    cmd
}

/// Runs `cmd` with `input` on its standard input; waits for it and
/// returns what it printed, whatever its exit status.
pub fn with_input(cmd: &mut Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// Waits for `done` up to `limit`, polling every 20 ms.
pub fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

fn current_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid()).unwrap().unwrap().name
}

/// `[push]` keys for runs that measure the module rather than the rules:
/// many requests at once (no flood limit to speak of). Never a
/// production setting.
pub const PUSH_FOR_BENCHES: &str = "request_burst = 1000\nrequest_every_seconds = 1\n";

/// A code of the same length that is not `code` (each digit shifted by 5).
pub fn wrong_code(code: &str) -> String {
    code.bytes().map(|b| char::from(b'0' + (b - b'0' + 5) % 10)).collect()
}

/// A private bus, stopped on drop.
pub struct Bus {
    pub dir: tempfile::TempDir,
    pub address: String,
    child: Child,
}

impl Bus {
    /// Starts `dbus-daemon` with system-bus defaults and the packaged policy.
    pub fn start() -> Bus {
        Bus::start_with_policy("")
    }

    /// As [`Bus::start`], with `extra` policy XML after the packaged one
    /// (a test that gets past the policy, to see mfad's own checks).
    pub fn start_with_policy(extra: &str) -> Bus {
        let dir = tempfile::tempdir().unwrap();
        // Test users (not only the runner) connect to this bus.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let socket = dir.path().join("bus.sock");
        let policy = fs::read_to_string(workspace().join("packaging/dbus/io.github.pam_mfa.conf"))
            .unwrap()
            .replace("user=\"pam-mfa\"", &format!("user=\"{}\"", current_user()));
        let policy_path = dir.path().join("io.github.pam_mfa.conf");
        fs::write(&policy_path, policy).unwrap();
        let conf = fs::read_to_string(workspace().join("tests/data/test-bus.conf.in"))
            .unwrap()
            .replace("@LISTEN@", &format!("unix:path={}", socket.display()))
            .replace("@POLICY@", &policy_path.display().to_string())
            .replace("</busconfig>", &format!("{extra}\n</busconfig>"));
        let conf_path = dir.path().join("bus.conf");
        fs::write(&conf_path, conf).unwrap();
        let child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf_path.display()))
            .arg("--nofork")
            .arg("--nopidfile")
            .stdout(Stdio::null())
            .spawn()
            .expect("dbus-daemon not found: apt-get install dbus-daemon");
        assert!(wait_for(Duration::from_secs(10), || socket.exists()), "bus did not start");
        Bus { address: format!("unix:path={}", socket.display()), dir, child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running mfad with its own config and state, stopped on drop.
pub struct Mfad {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Mfad {
    /// Writes a config for `bus` (with `extra` TOML appended to its
    /// sections) and starts mfad, waiting until it serves.
    pub fn start(bus: &Bus, extra: &str) -> Mfad {
        let dir = tempfile::tempdir().unwrap();
        // Test users read the config; the state directory mfad creates is 0700.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let config = dir.path().join("config.toml");
        let state = dir.path().join("state");
        // Most tests enroll made-up names: no accounts needed, unless a
        // test asks for the default.
        let extra = if extra.contains("require_account") {
            extra.to_string()
        } else if extra.contains("[enroll]\n") {
            extra.replacen("[enroll]\n", "[enroll]\nrequire_account = false\n", 1)
        } else {
            format!("{extra}\n[enroll]\nrequire_account = false\n")
        };
        fs::write(
            &config,
            format!(
                "state_dir = \"{}\"\n{extra}\n[bus]\naddress = \"{}\"\ntimeout_ms = 1000\nservice_user = \"{}\"\n",
                state.display(),
                bus.address,
                current_user()
            ),
        )
        .unwrap();
        fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
        // A copy test users can run wherever the checkout lives.
        for name in ["mfa-enroll", "mfa-approve"] {
            let user_bin = dir.path().join(name);
            fs::copy(bin(name), &user_bin).unwrap();
            fs::set_permissions(&user_bin, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut mfad = Mfad { log: dir.path().join("mfad.log"), dir, config, child: None };
        mfad.restart();
        mfad
    }

    /// Starts (again) the daemon process.
    pub fn restart(&mut self) {
        self.stop();
        let log = fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let before = self.log_text().matches("ready").count();
        let child = Command::new(bin("mfad"))
            .arg("--config")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let ok =
            wait_for(Duration::from_secs(10), || self.log_text().matches("ready").count() > before);
        assert!(ok, "mfad did not start:\n{}", self.log_text());
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `program` as `user`, in a new login session that passed this mfad's
    /// second factor with `proof` (a code or a recovery code), the way
    /// sshd makes one: pam-harness, as root in a new audit session, runs
    /// auth and then the session stack (`session optional pam_mfa.so`),
    /// and `program` inside it. Arguments added to the command go to
    /// `program`; its output follows pam-harness's `result:` lines.
    pub fn in_verified_session(&self, user: &str, proof: &str, program: &Path) -> Command {
        let confdir = self.dir.path().join("pam.d");
        fs::create_dir_all(&confdir).unwrap();
        let line = format!("{} config={}", module().display(), self.config.display());
        fs::write(
            confdir.join("mfa-login"),
            format!("auth required {line}\nsession optional {line}\n"),
        )
        .unwrap();
        let uid = nix::unistd::User::from_name(user).unwrap().unwrap().uid.as_raw();
        let mut cmd = in_new_session(uid, None, &bin("pam-harness"));
        cmd.arg("--confdir")
            .arg(&confdir)
            .args(["--service", "mfa-login", "--user", user, "--answer", proof])
            .args(["--then", "setpriv", &format!("--reuid={user}"), &format!("--regid={user}")])
            .args(["--init-groups", "--"])
            .arg(program);
        cmd
    }

    /// Runs mfa-enroll with this daemon's config.
    pub fn enroll_cmd(&self, args: &[&str]) -> Output {
        command(bin("mfa-enroll")).arg("--config").arg(&self.config).args(args).output().unwrap()
    }

    /// mfa-enroll where any user can run it.
    pub fn user_bin(&self) -> PathBuf {
        self.dir.path().join("mfa-enroll")
    }

    /// mfa-approve where any user can run it.
    pub fn approve_bin(&self) -> PathBuf {
        self.dir.path().join("mfa-approve")
    }

    /// Runs a client command with this daemon's config, `args`, and `input`
    /// on its standard input; waits for it.
    pub fn run_client(&self, mut cmd: Command, args: &[&str], input: &str) -> Output {
        with_input(cmd.arg("--config").arg(&self.config).args(args), input)
    }

    /// Runs `mfa-enroll ARGS` as `user` (`None`: as the test runner) with
    /// `input` on standard input; returns (exit code, stdout, stderr).
    pub fn enroll_as(
        &self,
        user: Option<&str>,
        args: &[&str],
        input: &str,
    ) -> (i32, String, String) {
        let cmd = match user {
            Some(user) => in_this_session(user, &self.user_bin()),
            None => command(bin("mfa-enroll")),
        };
        let out = self.run_client(cmd, args, input);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Enrolls `user` as root and returns the app's view of it.
    pub fn enroll(&self, user: &str) -> Otpauth {
        self.enroll_with_recovery(user).0
    }

    /// Enrolls `user` as root through `mfa-enroll --json` (codes on
    /// stdin), returning the otpauth parameters and the recovery codes.
    pub fn enroll_with_recovery(&self, user: &str) -> (Otpauth, Vec<String>) {
        enroll_json(&bin("mfa-enroll"), &self.config, user)
    }
}

impl Drop for Mfad {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `mfa-enroll --json --user USER`: reads the URI it prints, answers
/// with oathtool's code for the previous time step (valid within the
/// default skew, and it leaves the current step's code unused for the
/// test), and returns the parameters and the recovery codes.
pub fn enroll_json(mfa_enroll: &Path, config: &Path, user: &str) -> (Otpauth, Vec<String>) {
    enroll_json_with(json_enrollment(mfa_enroll, config, user))
}

/// Completes `cmd`, an `mfa-enroll --json` enrollment (see `enroll_json`).
pub fn enroll_json_with(cmd: Command) -> (Otpauth, Vec<String>) {
    use std::io::BufRead;
    let JsonEnrollment { mut child, mut stdout, app } = begin_json_with(cmd);
    let mut stdin = child.stdin.take().unwrap();
    let mut line = String::new();
    let mut done = serde_json::Value::Null;
    for _ in 0..3 {
        // Recomputed each try: a step boundary between computing and
        // checking can move the previous step out of the window.
        writeln!(stdin, "{}", app.code_at(now() - app.period)).unwrap();
        line.clear();
        stdout.read_line(&mut line).unwrap();
        done = serde_json::from_str(&line).unwrap();
        if done["event"] != "wrong_code" {
            break;
        }
    }
    drop(stdin);
    assert_eq!(done["event"], "enrolled", "{done}");
    let codes = done["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert!(child.wait().unwrap().success());
    (app, codes)
}

/// `mfa-enroll --json --user USER` started, its first line (the URI) read.
pub struct JsonEnrollment {
    pub child: Child,
    pub stdout: std::io::BufReader<std::process::ChildStdout>,
    /// The app's view of the URI printed.
    pub app: Otpauth,
}

/// Starts `mfa-enroll --json --user USER` and reads the URI it prints.
pub fn begin_json(mfa_enroll: &Path, config: &Path, user: &str) -> JsonEnrollment {
    begin_json_with(json_enrollment(mfa_enroll, config, user))
}

fn json_enrollment(mfa_enroll: &Path, config: &Path, user: &str) -> Command {
    let mut cmd = command(mfa_enroll);
    cmd.arg("--config").arg(config).args(["--json", "--user", user]);
    cmd
}

/// Starts `cmd`, an `mfa-enroll --json` enrollment, and reads the URI it prints.
pub fn begin_json_with(mut cmd: Command) -> JsonEnrollment {
    use std::io::BufRead;
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let begin: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("mfa-enroll --json printed {line:?}: {e}"));
    let app = Otpauth::parse(begin["uri"].as_str().unwrap_or_else(|| panic!("{begin}")));
    JsonEnrollment { child, stdout, app }
}

/// The parts of an otpauth URI that an app (and oathtool) needs.
#[derive(Debug, Clone)]
pub struct Otpauth {
    pub uri: String,
    pub secret: String,
    pub algorithm: String,
    pub digits: u32,
    pub period: u64,
}

impl Otpauth {
    pub fn parse(uri: &str) -> Otpauth {
        assert!(uri.starts_with("otpauth://totp/"), "not an otpauth URI: {uri}");
        let query = uri.split_once('?').unwrap().1;
        let get = |key: &str| {
            query.split('&').find_map(|kv| kv.strip_prefix(&format!("{key}="))).map(str::to_string)
        };
        Otpauth {
            uri: uri.to_string(),
            secret: get("secret").unwrap(),
            algorithm: get("algorithm").unwrap_or_else(|| "SHA1".into()),
            digits: get("digits").map_or(6, |d| d.parse().unwrap()),
            period: get("period").map_or(30, |p| p.parse().unwrap()),
        }
    }

    /// The code `oathtool` computes for unix time `at`.
    pub fn code_at(&self, at: u64) -> String {
        self.codes_from(at, 1).remove(0)
    }

    /// The code for now.
    pub fn code_now(&self) -> String {
        self.code_at(now())
    }

    /// The codes of `count` consecutive time steps, the first being the
    /// step of unix time `at`, from one `oathtool --window` run.
    pub fn codes_from(&self, at: u64, count: usize) -> Vec<String> {
        assert!(count > 0);
        let out = Command::new("oathtool")
            .arg(format!("--totp={}", self.algorithm))
            .arg("--base32")
            .arg(format!("--digits={}", self.digits))
            .arg(format!("--time-step-size={}s", self.period))
            .arg(format!("--now=@{at}"))
            .arg(format!("--window={}", count - 1))
            .arg(&self.secret)
            .output()
            .expect("oathtool not found: apt-get install oathtool");
        assert!(out.status.success(), "oathtool: {}", String::from_utf8_lossy(&out.stderr));
        let codes: Vec<String> =
            String::from_utf8(out.stdout).unwrap().lines().map(|l| l.trim().to_string()).collect();
        assert_eq!(codes.len(), count, "oathtool --window printed {codes:?}");
        codes
    }
}

/// Seconds since the epoch.
#[allow(clippy::disallowed_methods)]
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// A PAM service directory for `pam_start_confdir`.
pub struct PamService {
    pub dir: tempfile::TempDir,
    pub name: String,
}

impl PamService {
    /// A service whose auth stack is the module alone with `args`.
    pub fn new(args: &str) -> PamService {
        PamService::stack(&[&format!("auth required {} {args}", module().display())])
    }

    /// A service with the module (`args`) followed by pam_permit.so, so
    /// that PAM_IGNORE from the module lets the stack pass.
    pub fn followed_by_permit(args: &str) -> PamService {
        PamService::stack(&[
            &format!("auth required {} {args}", module().display()),
            "auth required pam_permit.so",
        ])
    }

    /// Starts a push authentication of `user` (in a new login session
    /// when `loginuid` is given, else in the test's own) and waits until
    /// the module shows the number.
    pub fn start_push(&self, user: &str, loginuid: Option<u32>) -> PushRequest {
        use std::io::BufRead;
        let mut cmd = match loginuid {
            Some(loginuid) => in_new_session(loginuid, None, &bin("pam-harness")),
            None => command(bin("pam-harness")),
        };
        let mut child = cmd
            .arg("--confdir")
            .arg(self.dir.path())
            .args(["--service", &self.name, "--user", user, "--answer", ""])
            .args(["--rhost", "192.0.2.7", "--tty", "/dev/pts/7"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        let shown = PushRequest::wait_line(&lines, &mut seen, "mfa-approve")
            .unwrap_or_else(|| panic!("no number shown: {seen:?}"));
        let number = number_in(&shown).unwrap_or_else(|| panic!("no number in {shown:?}"));
        PushRequest { child, lines, seen, number }
    }

    /// A service named `name` with exactly these auth lines.
    pub fn named(name: &str, lines: &[&str]) -> PamService {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(name), lines.join("\n") + "\n").unwrap();
        PamService { dir, name: name.to_string() }
    }

    /// A service with exactly these auth lines.
    pub fn stack(lines: &[&str]) -> PamService {
        let dir = tempfile::tempdir().unwrap();
        let name = "mfa-test".to_string();
        fs::write(dir.path().join(&name), lines.join("\n") + "\n").unwrap();
        PamService { dir, name }
    }

    /// Runs one (or `repeat`) authentications of `user` through libpam.
    pub fn authenticate(&self, user: &str, answers: &[&str]) -> PamRun {
        self.authenticate_repeated(user, answers, 1)
    }

    pub fn authenticate_repeated(&self, user: &str, answers: &[&str], repeat: usize) -> PamRun {
        self.run_harness(user, answers, repeat, "192.0.2.7", &[])
    }

    /// One authentication of `user` from remote host `rhost`.
    pub fn authenticate_from(&self, user: &str, answers: &[&str], rhost: &str) -> PamRun {
        self.run_harness(user, answers, 1, rhost, &[])
    }

    /// One authentication in a program whose environment has `env` (a
    /// locale, say), as sudo's has its caller's.
    pub fn authenticate_with_env(
        &self,
        user: &str,
        answers: &[&str],
        env: &[(&str, &str)],
    ) -> PamRun {
        self.run_harness(user, answers, 1, "192.0.2.7", env)
    }

    fn run_harness(
        &self,
        user: &str,
        answers: &[&str],
        repeat: usize,
        rhost: &str,
        env: &[(&str, &str)],
    ) -> PamRun {
        let mut cmd = command(bin("pam-harness"));
        cmd.envs(env.iter().copied());
        cmd.arg("--confdir")
            .arg(self.dir.path())
            .args(["--service", &self.name, "--user", user])
            .args(["--rhost", rhost, "--tty", "ssh"])
            .args(["--repeat", &repeat.to_string()]);
        for answer in answers {
            cmd.args(["--answer", answer]);
        }
        let out = cmd.output().unwrap();
        PamRun::parse(&String::from_utf8_lossy(&out.stdout))
    }
}

/// A command that runs in a new audit login session (root writes the
/// child's /proc/self/loginuid, as pam_loginuid does at login), then as
/// `run_as` when given.
pub fn in_new_session(loginuid: u32, run_as: Option<&str>, program: &Path) -> Command {
    let mut cmd = command("sh");
    cmd.arg("-c")
        .arg("echo \"$1\" > /proc/self/loginuid || exit 97; shift; exec \"$@\"")
        .arg("sh")
        .arg(loginuid.to_string());
    if let Some(user) = run_as {
        cmd.args(["setpriv", &format!("--reuid={user}"), &format!("--regid={user}")])
            .args(["--init-groups", "--"]);
    }
    cmd.arg(program);
    cmd
}

/// The same, in the caller's own session (no new loginuid).
pub fn in_this_session(run_as: &str, program: &Path) -> Command {
    let mut cmd = command("setpriv");
    cmd.args([&format!("--reuid={run_as}"), &format!("--regid={run_as}")])
        .args(["--init-groups", "--"])
        .arg(program);
    cmd
}

/// A push authentication under way in pam-harness.
pub struct PushRequest {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
    /// The number the module showed.
    pub number: u32,
}

impl PushRequest {
    /// Waits (bounded) for the next line containing `needle`.
    fn wait_line(
        lines: &std::sync::mpsc::Receiver<String>,
        seen: &mut Vec<String>,
        needle: &str,
    ) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let line = lines.recv_timeout(left).ok()?;
            seen.push(line.clone());
            if line.contains(needle) {
                return Some(line);
            }
        }
        None
    }

    /// What the harness printed so far.
    pub fn shown(&self) -> String {
        self.seen.join("\n")
    }

    /// The rest of the run, once the harness ends (bounded).
    pub fn finish(mut self) -> PamRun {
        while let Some(line) = PushRequest::wait_line(&self.lines, &mut self.seen, "\u{0}") {
            let _ = line;
        }
        PamRun::parse(&(self.seen.join("\n") + "\n"))
    }

    /// Waits for the result line; returns it with the time it came.
    pub fn result_line(&mut self) -> Option<(String, Instant)> {
        let line = PushRequest::wait_line(&self.lines, &mut self.seen, "result: ")?;
        Some((line, Instant::now()))
    }
}

impl Drop for PushRequest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the number out of the module's text ("… type 42 in mfa-approve …", "… typ 42 …").
pub fn number_in(text: &str) -> Option<u32> {
    // The first two-digit word, in any language ("type 37", "typ 37").
    text.split_whitespace().find_map(|w| w.parse().ok().filter(|n| (10..=99).contains(n)))
}

/// What pam-harness printed.
#[derive(Debug, Clone, Default)]
pub struct PamRun {
    pub text: String,
    pub results: Vec<String>,
    pub prompts: Vec<String>,
    pub errors: Vec<String>,
    pub threads: Vec<usize>,
    pub fds: Vec<usize>,
    pub elapsed_ms: Vec<u64>,
}

impl PamRun {
    pub fn parse(text: &str) -> PamRun {
        let mut run = PamRun { text: text.to_string(), ..PamRun::default() };
        for line in text.lines() {
            let Some((key, value)) = line.split_once(": ") else {
                continue;
            };
            match key {
                "result" => run.results.push(value.to_string()),
                "prompt" => run.prompts.push(value.to_string()),
                "error" => run.errors.push(value.to_string()),
                "threads" => run.threads.push(value.parse().unwrap_or(0)),
                "fds" => run.fds.push(value.parse().unwrap_or(0)),
                "elapsed_ms" => run.elapsed_ms.push(value.parse().unwrap_or(0)),
                _ => {}
            }
        }
        run
    }

    /// The result of the only (or last) authentication.
    pub fn result(&self) -> &str {
        self.results.last().map_or("none", String::as_str)
    }

    /// The module left no thread and no file descriptor behind.
    pub fn left_nothing_behind(&self) -> bool {
        self.threads.len() == 2
            && self.threads[0] == self.threads[1]
            && self.fds.len() == 2
            && self.fds[0] == self.fds[1]
    }
}

/// Reads every file of the store under `state` the way mfad does (from a
/// copy: opening a store clears its temp files) and panics on any that
/// does not parse or on a lost enrollment of `confirmed`. Returns how many
/// temp files there were.
pub fn check_store(state: &Path, confirmed: &std::collections::HashSet<String>) -> usize {
    use pam_mfa_protocol::username::Username;
    use pam_mfa_storage::file::FileRecords;
    let users_dir = state.join("users");
    let temps = fs::read_dir(&users_dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".tmp-"))
        .count();
    let copy = tempfile::tempdir().unwrap();
    let snapshot = copy.path().join("state");
    fs::create_dir(&snapshot).unwrap();
    fs::set_permissions(&snapshot, fs::Permissions::from_mode(0o700)).unwrap();
    let status = Command::new("cp").arg("-a").arg(&users_dir).arg(&snapshot).status().unwrap();
    assert!(status.success());
    let store = FileRecords::open(&snapshot).unwrap();
    for user in store.names().unwrap() {
        store.load_record(&user).unwrap_or_else(|e| panic!("{user}: {e}"));
    }
    for user in confirmed {
        let record = store.load_record(&Username::parse(user).unwrap()).unwrap();
        assert!(record.is_some(), "confirmed enrollment of {user} was lost");
    }
    temps
}

/// Writes `path` with Debian's `google-authenticator` (time-based, three
/// emergency codes) and returns its text.
pub fn google_authenticator_file(path: &Path) -> String {
    let out = Command::new("google-authenticator")
        .args(["--time-based", "--disallow-reuse", "--force", "--quiet"])
        .args(["--rate-limit=3", "--rate-time=30", "--window-size=3", "--emergency-codes=3"])
        .arg(format!("--secret={}", path.display()))
        .output()
        .expect("google-authenticator not found: apt-get install libpam-google-authenticator");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    fs::read_to_string(path).unwrap()
}

/// Turns the QR code drawn in the terminal into a PGM image, module by
/// module, without pam-mfa's code: a half block is two modules.
pub fn terminal_qr_to_pgm(screen: &str, ascii: bool) -> Vec<u8> {
    let mut rows: Vec<Vec<bool>> = Vec::new();
    for line in screen.lines() {
        if ascii {
            if !line.contains("##") {
                continue;
            }
            let chars: Vec<char> = line.chars().collect();
            rows.push(chars.chunks(2).map(|c| c[0] == '#').collect());
        } else {
            if !line.contains("\x1b[30;107m") {
                continue;
            }
            let text = line.replace("\x1b[30;107m", "").replace("\x1b[0m", "");
            rows.push(text.chars().map(|c| c == '█' || c == '▀').collect());
            rows.push(text.chars().map(|c| c == '█' || c == '▄').collect());
        }
    }
    assert!(!rows.is_empty(), "no QR code on the screen:\n{screen}");
    let scale = 6;
    let border = 4; // extra light border in case the quiet zone is missing
    let width = (rows[0].len() + 2 * border) * scale;
    let height = (rows.len() + 2 * border) * scale;
    let mut pgm = format!("P5\n{width} {height}\n255\n").into_bytes();
    for y in 0..height {
        for x in 0..width {
            let (my, mx) = ((y / scale).checked_sub(border), (x / scale).checked_sub(border));
            let dark = match (my, mx) {
                (Some(my), Some(mx)) => {
                    rows.get(my).and_then(|r| r.get(mx)).copied().unwrap_or(false)
                }
                _ => false,
            };
            pgm.push(if dark { 0 } else { 255 });
        }
    }
    pgm
}

/// Decodes a PGM image with zbarimg.
pub fn zbarimg(pgm: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qr.pgm");
    std::fs::write(&path, pgm).unwrap();
    let out = Command::new("zbarimg")
        .args(["--raw", "-q", "-Sdisable", "-Sqrcode.enable"])
        .arg(&path)
        .output()
        .expect("zbarimg not found: apt-get install zbar-tools");
    assert!(
        out.status.success(),
        "zbarimg found no code: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
