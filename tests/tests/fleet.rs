//! A fleet of three hosts on one PostgreSQL 15: each host is its own
//! private bus, its own mfad with its own config and database role (set
//! up with `mfa-db setup` and `mfa-db add-host`, logged in over TLS with a
//! client certificate of its own), and a real sshd on its own 127.0.0.1
//! port. One enrollment serves every host; a code is accepted once
//! fleet-wide; failures add up; a reset holds everywhere; a sudo on one
//! host is approved from another; hosts append to the audit and read
//! nothing. Root: the server runs as the postgres user, sshd as root.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::process::Command;
use std::time::{Duration, Instant};

use pam_mfa_tests::fleet::{fleet, mfa_db_in, Host, HOSTS};
use pam_mfa_tests::system::{ensure_user, Login, Scratch, Sshd};
use pam_mfa_tests::{bin, wrong_code, PamRun, PamService};

#[test]
fn one_enrollment_serves_every_host_and_a_code_is_accepted_once_fleet_wide() {
    const USER: &str = "mfa-fleet-ssh";
    ensure_user(USER, false);
    let fleet = fleet("");
    // Enrolled on host A, over A's mfad.
    let (app, _) = fleet.hosts[0].mfad.enroll_with_recovery(USER);
    // A real sshd per host, each on its own port, one key for the user.
    let scratches: Vec<Scratch> = (0..3).map(|_| Scratch::new()).collect();
    let sshds: Vec<Sshd> = fleet
        .hosts
        .iter()
        .zip(&scratches)
        .enumerate()
        .map(|(i, (host, scratch))| {
            if i > 0 {
                scratch.share_client_key(&scratches[0]);
            }
            let line = format!(
                "auth required {} max_prompts=1 config={}",
                scratch.path("libpam_mfa.so").display(),
                host.mfad.config.display()
            );
            Sshd::start(scratch, &format!("sshd-mfa-{}", host.role.replace('_', "-")), USER, &line)
        })
        .collect();
    let code = app.code_now();
    let (login, screen) = sshds[0].login(USER, &code);
    assert_eq!(login, Login::LoggedIn, "host A: {screen}\n{}", sshds[0].log_text());
    for (i, sshd) in sshds.iter().enumerate().skip(1) {
        let (login, screen) = sshd.login(USER, &code);
        assert_eq!(login, Login::Denied, "the code used on A, again on host {i}: {screen}");
        assert!(
            fleet.hosts[i].mfad.log_text().contains("result=\"replayed\""),
            "refused as a replay: {}",
            fleet.hosts[i].mfad.log_text()
        );
    }
    // The enrollment works on B at once: the next code (within the skew).
    let next = app.code_at(pam_mfa_tests::now() + 30);
    let (login, screen) = sshds[1].login(USER, &next);
    assert_eq!(login, Login::LoggedIn, "host B with the next code: {screen}");
    // The audit names each host by its role.
    let audit = fleet.audit(USER);
    let hosts: Vec<&str> = audit.iter().map(|(h, _, _)| h.as_str()).collect();
    assert_eq!(hosts, ["fleet_a", "fleet_b", "fleet_c", "fleet_b"], "{audit:?}");
    let results: Vec<&str> = audit.iter().map(|(_, _, r)| r.as_str()).collect();
    assert_eq!(results, ["accepted", "replayed", "replayed", "accepted"], "{audit:?}");
    assert!(audit.iter().all(|(_, s, _)| s.starts_with("sshd-mfa-fleet")), "{audit:?}");
}

