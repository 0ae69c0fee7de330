//! The package on the system it is for: a Debian 12 booted with systemd as
//! PID 1 (systemd-nspawn --boot, its own network namespace), with its own
//! dbus.service, ssh.service, logind, journald and user managers. Each test
//! boots a fresh copy of the root, installs the freshly built .deb the way
//! README's "Install on a Debian 12 server" says, and checks from inside.
//!
//! Run by `scripts/boot-test.sh` (part of the test command), which makes
//! the root and the packages and sets PAM_MFA_BOOT_ROOT, PAM_MFA_DEB and
//! PAM_MFA_OLD_DEB; not part of a plain `cargo test`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use pam_mfa_tests::boot::{given, Image, Machine};
use pam_mfa_tests::{
    check_store, enroll_json_with, google_authenticator_file, now, workspace, Otpauth,
};

/// The test users' password (pam_unix asks it before the code).
const PASSWORD: &str = "boot-Test-pw-1";

/// Boots `image` with the package installed as README says.
fn installed(image: &Image) -> Machine {
    image.put(&given("PAM_MFA_DEB"), "/root/pam-mfa.deb");
    let machine = Machine::boot(image);
    machine.ok("apt-get install -y -q /root/pam-mfa.deb");
    machine
}

/// A user with a password and root's SSH key, in `groups` (comma list).
fn add_user(machine: &Machine, user: &str, groups: &str) {
    let groups = if groups.is_empty() { String::new() } else { format!("-G {groups}") };
    machine.ok(&format!(
        "set -e
         [ -f /root/.ssh/id_ed25519 ] || {{ install -d -m 0700 /root/.ssh; ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519; }}
         useradd --create-home --shell /bin/bash {groups} {user}
         echo '{user}:{PASSWORD}' | chpasswd
         install -d -m 0700 -o {user} -g {user} /home/{user}/.ssh
         install -m 0600 -o {user} -g {user} /root/.ssh/id_ed25519.pub /home/{user}/.ssh/authorized_keys"
    ));
}

/// SSH asks a key, the password, then a code: README's steps.
fn enable_for_ssh(machine: &Machine) {
    machine.ok(
        "set -e
         pam-auth-update --enable pam-mfa
         cp /usr/share/doc/pam-mfa/examples/sshd_config.d-pam-mfa.conf /etc/ssh/sshd_config.d/pam-mfa.conf
         systemctl reload ssh",
    );
    let stack = machine.ok("grep -v '^#' /etc/pam.d/common-auth");
    let unix = stack.find("pam_unix.so").expect("pam_unix in common-auth");
    let mfa = stack.find("pam_mfa.so mode=auto nullok").unwrap_or_else(|| panic!("{stack}"));
    assert!(unix < mfa, "the password must come before the code:\n{stack}");
}

/// The nsenter words as one Tcl list, for the expect scripts.
fn tcl_prefix(machine: &Machine) -> String {
    machine.prefix().join(" ")
}

/// An SSH login of `user` with the password and `code`, through the
/// machine's own sshd. Returns expect's exit code (0 in, 1 denied, 2 asked
/// again) and the screen.
fn ssh_login(machine: &Machine, user: &str, code: &str) -> (i32, String) {
    let out = pam_mfa_tests::command("expect")
        .arg(workspace().join("tests/data/boot-login.exp"))
        .args([&tcl_prefix(machine), user, PASSWORD, code])
        .output()
        .expect("expect not found: apt-get install expect");
    let screen = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    (out.status.code().unwrap_or(-1), screen)
}

/// mfa-enroll as `user` in a pseudo-terminal (a wrong code, then the right
/// one). Returns the app's view of the URI and the recovery codes shown.
fn enroll_in_terminal(machine: &Machine, user: &str) -> (Otpauth, Vec<String>) {
    let out = pam_mfa_tests::command("expect")
        .arg(workspace().join("tests/data/enroll-dialogue.exp"))
        .args([user, "/usr/bin/mfa-enroll", "-", "", "", "", &tcl_prefix(machine)])
        .output()
        .expect("expect not found: apt-get install expect");
    let screen = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert_eq!(out.status.code(), Some(0), "mfa-enroll in a terminal:\n{screen}");
    assert!(screen.contains("That code is not right"), "{screen}");
    let uri = screen
        .lines()
        .find_map(|l| l.trim().strip_prefix("URI: "))
        .unwrap_or_else(|| panic!("no URI on the screen:\n{screen}"));
    let codes: Vec<String> = screen
        .split_whitespace()
        .filter(|w| w.len() == 19 && w.matches('-').count() == 3)
        .map(str::to_string)
        .collect();
    assert_eq!(codes.len(), 10, "recovery codes on the screen:\n{screen}");
    (Otpauth::parse(uri), codes)
}

