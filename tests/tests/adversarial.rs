//! Trying to break it: replay races between threads and processes, brute
//! force, mfad killed at random moments, mfad hung or gone. Private bus,
//! real mfad, real libpam; codes from oathtool.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use pam_mfa_client::Client;
use pam_mfa_protocol::wire::VerifyOutcome;
use pam_mfa_tests::{bin, check_store, command, now, Bus, Mfad, Otpauth, PamService};

fn client(mfad: &Mfad) -> Client {
    let config = pam_mfa_config::schema::Config::load(&mfad.config).unwrap();
    Client::new(
        config.bus.address.as_str(),
        config.bus.service_user.as_str(),
        Duration::from_secs(10),
    )
    .unwrap()
}

/// Enrolls `count` users named `{prefix}{i}` and returns their app views.
fn enroll_many(mfad: &Mfad, prefix: &str, count: usize) -> Vec<(String, Otpauth)> {
    (0..count)
        .map(|i| {
            let user = format!("{prefix}{i}");
            let app = mfad.enroll(&user);
            (user, app)
        })
        .collect()
}

#[test]
fn a_code_raced_by_threads_and_processes_is_accepted_exactly_once() {
    const ROUNDS: usize = 200;
    const THREADS: usize = 6;
    const PROCESSES: usize = 2;
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "[limits]\nmax_failures = 100\n");
    let users = enroll_many(&mfad, "race", ROUNDS);
    let pam = PamService::new(&format!("config={}", mfad.config.display()));
    let mut clients: Vec<Client> = (0..THREADS).map(|_| client(&mfad)).collect();
    let mut codes_used = Vec::new();
    for (user, app) in &users {
        let code = app.code_now();
        codes_used.push(code.clone());
        let barrier = Arc::new(Barrier::new(THREADS + PROCESSES));
        let successes = std::thread::scope(|scope| {
            let mut handles = Vec::new();
            for client in clients.iter_mut() {
                let (barrier, code, user) = (Arc::clone(&barrier), code.clone(), user.clone());
                handles.push(scope.spawn(move || {
                    barrier.wait();
                    let (outcome, _) = client.verify_code(&user, &code, &HashMap::new()).unwrap();
                    usize::from(outcome == VerifyOutcome::Accepted)
                }));
            }
            for _ in 0..PROCESSES {
                let (barrier, code, user, pam) = (Arc::clone(&barrier), code.clone(), user, &pam);
                handles.push(scope.spawn(move || {
                    let child = command(bin("pam-harness"))
                        .arg("--confdir")
                        .arg(pam.dir.path())
                        .args(["--service", &pam.name, "--user", user, "--answer", &code])
                        .stdout(Stdio::piped())
                        .spawn()
                        .unwrap();
                    barrier.wait();
                    let out = child.wait_with_output().unwrap();
                    let text = String::from_utf8_lossy(&out.stdout).into_owned();
                    usize::from(text.contains("result: PAM_SUCCESS"))
                }));
            }
            handles.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
        });
        assert_eq!(successes, 1, "{user}: {successes} callers got in with one code");
    }
    let log = mfad.log_text();
    assert_eq!(log.matches("result=\"accepted\"").count(), ROUNDS, "one acceptance per round");
    for code in &codes_used {
        assert!(!log.contains(&format!("\"{code}\"")) && !log.contains(&format!("={code}")));
    }
    println!(
        "replay race: {ROUNDS} rounds x {} callers, exactly one success each",
        THREADS + PROCESSES
    );
}

#[test]
fn brute_force_is_locked_out_and_the_back_off_doubles() {
    let bus = Bus::start();
    let mfad = Mfad::start(
        &bus,
        "[limits]\nmax_failures = 5\nlockout_seconds = 1\nlockout_max_seconds = 4\n",
    );
    let app = mfad.enroll("guesser");
    let mut c = client(&mfad);
    let mut lockouts = Vec::new();
    let mut tried = 0u32;
    let started = Instant::now();
    let mut guess = 0u32;
    while lockouts.len() < 4 {
        let code = format!("{:06}", guess);
        guess += 1;
        if code == app.code_now() {
            continue;
        }
        let (outcome, retry_after) = c.verify_code("guesser", &code, &HashMap::new()).unwrap();
        tried += 1;
        match outcome {
            VerifyOutcome::Rejected if retry_after > 0 => {
                lockouts.push(retry_after);
                // Everything is refused unchecked until the lockout ends,
                // even the right code. (Asked of lockouts of 2 s or more:
                // a 1 s lockout may end, by the second-grained clock,
                // between two calls.)
                if retry_after >= 2 {
                    let (locked, _) =
                        c.verify_code("guesser", &app.code_now(), &HashMap::new()).unwrap();
                    assert_eq!(locked, VerifyOutcome::LockedOut);
                }
                std::thread::sleep(Duration::from_secs(retry_after) + Duration::from_millis(50));
            }
            VerifyOutcome::Rejected => {}
            other => panic!("guess {code}: {other:?}"),
        }
    }
    assert_eq!(lockouts, vec![1, 2, 4, 4], "doubling up to the ceiling");
    assert_eq!(tried, 20, "five guesses per lockout");
    println!("brute force: {tried} guesses in {:?}, lockouts {lockouts:?} s", started.elapsed());
}