#[test]
fn twenty_concurrent_logins_with_one_code_on_three_hosts_let_one_in() {
    const USER: &str = "mfa-fleet-race";
    // Replays count as failures: with the default 5, the sixth would be
    // refused as locked out, unchecked. Here every one is checked.
    let fleet = fleet("[limits]\nmax_failures = 100\n");
    let app = fleet.hosts[1].mfad.enroll(USER);
    let code = app.code_now();
    let runs: Vec<(usize, PamRun)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let (host, code) = (&fleet.hosts[i % 3], code.clone());
                scope.spawn(move || (i % 3, host.pam.authenticate(USER, &[&code])))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let in_: Vec<usize> =
        runs.iter().filter(|(_, r)| r.result() == "PAM_SUCCESS").map(|(h, _)| *h).collect();
    assert_eq!(in_.len(), 1, "{:?}", runs.iter().map(|(h, r)| (h, r.result())).collect::<Vec<_>>());
    for (_, run) in &runs {
        assert!(["PAM_SUCCESS", "PAM_AUTH_ERR"].contains(&run.result()), "{}", run.text);
    }
    let audit = fleet.audit(USER);
    let count = |what: &str| audit.iter().filter(|(_, _, r)| r == what).count();
    assert_eq!((count("accepted"), count("replayed"), audit.len()), (1, 19, 20), "{audit:?}");
    for role in HOSTS {
        assert!(audit.iter().any(|(h, _, _)| h == role), "{role} took part: {audit:?}");
    }
}

#[test]
fn failures_add_up_across_hosts_and_the_lockout_holds_on_all() {
    const USER: &str = "mfa-fleet-lockout";
    let fleet = fleet("[limits]\nmax_failures = 3\nlockout_seconds = 600\n");
    let app = fleet.hosts[0].mfad.enroll(USER);
    let wrong = wrong_code(&app.code_now());
    // The third failure (on C) starts the lockout: the module stops asking.
    for (host, expected) in fleet.hosts.iter().zip(["PAM_AUTH_ERR", "PAM_AUTH_ERR", "PAM_MAXTRIES"])
    {
        let run = host.pam.authenticate(USER, &[&wrong]);
        assert_eq!(run.result(), expected, "{}: {}", host.role, run.text);
    }
    // The third failure, on C, locked the user out on every host: the
    // right code is not even checked.
    let right = app.code_now();
    for host in &fleet.hosts {
        let run = host.pam.authenticate(USER, &[&right]);
        assert_ne!(run.result(), "PAM_SUCCESS", "{}: {}", host.role, run.text);
        assert!(
            run.errors.iter().any(|e| e.contains("locked until")),
            "{}: {}",
            host.role,
            run.text
        );
    }
    let audit = fleet.audit(USER);
    let results: Vec<&str> = audit.iter().map(|(_, _, r)| r.as_str()).collect();
    assert_eq!(
        results,
        ["rejected", "rejected", "rejected", "locked-out", "locked-out", "locked-out"],
        "{audit:?}"
    );
}