/// `mfa-enroll --json --user USER` run by root inside the machine.
fn enroll_as_root(machine: &Machine, user: &str) -> Otpauth {
    let mut cmd = machine.command(&["mfa-enroll", "--json", "--user", user]);
    cmd.stderr(Stdio::inherit());
    enroll_json_with(cmd).0
}

/// Two SSH sessions of alice (logged in with `code1` and `code2`, or "-"
/// for the key alone): the first runs `sudo -k true`, the second approves
/// with `mfa-approve --once`; checks that sudo succeeded.
fn sudo_approved_from_a_second_session(machine: &Machine, code1: &str, code2: &str) {
    let logs = tempfile::tempdir().unwrap();
    let (log1, log2) = (logs.path().join("s1"), logs.path().join("s2"));
    let out = pam_mfa_tests::command("expect")
        .arg(workspace().join("tests/data/boot-sudo.exp"))
        .args([&tcl_prefix(machine), "alice", PASSWORD, code1, code2])
        .arg(&log1)
        .arg(&log2)
        .output()
        .unwrap();
    let read =
        |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default().replace('\r', "");
    let (s1, s2) = (read(&log1), read(&log2));
    assert_eq!(out.status.code(), Some(0), "sudo:\n--- session 1\n{s1}\n--- session 2\n{s2}");
    assert!(s1.contains("SUDO-EXIT=0"), "{s1}");
    assert!(s2.contains("Sign-in request for alice"), "{s2}");
    assert!(s2.contains("command:     sudo -k true"), "{s2}");
    assert!(s2.contains("Approved."), "{s2}");
}

fn status_line(machine: &Machine, pid: u32) -> String {
    machine.ok(&format!("grep -E '^(Uid|NoNewPrivs|Seccomp):' /proc/{pid}/status"))
}

