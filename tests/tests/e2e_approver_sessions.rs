//! End to end, as root: who may approve a sudo request (DESIGN.md rule 5,
//! `approver_session = "mfa"`). Someone has the user's password and a shell,
//! but not the phone: a key-only SSH login. From it they run `sudo` in push
//! mode and read the number off their own screen. Every way they then
//! answer it is refused, each with its reason:
//! - from the requesting session itself: `setsid`, a second tmux window,
//!   `su -` (same audit session);
//! - from a real cron job of the user (a new audit session, no second factor);
//! - from a second key-only SSH login (likewise).
//!
//! Then the user's own SSH login that passed a code approves, and sudo
//! succeeds. Real sshd (two: key+code with pam_mfa's session line, and
//! key-only), real sudo, real cron, real tmux, real su, the system bus.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use pam_mfa_tests::system::{
    ensure_user, require_root, run, set_password, Login, Scratch, Sshd, SudoService, SystemBus,
    SystemMfad,
};
use pam_mfa_tests::wait_for;

const USER: &str = "mfa-e2e-approver";
const PASSWORD: &str = "the stolen password";

/// Starts the cron daemon unless one runs; stops it on drop if it started it.
struct Cron(Option<std::process::Child>);

impl Cron {
    fn ensure() -> Cron {
        // The daemon, not a job it forked ("CRON -f", which can outlive it).
        let running =
            Command::new("pgrep").args(["-f", "^(/usr/sbin/)?cron( -f)?$"]).output().unwrap();
        if running.status.success() {
            return Cron(None);
        }
        Cron(Some(Command::new("cron").arg("-f").stdout(Stdio::null()).spawn().unwrap()))
    }
}