#[test]
fn failmode_open_lets_the_stack_decide_when_mfad_is_down_or_hung() {
    let bus = Bus::start();
    let mut mfad = Mfad::start(&bus, "");
    mfad.enroll("fo");
    let lenient =
        PamService::followed_by_permit(&format!("failmode=open config={}", mfad.config.display()));
    let strict = PamService::followed_by_permit(&format!("config={}", mfad.config.display()));
    // Hung: SIGSTOP.
    let pid = nix::unistd::Pid::from_raw(mfad.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let open = lenient.authenticate("fo", &["123456"]);
    let closed = strict.authenticate("fo", &["123456"]);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert_eq!(open.result(), "PAM_SUCCESS", "failmode=open: the stack decided: {}", open.text);
    assert_eq!(closed.result(), "PAM_AUTHINFO_UNAVAIL", "{}", closed.text);
    for run in [&open, &closed] {
        assert!(run.elapsed_ms[0] < 3000, "bounded by timeout_ms: {} ms", run.elapsed_ms[0]);
    }
    // Gone.
    mfad.stop();
    assert_eq!(lenient.authenticate("fo", &["123456"]).result(), "PAM_SUCCESS");
    assert_eq!(strict.authenticate("fo", &["123456"]).result(), "PAM_AUTHINFO_UNAVAIL");
}

#[test]
fn mfad_killed_at_random_moments_loses_nothing_and_accepts_nothing_twice() {
    const KILLS: usize = 200;
    let bus = Bus::start();
    let mut mfad = Mfad::start(&bus, "[limits]\nmax_failures = 100\n");
    let state = mfad.dir.path().join("state");
    let mut confirmed: HashSet<String> = HashSet::new();
    let mut apps: Vec<(String, Otpauth)> = Vec::new();
    let mut accepted: Vec<(String, String)> = Vec::new();
    let mut max_temps = 0;
    let mut seed = now() as u32 | 1;
    let mut random = move |n: u32| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed % n
    };
    for round in 0..KILLS {
        // A stream of work: enroll a new user, verify codes of earlier ones.
        let user = format!("crash{round}");
        let config = mfad.config.clone();
        let enroll_user = user.clone();
        let worker = std::thread::spawn(move || {
            let out = command(bin("mfa-enroll"))
                .arg("--config")
                .arg(&config)
                .args(["--json", "--user", &enroll_user])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            confirm_over_pipe(out)
        });
        let mut c = client(&mfad);
        let mut verified = Vec::new();
        if !apps.is_empty() {
            let (u, app) = &apps[random(apps.len() as u32) as usize];
            let code = app.code_at(now() + 30 * u64::from(random(2)));
            if let Ok((VerifyOutcome::Accepted, _)) = c.verify_code(u, &code, &HashMap::new()) {
                verified.push((u.clone(), code));
            }
        }
        std::thread::sleep(Duration::from_millis(u64::from(random(40))));
        let pid = nix::unistd::Pid::from_raw(mfad.pid() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
        drop(c);
        if let Some(app) = worker.join().unwrap() {
            confirmed.insert(user.clone());
            apps.push((user, app));
        }
        accepted.extend(verified);
        max_temps = max_temps.max(check_store(&state, &confirmed));
        mfad.restart();
    }
    // Nothing accepted before a kill is accepted again after it.
    let mut c = client(&mfad);
    for (user, code) in &accepted {
        let (outcome, _) = c.verify_code(user, code, &HashMap::new()).unwrap();
        assert_ne!(outcome, VerifyOutcome::Accepted, "{user}: code accepted twice");
    }
    check_store(&state, &confirmed);
    let temps_now = std::fs::read_dir(state.join("users"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".tmp-"))
        .count();
    assert_eq!(temps_now, 0, "temp files left after restart");
    assert!(max_temps <= 1, "temp files accumulate: {max_temps}");
    assert!(!confirmed.is_empty(), "no enrollment ever completed between kills");
    let log = mfad.log_text();
    for (_, app) in &apps {
        assert!(!log.contains(&app.secret), "a secret is in the log");
    }
    println!(
        "crash safety: {KILLS} kills, {} confirmed enrollments kept, {} accepted codes refused again",
        confirmed.len(),
        accepted.len()
    );
}

/// Drives `mfa-enroll --json` through its first code; `None` if mfad died
/// before the enrollment was confirmed (as seen by the client).
fn confirm_over_pipe(mut child: std::process::Child) -> Option<Otpauth> {
    use std::io::{BufRead, BufReader, Write};
    let mut stdout = BufReader::new(child.stdout.take()?);
    let mut line = String::new();
    stdout.read_line(&mut line).ok()?;
    let begin: serde_json::Value = serde_json::from_str(&line).ok()?;
    let app = Otpauth::parse(begin["uri"].as_str()?);
    writeln!(child.stdin.take()?, "{}", app.code_at(now() - app.period)).ok()?;
    line.clear();
    stdout.read_line(&mut line).ok()?;
    let _ = child.wait();
    let done: serde_json::Value = serde_json::from_str(&line).ok()?;
    (done["event"] == "enrolled").then_some(app)
}

/// Every file of the store, for before/after comparisons.
fn snapshot(state: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(state.join("users"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn malformed_bus_arguments_get_a_clear_error_and_change_nothing() {
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "");
    mfad.enroll("target");
    let state = mfad.dir.path().join("state");
    let before = snapshot(&state);
    let long = "a".repeat(10_000);
    let digits = "1".repeat(10_000);
    let ctx = "dict:string:string:service,x";
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "Pam1.VerifyCode",
            vec!["string:".into(), "string:123456".into(), ctx.into()],
            "InvalidArgument",
        ),
        (
            "Pam1.VerifyCode",
            vec![format!("string:{long}"), "string:123456".into(), ctx.into()],
            "InvalidArgument",
        ),
        (
            "Pam1.VerifyCode",
            vec!["string:../etc/shadow".into(), "string:123456".into(), ctx.into()],
            "InvalidArgument",
        ),
        (
            "Pam1.VerifyCode",
            vec!["string:j\u{f6}rg".into(), "string:123456".into(), ctx.into()],
            "InvalidArgument",
        ),
        (
            "Pam1.VerifyCode",
            vec!["string:target".into(), "string:12a456".into(), ctx.into()],
            "InvalidArgument",
        ),
        (
            "Pam1.VerifyCode",
            vec!["string:target".into(), format!("string:{digits}"), ctx.into()],
            "InvalidArgument",
        ),
        (
            "Pam1.VerifyCode",
            vec![
                "string:target".into(),
                "string:123456".into(),
                format!("dict:string:string:rhost,{long}"),
            ],
            "InvalidArgument",
        ),
        (
            "Pam1.VerifyCode",
            vec![
                "string:target".into(),
                "string:123456".into(),
                "dict:string:string:evil,1".into(),
            ],
            "InvalidArgument",
        ),
        ("Pam1.CreateChallenge", vec![format!("string:{long}"), ctx.into()], "InvalidArgument"),
        (
            "Enroll1.Begin",
            vec![format!("string:{long}"), "boolean:false".into(), "string:".into()],
            "InvalidArgument",
        ),
        (
            "Enroll1.Begin",
            vec!["string:target".into(), "boolean:true".into(), format!("string:{long}")],
            "InvalidArgument",
        ),
        ("Enroll1.Confirm", vec!["string:target".into(), "string:".into()], "InvalidArgument"),
        (
            "Enroll1.ImportGoogleAuthenticator",
            vec![
                "string:target".into(),
                format!("string:{long}"),
                "boolean:true".into(),
                "string:".into(),
            ],
            "InvalidArgument",
        ),
        (
            "Approver1.Approve",
            vec![format!("string:{long}"), "uint32:42".into()],
            "NoSuchChallenge",
        ),
        ("Admin1.Reset", vec!["string:".into()], "InvalidArgument"),
    ];
    for (method, args, error) in &cases {
        let out = Command::new("dbus-send")
            .args([&format!("--bus={}", bus.address), "--print-reply", "--reply-timeout=5000"])
            .args(["--dest=io.github.pam_mfa", "/io/github/pam_mfa"])
            .arg(format!("io.github.pam_mfa.{method}"))
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{method} {:.60?} was accepted", args);
        assert!(
            err.contains(&format!("io.github.pam_mfa.Error.{error}: ")),
            "{method} {:.60?}: {err}",
            args
        );
        assert!(err.len() < 400, "the error is short and clear: {err:.200}");
    }
    assert_eq!(snapshot(&state), before, "a malformed call changed the store");
    // mfad is still there and still right.
    let mut c = client(&mfad);
    assert!(c.is_enrolled("target").unwrap());
    assert!(!mfad.log_text().contains("panicked"));
}

#[test]
fn mfad_refuses_to_start_on_a_store_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let bus = Bus::start();
    let mut mfad = Mfad::start(&bus, "");
    mfad.enroll("private");
    mfad.stop();
    let state = mfad.dir.path().join("state");
    let start =
        |mfad: &Mfad| command(bin("mfad")).arg("--config").arg(&mfad.config).output().unwrap();
    // A store file others may read.
    let file = state.join("users/private.toml");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = start(&mfad);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("private.toml") && err.contains("chmod 0600"), "{err}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A state directory others may read.
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = start(&mfad);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 0700"), "{err}");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    mfad.restart();
}