#[test]
fn installed_on_a_booted_debian_mfad_starts_sandboxed_and_every_operation_works() {
    let image = Image::new();
    let machine = installed(&image);

    // a. Nothing to enable: the first call starts mfad through systemd.
    assert_eq!(machine.sh("systemctl is-active mfad").stdout, b"inactive\n");
    machine.ok("mfa-enroll --list");
    assert_eq!(machine.ok("systemctl is-active mfad"), "active\n");
    let bus_log = machine.ok("journalctl --no-pager -o cat -u dbus.service");
    assert!(
        bus_log.contains(
            "Activating via systemd: service name='io.github.pam_mfa' unit='mfad.service'"
        ),
        "{bus_log}"
    );
    let pid = machine.mfad_pid();
    assert_ne!(pid, 0);
    let uid = machine.ok("id -u pam-mfa").trim().to_string();
    let status = status_line(&machine, pid);
    assert!(status.contains(&format!("Uid:\t{uid}\t{uid}\t{uid}\t{uid}")), "{status}");
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    assert!(status.contains("Seccomp:\t2"), "{status}");
    assert!(machine.ok(&format!("cat /proc/{pid}/cgroup")).contains("/system.slice/mfad.service"));
    let write = machine.sh(&format!("nsenter -t {pid} -m -- touch /usr/lib/pam-mfa-probe"));
    assert!(!write.status.success());
    let err = String::from_utf8_lossy(&write.stderr);
    assert!(err.contains("Read-only file system"), "{err}");

    // b. Every operation, through the real stacks.
    add_user(&machine, "alice", "sudo");
    add_user(&machine, "bob", "");
    add_user(&machine, "carol", "");
    enable_for_ssh(&machine);

    let (app, recovery) = enroll_in_terminal(&machine, "alice");
    let code = app.code_now();
    let (login, screen) = ssh_login(&machine, "alice", &code);
    assert_eq!(login, 0, "a code login over ssh.service:\n{screen}");
    let (login, screen) = ssh_login(&machine, "alice", &code);
    assert_eq!(login, 2, "the same code again:\n{screen}");
    assert!(screen.contains("That code was already used"), "{screen}");
    let (login, screen) = ssh_login(&machine, "alice", &recovery[0]);
    assert_eq!(login, 0, "a recovery code:\n{screen}");
    let (login, screen) = ssh_login(&machine, "alice", &recovery[0]);
    assert_eq!(login, 2, "a recovery code twice:\n{screen}");
    assert!(screen.contains("Wrong code."), "{screen}");

    // sudo by number matching, approved from a second SSH session.
    let next = app.code_at(now() + app.period);
    sudo_approved_from_a_second_session(&machine, &next, &recovery[1]);
    let sessions = machine.ok("loginctl list-sessions --no-legend");
    println!("logind sessions after the sudo test:\n{sessions}");

    // Enrollment as root (--json), status, admin reset.
    enroll_as_root(&machine, "bob");
    let status = machine.ok("mfa-enroll --status bob --json");
    assert!(status.contains("\"enrolled\":true"), "{status}");
    machine.ok("mfa-enroll --reset bob");
    let status = machine.ok("mfa-enroll --status bob --json");
    assert!(status.contains("\"enrolled\":false"), "{status}");

    // google-authenticator's file, imported by its user.
    let ga = tempfile::tempdir().unwrap();
    let ga_file = ga.path().join("google_authenticator");
    let ga_text = google_authenticator_file(&ga_file);
    image.put(&ga_file, "/home/carol/.google_authenticator");
    machine.ok("chown carol:carol /home/carol/.google_authenticator; chmod 0400 /home/carol/.google_authenticator");
    let imported = machine.ok(
        "runuser -u carol -- mfa-enroll --import-google-authenticator /home/carol/.google_authenticator --json",
    );
    assert!(imported.contains("\"recovery_codes\":3"), "{imported}");
    let secret = ga_text.lines().next().unwrap().to_string();
    let carol = Otpauth::parse(&format!("otpauth://totp/x?secret={secret}"));
    let carol_code = carol.code_now();
    let (login, screen) = ssh_login(&machine, "carol", &carol_code);
    assert_eq!(login, 0, "a login with the imported secret:\n{screen}");

    // d. journald: mfad's audit lines and the module's own, never a code.
    let journal = machine.ok("journalctl --no-pager -o cat -u mfad.service");
    for expected in ["user=alice", "service=\"sshd\"", "rhost=\"127.0.0.1\"", "result=\"accepted\""]
    {
        assert!(journal.contains(expected), "{expected} not in mfad's journal:\n{journal}");
    }
    let module = machine.ok("journalctl --no-pager -o cat -t sshd -t sudo");
    assert!(module.contains("pam_mfa(sshd:auth)"), "{module}");
    assert!(module.contains("pam_mfa(sudo:auth)"), "{module}");
    let everything = machine.ok("journalctl --no-pager -o cat");
    for secret in [&code, &next, &carol_code, &recovery[0], &recovery[1], &app.secret] {
        assert!(!everything.contains(secret.as_str()), "{secret} is in the journal");
    }
    machine.poweroff();
}