impl Drop for Cron {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn home_file(name: &str) -> PathBuf {
    let account = nix::unistd::User::from_name(USER).unwrap().unwrap();
    account.dir.join(name)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn only_a_login_that_passed_a_second_factor_approves_sudo() {
    require_root();
    let _bus = SystemBus::ensure();
    let scratch = Scratch::new();
    ensure_user(USER, false);
    set_password(USER, PASSWORD);
    for name in ["number", "sudo.out", "setsid.out", "tmux.out", "su.out", "cron.out"] {
        let _ = fs::remove_file(home_file(name));
    }
    // Long enough for cron's next minute or two.
    let mfad = SystemMfad::start(&scratch, "[push]\ntimeout_seconds = 240\n");
    let app = mfad.enroll(&scratch, USER);
    let module = scratch.path("libpam_mfa.so");
    let line = format!("{} config={}", module.display(), mfad.config.display());
    let _sudo =
        SudoService::install(USER, "sudo-mfa-sessions", &format!("auth required {line} mode=push"));
    // The user's own logins: key, then a code; pam_mfa's session line
    // after pam_loginuid tells mfad that the session passed.
    let with_code = Sshd::start_with(
        &scratch,
        "sshd-mfa-sessions-code",
        USER,
        &format!("auth required {line}"),
        "publickey,keyboard-interactive",
        &format!("session required pam_loginuid.so\nsession optional {line}"),
    );
    // What the attacker has: a key-only login (their key on the account).
    let key_only_scratch = Scratch::new();
    key_only_scratch.share_client_key(&scratch);
    let key_only = Sshd::start_with(
        &key_only_scratch,
        "sshd-mfa-sessions-key",
        USER,
        "auth required pam_deny.so",
        "publickey",
        &format!("session required pam_loginuid.so\nsession optional {line}"),
    );
    let approve = scratch.path("mfa-approve");
    let config = mfad.config.display().to_string();
    let approve_cmd = format!("{} --once --config {config} < ~/number", approve.display());

    // The requesting session: sudo in the background on a terminal of its
    // own (script(1) keeps what it shows), the number read off that
    // screen, then the same-session attempts.
    let su_script = format!(
        "spawn su - {USER} -c \"{approve_cmd} > ~/su.out 2>&1\"; expect Password:; send \"{PASSWORD}\\r\"; expect eof"
    );
    let requester = format!(
        "script -qefc 'sudo -k true' ~/sudo.out < /dev/null > /dev/null 2>&1 & \
         until grep -qs 'type [0-9]* in' ~/sudo.out; do sleep 0.2; done; \
         sed -n 's/.*type \\([0-9]*\\) in mfa-approve.*/\\1/p' ~/sudo.out > ~/number; \
         setsid -w sh -c '{approve_cmd} > ~/setsid.out 2>&1'; \
         tmux -S ~/tmux.sock new-session -d -s shell 'sleep 30'; \
         tmux -S ~/tmux.sock new-window -t shell '{approve_cmd} > ~/tmux.out 2>&1'; \
         expect -c '{su_script}' > /dev/null; \
         wait $!; echo SUDO-EXIT=$?"
    );
    let ssh = |sshd: &Sshd, command: &str| {
        let mut cmd = Command::new("ssh");
        cmd.args(["-F", "/dev/null", "-T", "-i"])
            .arg(&sshd.client_key)
            .args(["-p", &sshd.port.to_string()])
            .args(["-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
            .args(["-o", "PreferredAuthentications=publickey", "-o", "BatchMode=yes"])
            .arg(format!("{USER}@127.0.0.1"))
            .arg(command);
        cmd
    };
    let requesting = ssh(&key_only, &requester).stdout(Stdio::piped()).spawn().unwrap();

    let number = home_file("number");
    assert!(
        wait_for(Duration::from_secs(20), || !read(&number).trim().is_empty()),
        "no number shown: {}\nsshd: {}\nmfad: {}",
        read(&home_file("sudo.out")),
        key_only.log_text(),
        mfad.log_text()
    );
    for (attempt, file, reason) in [
        ("setsid", "setsid.out", "another login session"),
        ("a second tmux window", "tmux.out", "another login session"),
        ("su -", "su.out", "another login session"),
    ] {
        let path = home_file(file);
        wait_for(Duration::from_secs(20), || read(&path).contains(reason));
        assert!(read(&path).contains(reason), "{attempt}: {}", read(&path));
    }

    // A real cron job of the user's, reading the number from a file. The
    // crontab goes in first: a cron daemon started after it reads it at
    // once and runs it within a minute (a running one may take two).
    let mut crontab =
        Command::new("crontab").args(["-u", USER, "-"]).stdin(Stdio::piped()).spawn().unwrap();
    writeln!(crontab.stdin.take().unwrap(), "* * * * * {approve_cmd} > ~/cron.out 2>&1").unwrap();
    assert!(crontab.wait().unwrap().success());
    let _cron = Cron::ensure();
    let cron_out = home_file("cron.out");
    // Until mfa-approve has said how its answer went.
    let answered = |text: String| text.contains("Not approved") || text.contains("Approved.");
    let ran = wait_for(Duration::from_secs(130), || answered(read(&cron_out)));
    run(Command::new("crontab").args(["-u", USER, "-r"]));
    assert!(ran, "the cron job did not run");
    assert!(read(&cron_out).contains("did not pass a second factor"), "cron: {}", read(&cron_out));

    // A second key-only login.
    let out = ssh(&key_only, &approve_cmd).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(said.contains("did not pass a second factor"), "key-only: {said}");

    // The user's own login with a code approves.
    let (login, screen) = with_code.login_running(USER, &app.code_now(), &approve_cmd);
    assert_eq!(login, Login::LoggedIn, "{screen}");
    assert!(screen.contains("Approved."), "{screen}");
    let out = requesting.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("SUDO-EXIT=0"),
        "sudo was not approved: {said}\n{}",
        read(&home_file("sudo.out"))
    );

    let log = mfad.log_text();
    assert!(log.contains("session-verified"), "{log}");
    assert!(log.contains("SameSession") && log.contains("NotVerified"), "{log}");
    let _ =
        Command::new("tmux").args(["-S"]).arg(home_file("tmux.sock")).arg("kill-server").status();
}