#[test]
fn a_reset_on_one_host_holds_on_the_others_at_once() {
    const USER: &str = "mfa-fleet-reset";
    let fleet = fleet("");
    let app = fleet.hosts[0].mfad.enroll(USER);
    let out = fleet.hosts[2].mfad.enroll_cmd(&["--reset", USER]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reset_at = Instant::now();
    let run = fleet.hosts[0].pam.authenticate(USER, &[&app.code_now()]);
    assert!(reset_at.elapsed() < Duration::from_secs(1), "checked within a second");
    assert_eq!(run.result(), "PAM_AUTH_ERR", "reset on C, refused on A: {}", run.text);
    let left = fleet
        .pg
        .psql("mfa", &format!("SELECT count(*) FROM mfa.account WHERE username = '{USER}'"));
    assert_eq!(left.trim(), "0");
}

#[test]
fn a_sudo_on_one_host_is_approved_from_another() {
    const USER: &str = "mfa-fleet-push";
    ensure_user(USER, false);
    let fleet = fleet("");
    let (a, b) = (&fleet.hosts[0], &fleet.hosts[1]);
    let (_app, mut proofs) = b.mfad.enroll_with_recovery(USER);
    let pam = PamService::new(&format!("mode=push config={}", a.mfad.config.display()));
    let request = pam.start_push(USER, None);
    // mfa-approve on host B, in a login session that passed B's second factor.
    let session = b.mfad.in_verified_session(USER, &proofs.pop().unwrap(), &b.mfad.approve_bin());
    let out = b.mfad.run_client(session, &["--once"], &format!("{}\n", request.number));
    let approved_at = Instant::now();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut request = request;
    let (line, at) = request.result_line().expect("a result");
    assert!(line.contains("PAM_SUCCESS"), "{}", request.shown());
    assert!(
        at.duration_since(approved_at) < Duration::from_secs(2),
        "host A woke at once: {:?}",
        at.duration_since(approved_at)
    );
    assert!(b.mfad.log_text().contains("result=\"approved\""), "{}", b.mfad.log_text());
}

#[test]
fn one_pending_request_per_user_holds_across_hosts() {
    const USER: &str = "mfa-fleet-pending";
    ensure_user(USER, false);
    let fleet = fleet("");
    fleet.hosts[0].mfad.enroll(USER);
    let on = |i: usize| {
        PamService::new(&format!("mode=push config={}", fleet.hosts[i].mfad.config.display()))
    };
    let (pam_a, pam_c) = (on(0), on(2));
    let _waiting = pam_a.start_push(USER, None);
    let second = pam_c.authenticate(USER, &[""]);
    assert!(
        second.text.contains("Another sign-in request is waiting"),
        "a request on C while one from A waits: {}",
        second.text
    );
}

/// What one login on `pam` came to, and how long it took.
fn timed(pam: &PamService, user: &str, code: &str) -> (PamRun, Duration) {
    let started = Instant::now();
    let run = pam.authenticate(user, &[code]);
    (run, started.elapsed())
}

#[test]
fn an_unreachable_database_fails_closed_in_bounds_and_mfad_recovers_by_itself() {
    const USER: &str = "mfa-fleet-down";
    // The module's bus timeout in these tests is 1000 ms; the store's is
    // 800 ms (mfad refuses a config where it is not below): mfad answers first.
    let fleet = fleet("");
    let host = &fleet.hosts[0];
    let app = host.mfad.enroll(USER);
    let pid = host.mfad.pid();
    // failmode=open lets the stack decide only when mfad cannot be reached;
    // mfad answering that its database cannot be reached is always closed.
    let open = PamService::followed_by_permit(&format!(
        "max_prompts=1 failmode=open config={}",
        host.mfad.config.display()
    ));
    type Step<'a> = Box<dyn Fn() + 'a>;
    let rounds: [(&str, Step, Step); 2] = [
        ("stopped", Box::new(|| fleet.pg.stop()), Box::new(|| fleet.pg.start_again())),
        ("hanging", Box::new(|| fleet.pg.freeze(true)), Box::new(|| fleet.pg.freeze(false))),
    ];
    // Each round signs in once when the database is back: with the code
    // of the next step in round 2 (within the skew), no replay, no wait.
    let start = pam_mfa_tests::now();
    for (round, (how, down, up)) in rounds.iter().enumerate() {
        down();
        for pam in [&host.pam, &open] {
            let (run, took) = timed(pam, USER, &app.code_now());
            assert_eq!(run.result(), "PAM_AUTHINFO_UNAVAIL", "database {how}: {}", run.text);
            assert!(took < Duration::from_secs(3), "database {how}: failed closed in {took:?}");
            assert!(
                run.errors.iter().any(|e| e.contains("cannot be checked right now")),
                "the user is told: {}",
                run.text
            );
        }
        assert!(host.mfad.log_text().contains("store-unreachable"), "{}", host.mfad.log_text());
        up();
        // Back, with no restart: the code signs in (within 10 s).
        let code = app.code_at(start + 30 * round as u64);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = String::new();
        let back = loop {
            let run = host.pam.authenticate(USER, &[&code]);
            if run.result() == "PAM_SUCCESS" {
                break true;
            }
            last = run.text;
            if Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(back, "database {how} and back: {last}\n{}", host.mfad.log_text());
        assert_eq!(host.mfad.pid(), pid, "the same mfad");
    }
}

#[test]
fn break_glass_admits_only_users_of_the_local_store_while_the_database_is_down() {
    const ADMIN: &str = "mfa-fleet-admin";
    const USER: &str = "mfa-fleet-user";
    let mut fleet = fleet("");
    let user_app = fleet.hosts[0].mfad.enroll(USER);
    // The administrator's emergency account, enrolled in this host's own
    // file store while the config said "file".
    let path = fleet.hosts[0].mfad.config.clone();
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, config.replace("backend = \"postgres\"", "backend = \"file\"")).unwrap();
    fleet.hosts[0].mfad.restart();
    let admin_app = fleet.hosts[0].mfad.enroll(ADMIN);
    std::fs::write(&path, config.replace("[store]\n", "[store]\nfallback = \"local\"\n")).unwrap();
    fleet.hosts[0].mfad.restart();
    let host = &fleet.hosts[0];
    // nullok: a user the local store does not have must not pass as "not enrolled".
    let nullok =
        PamService::new(&format!("max_prompts=1 nullok config={}", host.mfad.config.display()));
    fleet.pg.stop();
    // Two codes: the current one and the next (within the skew).
    let codes = [admin_app.code_now(), admin_app.code_at(pam_mfa_tests::now() + 30)];
    for (pam, code) in [&host.pam, &nullok].into_iter().zip(&codes) {
        let run = pam.authenticate(ADMIN, &[code]);
        assert_eq!(run.result(), "PAM_SUCCESS", "break-glass: {}", run.text);
        let run = pam.authenticate(USER, &[&user_app.code_now()]);
        assert_eq!(
            run.result(),
            "PAM_AUTHINFO_UNAVAIL",
            "only the local store's users: {}\n{}",
            run.text,
            host.mfad.log_text()
        );
    }
    assert!(host.mfad.log_text().contains("store-fallback-local"), "{}", host.mfad.log_text());
    fleet.pg.start_again();
}

/// Sets `host`'s store backend in its config and restarts its mfad.
fn switch(host: &mut Host, backend: &str) {
    let text = std::fs::read_to_string(&host.mfad.config).unwrap();
    let text = text
        .replace("backend = \"postgres\"", &format!("backend = \"{backend}\""))
        .replace("backend = \"file\"", &format!("backend = \"{backend}\""));
    std::fs::write(&host.mfad.config, text).unwrap();
    host.mfad.restart();
}

#[test]
fn a_hosts_file_store_moves_into_the_database_and_back_out() {
    const USER: &str = "mfa-fleet-moving";
    let mut fleet = fleet("");
    // Host A ran on files: an enrollment with a used step and recovery codes.
    switch(&mut fleet.hosts[0], "file");
    let (app, recovery) = fleet.hosts[0].mfad.enroll_with_recovery(USER);
    let used = app.code_now();
    assert_eq!(fleet.hosts[0].pam.authenticate(USER, &[&used]).result(), "PAM_SUCCESS");
    // In, through A's own role (the config's [store]), twice.
    let said = mfa_db_in(&fleet.hosts[0], &["import"]);
    assert!(
        said.contains(&format!("{USER}: moved")) && said.contains("1 moved, 0 already there"),
        "{said}"
    );
    // The file is set aside (the break-glass cannot check a stale copy):
    // a second run finds nothing to move.
    let state = fleet.hosts[0].mfad.dir.path().join("state");
    assert!(!state.join(format!("users/{USER}.toml")).exists());
    assert!(state.join(format!("imported/{USER}.toml")).exists());
    let said = mfa_db_in(&fleet.hosts[0], &["import"]);
    assert!(said.contains("0 moved, 0 already there"), "idempotent: {said}");
    // A role that may do more than a host is not made one.
    let out = Command::new(bin("mfa-db"))
        .args(["add-host", "postgres", "--connection", &fleet.pg.conninfo("postgres", "mfa")])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("may do more than a host"), "{said}");
    // On B, from the database: the used step stays used, a recovery code works once.
    let b = &fleet.hosts[1];
    let run = b.pam.authenticate(USER, &[&used]);
    assert_eq!(run.result(), "PAM_AUTH_ERR", "a step used on A's files: {}", run.text);
    assert_eq!(fleet.audit(USER).last().map(|r| r.2.clone()).as_deref(), Some("replayed"));
    assert_eq!(b.pam.authenticate(USER, &[&recovery[0]]).result(), "PAM_SUCCESS");
    assert_eq!(b.pam.authenticate(USER, &[&recovery[0]]).result(), "PAM_AUTH_ERR");
    // Out again, into C's files (an administrator's connection reads secrets).
    let admin = fleet.pg.conninfo("postgres", "mfa");
    let out = Command::new(bin("mfa-db"))
        .args(["export", "--connection", &admin, "--config"])
        .arg(&fleet.hosts[2].mfad.config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 written"));
    switch(&mut fleet.hosts[2], "file");
    let c = &fleet.hosts[2];
    assert_eq!(c.pam.authenticate(USER, &[&used]).result(), "PAM_AUTH_ERR", "still used");
    assert_eq!(c.pam.authenticate(USER, &[&recovery[0]]).result(), "PAM_AUTH_ERR", "still spent");
    assert_eq!(c.pam.authenticate(USER, &[&recovery[1]]).result(), "PAM_SUCCESS");
    let next = app.code_at(pam_mfa_tests::now() + 30);
    assert_eq!(c.pam.authenticate(USER, &[&next]).result(), "PAM_SUCCESS", "the secret came along");
    // A host's role cannot do the export: it reads no secret.
    let host_conn = fleet.pg.conninfo("fleet_a", "mfa");
    let out = Command::new(bin("mfa-db"))
        .args(["export", "--connection", &host_conn, "--config"])
        .arg(&fleet.hosts[2].mfad.config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("permission denied"), "{said}");
}

#[test]
fn an_approver_online_on_another_host_is_told_of_a_request_at_once() {
    use std::io::{BufRead, Write};
    const USER: &str = "mfa-fleet-told";
    ensure_user(USER, false);
    let fleet = fleet("");
    let (a, b) = (&fleet.hosts[0], &fleet.hosts[1]);
    let (_app, mut proofs) = b.mfad.enroll_with_recovery(USER);
    // mfa-approve on host B goes online first: nothing is pending yet, so
    // it can only learn of the request from B's mfad.
    let mut cmd = b.mfad.in_verified_session(USER, &proofs.pop().unwrap(), &b.mfad.approve_bin());
    let mut approver = cmd
        .arg("--config")
        .arg(&b.mfad.config)
        .arg("--once")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout = approver.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = lines.recv_timeout(left) else { break };
            seen.push(line.clone());
            if line.contains(needle) {
                return Instant::now();
            }
        }
        panic!("{needle:?} not seen: {seen:?}");
    };
    wait_for("Waiting for sign-in requests");
    let pam = PamService::new(&format!("mode=push config={}", a.mfad.config.display()));
    let mut request = pam.start_push(USER, None);
    let asked = Instant::now();
    let told = wait_for("Sign-in request for");
    assert!(told.duration_since(asked) < Duration::from_secs(1), "told after {:?}", told - asked);
    writeln!(approver.stdin.take().unwrap(), "{}", request.number).unwrap();
    let (line, _) = request.result_line().expect("a result");
    assert!(line.contains("PAM_SUCCESS"), "{}", request.shown());
    assert!(approver.wait().unwrap().success());
}