/// A stream of SSH logins of several users while systemd's mfad is killed
/// now and then; afterwards mfad masked, then unmasked.
#[test]
fn mfad_killed_or_masked_under_systemd_loses_nothing_and_fails_closed() {
    let image = Image::new();
    let machine = installed(&image);
    machine.ok("mkdir -p /etc/pam-mfa && printf '[bus]\\ntimeout_ms = 2000\\n[limits]\\nmax_failures = 100\\n' > /etc/pam-mfa/config.toml");
    let users: Vec<String> = (1..=4).map(|i| format!("user{i}")).collect();
    let mut apps = Vec::new();
    for user in &users {
        add_user(&machine, user, "");
        apps.push(enroll_as_root(&machine, user));
    }
    enable_for_ssh(&machine);

    // c. Four streams of logins (right codes, some replayed); mfad
    // killed three times, RestartSec apart.
    let accepted = std::sync::Mutex::new(Vec::new());
    let deadline = Instant::now() + Duration::from_secs(24);
    std::thread::scope(|scope| {
        for (user, app) in users.iter().zip(&apps) {
            let (machine, accepted) = (&machine, &accepted);
            scope.spawn(move || {
                let mut round = 0u64;
                while Instant::now() < deadline {
                    round += 1;
                    // The current step's code, and every third time the one
                    // just accepted again.
                    let code = app.code_now();
                    let (login, _) = ssh_login(machine, user, &code);
                    if login == 0 {
                        accepted.lock().unwrap().push((user.clone(), code.clone()));
                        if round % 3 == 0 {
                            let (again, screen) = ssh_login(machine, user, &code);
                            assert_ne!(again, 0, "{user}: a code accepted twice:\n{screen}");
                        }
                    }
                }
            });
        }
        for _ in 0..3 {
            std::thread::sleep(Duration::from_secs(6));
            let before = machine.ok("systemctl show -p NRestarts --value mfad");
            machine.ok("systemctl kill -s KILL mfad");
            let restarted = pam_mfa_tests::wait_for(Duration::from_secs(10), || {
                machine.ok("systemctl show -p NRestarts --value mfad") != before
            });
            assert!(restarted, "systemd did not restart mfad");
        }
    });
    let accepted = accepted.into_inner().unwrap();
    assert!(!accepted.is_empty(), "no login got through during the stream");
    // Nothing accepted before a kill is accepted again; no file is broken;
    // no enrollment is lost.
    for (user, code) in &accepted {
        let (login, screen) = ssh_login(&machine, user, code);
        assert_eq!(login, 2, "{user}: a code accepted before the kills, again:\n{screen}");
        assert!(screen.contains("That code was already used"), "{screen}");
    }
    let confirmed: HashSet<String> = users.iter().cloned().collect();
    let temps = check_store(&image.host_path("/var/lib/pam-mfa"), &confirmed);
    assert!(temps <= 1, "temp files accumulate: {temps}");
    let restarts = machine.ok("systemctl show -p NRestarts --value mfad");
    println!(
        "{} logins accepted, all refused again; mfad restarted {} times",
        accepted.len(),
        restarts.trim()
    );

    // Masked: a login fails closed within [bus] timeout_ms.
    machine.ok("systemctl mask --runtime mfad && systemctl stop mfad");
    let started = Instant::now();
    let (login, screen) = ssh_login(&machine, "user1", &apps[0].code_at(now() + apps[0].period));
    let took = started.elapsed();
    assert_ne!(login, 0, "logged in with mfad masked:\n{screen}");
    let tail = machine.ok("journalctl --no-pager -o cat -t sshd | grep pam_mfa | tail -n 3");
    println!("masked: refused in {took:?}:\n{tail}");
    let last = tail.lines().last().unwrap_or_default();
    assert!(last.contains("user=\"user1\""), "{tail}");
    assert!(last.contains("result=unavailable failmode=closed"), "{tail}");
    assert!(last.contains("Unit mfad.service is masked"), "{tail}");
    // timeout_ms (2 s) bounds the module; the rest is ssh's own work.
    assert!(took < Duration::from_secs(7), "the refusal took {took:?}");
    // Unmasked: the next login works, sshd untouched.
    let sshd = machine.ok("systemctl show -p MainPID --value ssh");
    machine.ok("systemctl unmask --runtime mfad");
    let code = apps[1].code_at(now() + apps[1].period);
    let (login, screen) = ssh_login(&machine, "user2", &code);
    assert_eq!(login, 0, "after unmask:\n{screen}");
    assert_eq!(machine.ok("systemctl show -p MainPID --value ssh"), sshd);
    machine.poweroff();
}

/// e. The approver agent as a user unit under alice's own systemd
/// (lingering), online for mode=auto, told of the request.
#[test]
fn the_approver_agent_runs_under_the_users_systemd_and_a_request_is_approved() {
    let image = Image::new();
    let machine = installed(&image);
    // Each SSH login with the agent online is a push request too (answered
    // with a code): more requests here than the default burst. Written
    // before the first call starts mfad.
    machine.ok("mkdir -p /etc/pam-mfa && printf '[push]\\nrequest_burst = 10\\n' > /etc/pam-mfa/config.toml");
    add_user(&machine, "alice", "sudo");
    let mut cmd = machine.command(&["mfa-enroll", "--json", "--user", "alice"]);
    cmd.stderr(Stdio::inherit());
    let (app, recovery) = enroll_json_with(cmd);
    // The README's setup: sudo asks the password, then pam_mfa.so; sshd
    // the key, the password and a code. The second login (the approver's)
    // passes a recovery code: only a login that passed a second factor
    // may approve ([push] approver_session = "mfa").
    enable_for_ssh(&machine);
    let uid = machine.ok("id -u alice").trim().to_string();
    machine.ok("loginctl enable-linger alice");
    let manager = pam_mfa_tests::wait_for(Duration::from_secs(30), || {
        machine.sh(&format!("systemctl is-active user@{uid}.service")).stdout == b"active\n"
    });
    assert!(manager, "alice's systemd did not start");
    let user = format!("runuser -u alice -- env XDG_RUNTIME_DIR=/run/user/{uid} systemctl --user");
    machine.ok(&format!("{user} enable --now mfa-approve.service"));
    assert_eq!(machine.ok(&format!("{user} is-active mfa-approve.service")), "active\n");
    let pid = machine.ok(&format!("{user} show -p MainPID --value mfa-approve.service"));
    let cgroup = machine.ok(&format!("cat /proc/{}/cgroup", pid.trim()));
    assert!(
        cgroup.contains(&format!("/user.slice/user-{uid}.slice/user@{uid}.service/")),
        "{cgroup}"
    );
    let online = pam_mfa_tests::wait_for(Duration::from_secs(10), || {
        machine.ok("journalctl --no-pager -o cat -u mfad.service").contains("approver-online")
    });
    assert!(online, "the agent did not go online");

    sudo_approved_from_a_second_session(&machine, &app.code_now(), &recovery[0]);
    let agent = machine.ok("journalctl --no-pager -o cat _SYSTEMD_USER_UNIT=mfa-approve.service");
    assert!(agent.contains("Sign-in request for alice"), "the agent was not told:\n{agent}");
    assert!(agent.contains("command:     sudo -k true"), "{agent}");

    // The user's systemd is a login session of its own (pam_loginuid in
    // /etc/pam.d/systemd-user) that never passed a second factor: a
    // service of it cannot approve, though the agent runs there.
    image.put(&pam_mfa_tests::bin("pam-harness"), "/usr/local/bin/pam-harness");
    machine.ok(
        "set -e
         mkdir -p /root/pam.d
         echo 'auth required pam_mfa.so mode=push' > /root/pam.d/mfa-push
         (pam-harness --confdir /root/pam.d --service mfa-push --user alice --answer '' > /root/push.out 2>&1 &)",
    );
    let shown = pam_mfa_tests::wait_for(Duration::from_secs(20), || {
        machine.ok("cat /root/push.out").contains("in mfa-approve")
    });
    assert!(shown, "no number: {}", machine.ok("cat /root/push.out"));
    machine.ok("sed -n 's/.*type \\([0-9]*\\) in mfa-approve.*/\\1/p' /root/push.out > /home/alice/number; chmod 644 /home/alice/number");
    let out = machine.sh(&format!(
        "runuser -u alice -- env XDG_RUNTIME_DIR=/run/user/{uid} systemd-run --user --wait --pipe --quiet sh -c 'mfa-approve --once < /home/alice/number'"
    ));
    let said =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "systemd-run --user approved: {said}");
    assert!(said.contains("did not pass a second factor"), "{said}");
    machine.poweroff();
}

/// 1 and f. The package's life under a running systemd: an older build
/// installed and used, upgraded (mfad restarted, enrollments kept, an old
/// alias link cleaned up), rebooted (enrollments, accepted steps and
/// lockouts kept), removed (mfad stopped), purged (no unit or link left).
#[test]
fn upgrade_reboot_remove_and_purge_under_systemd() {
    let image = Image::new();
    image.put(&given("PAM_MFA_OLD_DEB"), "/root/pam-mfa-old.deb");
    image.put(&given("PAM_MFA_DEB"), "/root/pam-mfa.deb");
    let machine = Machine::boot(&image);
    machine.ok("apt-get install -y -q /root/pam-mfa-old.deb");
    assert!(machine.ok("dpkg -s pam-mfa").contains("Version: 0.0.1"));
    machine.ok("mkdir -p /etc/pam-mfa && printf '[limits]\\nmax_failures = 2\\nlockout_seconds = 900\\n' > /etc/pam-mfa/config.toml");
    add_user(&machine, "alice", "");
    add_user(&machine, "bob", "");
    let alice = enroll_as_root(&machine, "alice");
    let bob = enroll_as_root(&machine, "bob");
    let old_pid = machine.mfad_pid();
    assert_ne!(old_pid, 0, "mfad is not running after the first calls");
    // What the workaround left on hosts: the old alias, enabled by hand.
    machine.ok(
        "ln -s /lib/systemd/system/mfad.service /etc/systemd/system/dbus-io.github.pam_mfa.service",
    );

    machine.ok("apt-get install -y -q /root/pam-mfa.deb");
    assert!(machine.ok("dpkg -s pam-mfa").contains("Version: 0.1.0"));
    let new_pid = machine.mfad_pid();
    assert!(
        new_pid != 0 && new_pid != old_pid,
        "the upgrade did not restart mfad ({old_pid} -> {new_pid})"
    );
    assert_eq!(machine.ok(&format!("readlink /proc/{new_pid}/exe")), "/usr/sbin/mfad\n");
    assert!(machine.ok("mfa-enroll --status alice --json").contains("\"enrolled\":true"));
    assert!(!image.host_path("/etc/systemd/system/dbus-io.github.pam_mfa.service").is_symlink());

    // Before the reboot: alice's code accepted, bob locked out.
    enable_for_ssh(&machine);
    let code = alice.code_now();
    assert_eq!(ssh_login(&machine, "alice", &code).0, 0);
    for _ in 0..2 {
        let wrong = if bob.code_now() == "000000" { "111111" } else { "000000" };
        ssh_login(&machine, "bob", wrong);
    }
    let locked = machine.ok("mfa-enroll --status bob --json");
    assert!(!locked.contains("\"locked_for\":0") && locked.contains("locked_for"), "{locked}");
    machine.poweroff();

    let machine = Machine::boot(&image);
    assert!(machine.ok("mfa-enroll --status alice --json").contains("\"enrolled\":true"));
    let (login, screen) = ssh_login(&machine, "alice", &code);
    assert_eq!(login, 2, "alice's code once more after the reboot:\n{screen}");
    assert!(screen.contains("That code was already used"), "{screen}");
    let (login, screen) = ssh_login(&machine, "bob", &bob.code_now());
    assert_ne!(login, 0, "bob's lockout did not survive the reboot:\n{screen}");
    // sshd shows the module's message only with a next prompt; the
    // journal says why.
    let why = machine
        .ok("journalctl --no-pager -o cat -t sshd | grep 'pam_mfa.*user=\"bob\"' | tail -n 1");
    assert!(why.contains("result=locked-out"), "{why}");

    // Remove: mfad stops, its files go, the enrollments stay.
    assert_eq!(machine.ok("systemctl is-active mfad"), "active\n");
    machine.ok("pam-auth-update --disable pam-mfa; apt-get remove -y -q pam-mfa");
    assert_eq!(machine.sh("systemctl is-active mfad").stdout, b"inactive\n");
    assert!(!image.host_path("/usr/sbin/mfad").exists());
    assert!(image.host_path("/var/lib/pam-mfa/users").is_dir());

    // Purge: no unit, link or helper state of the package left.
    machine.ok("apt-get purge -y -q pam-mfa");
    let left = machine.ok(
        "find /etc/systemd /lib/systemd /usr/lib/systemd /run/systemd /var/lib/systemd \\
           \\( -name '*mfad*' -o -name '*pam_mfa*' -o -name '*pam-mfa*' \\) -print;
         # exit 1 when nothing matches
         systemctl list-unit-files --no-legend 'mfad*' 'dbus-io.github.pam_mfa*' || true",
    );
    assert_eq!(left.trim(), "", "left after purge:\n{left}");
    assert_eq!(machine.sh("systemctl is-active mfad").stdout, b"inactive\n");
    machine.poweroff();
}

/// A fleet host under systemd: Debian's PostgreSQL 15 on the same machine
/// (as systemd starts it), the database set up with `mfa-db`, and the host
/// configured as README's Fleet says, over TCP with a password file. The
/// packaged unit gives mfad no network, so logins fail closed until the
/// drop-in from the examples allows the database's address; then a code
/// signs in over ssh.service, is refused again, and the audit in the
/// database names the host by its role. No secret is in the host's files.
#[test]
fn a_fleet_host_under_systemd_checks_codes_in_postgresql() {
    let image = Image::new();
    let machine = installed(&image);
    let deadline = Instant::now() + Duration::from_secs(60);
    while machine.sh("systemctl is-active postgresql@15-main").stdout != b"active\n" {
        assert!(
            Instant::now() < deadline,
            "{}",
            machine.ok("systemctl status postgresql@15-main || true")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    machine.ok("runuser -u postgres -- createdb mfa");
    let said = machine.ok("runuser -u postgres -- mfa-db setup");
    let latest = pam_mfa_storage::schema::latest();
    let all: Vec<String> = (1..=latest).map(|v| v.to_string()).collect();
    let applied = format!("version {latest} (applied now: {})", all.join(", "));
    assert!(said.contains(&applied), "{said}");
    let said = machine.ok("echo 'fleet-Password-of-web1' | runuser -u postgres -- mfa-db add-host web1 --password-stdin");
    assert!(said.contains("web1 is a host's role"), "{said}");
    machine.ok("set -e
         install -d -m 0755 /etc/pam-mfa
         install -m 0600 -o pam-mfa -g pam-mfa /dev/null /etc/pam-mfa/db-password
         echo 'fleet-Password-of-web1' > /etc/pam-mfa/db-password
         cat >> /etc/pam-mfa/config.toml <<'TOML'

[store]
backend = \"postgres\"
connection = \"host=127.0.0.1 dbname=mfa user=web1\"
password_file = \"/etc/pam-mfa/db-password\"
TOML
         systemctl restart mfad");
    // The packaged sandbox: no network for mfad, so closed (and said).
    let refused = machine.sh("mfa-enroll --list");
    assert!(!refused.status.success());
    let journal = machine.ok("journalctl --no-pager -o cat -u mfad.service");
    assert!(journal.contains("store-unreachable"), "{journal}");
    // README's drop-in, with the database's address.
    machine.ok(
        "set -e
         mkdir -p /etc/systemd/system/mfad.service.d
         sed 's/^IPAddressAllow=.*/IPAddressAllow=127.0.0.1/' /usr/share/doc/pam-mfa/examples/mfad-fleet.conf > /etc/systemd/system/mfad.service.d/fleet.conf
         systemctl daemon-reload
         systemctl restart mfad",
    );
    machine.ok("mfa-enroll --list");
    add_user(&machine, "alice", "");
    enable_for_ssh(&machine);
    let app = enroll_as_root(&machine, "alice");
    let code = app.code_now();
    let (login, screen) = ssh_login(&machine, "alice", &code);
    assert_eq!(login, 0, "a code checked in PostgreSQL:\n{screen}");
    let (login, screen) = ssh_login(&machine, "alice", &code);
    assert_eq!(login, 2, "the same code again:\n{screen}");
    let audit = machine.ok("runuser -u postgres -- psql -d mfa -Atc 'SELECT host, username, service, result FROM mfa.audit ORDER BY id'");
    assert!(audit.contains("web1|alice|sshd|accepted\nweb1|alice|sshd|replayed"), "{audit}");
    // The secret is in the database only; the host keeps no user file.
    let files = machine.ok("ls -A /var/lib/pam-mfa/users 2>/dev/null || true");
    assert!(files.trim().is_empty(), "{files}");
    let secret = machine.ok("runuser -u postgres -- psql -d mfa -Atc \"SELECT count(*) FROM mfa.account WHERE username = 'alice'\"");
    assert_eq!(secret.trim(), "1");
    let everything = machine.ok("journalctl --no-pager -o cat");
    for secret in [&code, &app.secret] {
        assert!(!everything.contains(secret.as_str()), "{secret} is in the journal");
    }
    machine.poweroff();
}

#[test]
fn the_phone_approver_runs_sandboxed_under_systemd_as_its_own_user() {
    let image = Image::new();
    let ca = pam_mfa_tests::browser::TestCa::new("boot test CA");
    let (cert, key) = ca.server_cert("approver.test", &["approver.test"]);
    image.put(&cert, "/etc/pam-mfa/web/fullchain.pem");
    image.put(&key, "/etc/pam-mfa/web/privkey.pem");
    let machine = installed(&image);
    // Installed, its user made, not enabled.
    assert_eq!(machine.sh("systemctl is-enabled mfa-web").stdout, b"disabled\n");
    machine.ok("getent passwd pam-mfa-web");
    // README's setup: the key readable by mfa-web's group only.
    machine.ok("set -e
         chown root:pam-mfa-web /etc/pam-mfa/web/privkey.pem
         chmod 0640 /etc/pam-mfa/web/privkey.pem
         chmod 0644 /etc/pam-mfa/web/fullchain.pem
         cat >> /etc/pam-mfa/config.toml <<'TOML'

[web]
public_url = \"https://approver.test:8443\"
certificate = \"/etc/pam-mfa/web/fullchain.pem\"
key = \"/etc/pam-mfa/web/privkey.pem\"
TOML
         systemctl restart mfad || true
         systemctl enable --now mfa-web");
    let deadline = Instant::now() + Duration::from_secs(30);
    while machine.sh("systemctl is-active mfa-web").stdout != b"active\n" {
        assert!(Instant::now() < deadline, "{}", machine.ok("systemctl status mfa-web || true"));
        std::thread::sleep(Duration::from_millis(300));
    }
    let pid = machine.ok("systemctl show -p MainPID --value mfa-web").trim().to_string();
    assert_eq!(machine.ok(&format!("ps -o user= -p {pid}")).trim(), "pam-mfa-web");
    let served = pam_mfa_tests::wait_for(Duration::from_secs(10), || {
        machine.ok("journalctl --no-pager -o cat -u mfad.service").contains("web-approver-online")
    });
    assert!(
        served,
        "{}",
        machine.ok("journalctl --no-pager -o cat -u mfad.service -u mfa-web.service")
    );

    // Served over TLS with a certificate the test CA signed, strict headers.
    let mut client = machine.in_network(&[
        "openssl",
        "s_client",
        "-connect",
        "127.0.0.1:8443",
        "-servername",
        "approver.test",
        "-verify_return_error",
        "-quiet",
        "-CAfile",
    ]);
    client.arg(&ca.cert);
    let out = pam_mfa_tests::with_input(&mut client, "GET / HTTP/1.1\r\nHost: approver.test:8443\r\nAccept-Language: nl\r\nConnection: close\r\n\r\n");
    let page = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(page.starts_with("http/1.1 200"), "{page}{}", String::from_utf8_lossy(&out.stderr));
    assert!(page.contains("content-security-policy: default-src 'none'"), "{page}");
    assert!(page.contains("<html lang=\"nl\">"), "{page}");

    // Web1 is for mfa-web's user: anyone else is refused by the bus policy.
    add_user(&machine, "alice", "");
    let other = machine.sh("runuser -u alice -- dbus-send --system --print-reply --dest=io.github.pam_mfa /io/github/pam_mfa io.github.pam_mfa.Web1.Register");
    assert!(!other.status.success());
    assert!(String::from_utf8_lossy(&other.stderr).contains("AccessDenied"), "{other:?}");

    // A link for a phone, with the public address.
    enroll_as_root(&machine, "alice");
    let first =
        machine.sh("timeout 5 mfa-enroll --add-phone --user alice --json --qr none | head -n 1");
    let line = String::from_utf8_lossy(&first.stdout);
    assert!(line.contains("\"link\":\"https://approver.test:8443/add#t="), "{line}");

    // Network only on its port: the unit binds tcp:8443 and nothing else.
    // (systemd enforces it with cgroup BPF, which this container does not
    // let it load: another port binds here, so the setting itself is what
    // can be checked.)
    let bind = machine.ok("systemctl show -p SocketBindAllow -p SocketBindDeny mfa-web");
    assert_eq!(bind, "SocketBindAllow=tcp8443\nSocketBindDeny=any\n");
    machine.poweroff();
}
