//! High availability on a real replication setup: a PostgreSQL 15
//! primary with two streaming standbys, commits waiting for any one of
//! them (`synchronous_standby_names = 'ANY 1 (s1, s2)'`), and three hosts
//! whose connection string names all three servers with
//! `target_session_attrs=read-write`. With one standby down, logins go
//! on. During a steady stream of logins the primary crashes and the most
//! advanced standby is promoted (the other follows it): logins resume
//! within 10 s with no change on the hosts, no code accepted before the
//! failover is accepted after it, and no acknowledged enrollment is lost.
//! Root: the servers run as the postgres user.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pam_mfa_tests::fleet::{host, set_up, Host, HOSTS};
use pam_mfa_tests::postgres::Postgres;
use pam_mfa_tests::system::require_root;
use pam_mfa_tests::Otpauth;

const USERS: usize = 24;

/// One login of the stream: when, whose, which code, on which host, what came of it.
struct Login {
    at: Instant,
    user: usize,
    code: String,
    host: usize,
    result: String,
}

/// Waits until `primary` has `count` standbys streaming to it.
fn streaming(primary: &Postgres, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = primary
            .psql("postgres", "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'");
        if n.trim().parse::<usize>().unwrap_or(0) >= count {
            return;
        }
        assert!(Instant::now() < deadline, "standbys not streaming: {n}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn user(i: usize) -> String {
    format!("mfa-ha-{i}")
}

#[test]
fn logins_go_on_through_a_failover_and_nothing_acknowledged_is_lost() {
    require_root();
    let primary = Postgres::start_primary(&["s1", "s2"]);
    let standbys = [primary.standby("s1"), primary.standby("s2")];
    streaming(&primary, 2);
    set_up(&primary);
    let ports = [primary.port, standbys[0].port, standbys[1].port];
    let hosts: Vec<Host> = HOSTS
        .iter()
        .map(|role| host(&primary, role, &ports, "[limits]\nmax_failures = 100\n"))
        .collect();
    let enrolled: Vec<(Otpauth, Vec<String>)> =
        (0..USERS).map(|i| hosts[i % 3].mfad.enroll_with_recovery(&user(i))).collect();

    // One standby down: commits wait for the other, logins go on.
    standbys[1].stop();
    let mut used_step = vec![0u64; USERS];
    for (i, (app, _)) in enrolled.iter().enumerate().take(3) {
        used_step[i] = pam_mfa_tests::now() / 30;
        let run = hosts[i].pam.authenticate(&user(i), &[&app.code_now()]);
        assert_eq!(run.result(), "PAM_SUCCESS", "with s2 down: {}", run.text);
    }
    standbys[1].start_again();
    streaming(&primary, 2);

    // A steady stream of logins (about 10/s, round robin over the hosts,
    // each with a code not used before: a user's current code once, then
    // its recovery codes), and enrollments beside it.
    let recovery: Vec<Mutex<Vec<String>>> =
        enrolled.iter().map(|(_, codes)| Mutex::new(codes.clone())).collect();
    let stop = AtomicBool::new(false);
    let logins = Mutex::new(Vec::<Login>::new());
    let acknowledged = Mutex::new(Vec::<String>::new());
    let failover_at = Mutex::new(None::<Instant>);
    let promoted = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut used_step = used_step;
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let u = i % USERS;
                let step = pam_mfa_tests::now() / 30;
                let code = if used_step[u] < step {
                    used_step[u] = step;
                    enrolled[u].0.code_now()
                } else {
                    match recovery[u].lock().unwrap().pop() {
                        Some(code) => code,
                        None => break,
                    }
                };
                let host = i % 3;
                let run = hosts[host].pam.authenticate(&user(u), &[&code]);
                let result = run.result().to_string();
                logins.lock().unwrap().push(Login { at: started, user: u, code, host, result });
                i += 1;
                std::thread::sleep(Duration::from_millis(100).saturating_sub(started.elapsed()));
            }
        });
        scope.spawn(|| {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("mfa-ha-new-{n}");
                // Acknowledged: mfa-enroll said it is confirmed (a failed
                // one panics in the helper, caught here: not acknowledged).
                let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    hosts[n % 3].mfad.enroll(&name)
                }));
                if started.is_ok() {
                    acknowledged.lock().unwrap().push(name);
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        std::thread::sleep(Duration::from_secs(5));
        // The failover: the primary crashes; the standby that received the
        // most is promoted (every commit acknowledged under ANY 1 is on
        // it), and the other follows it.
        let (ahead, behind) =
            if standbys[0].wal_position() >= standbys[1].wal_position() { (0, 1) } else { (1, 0) };
        primary.crash();
        *failover_at.lock().unwrap() = Some(Instant::now());
        standbys[ahead].promote();
        standbys[behind].follow(&standbys[ahead], if behind == 0 { "s1" } else { "s2" });
        std::thread::sleep(Duration::from_secs(12));
        stop.store(true, Ordering::Relaxed);
        ahead
    });
    let new_primary = &standbys[promoted];
    let failover_at = failover_at.lock().unwrap().unwrap();
    let logins = logins.into_inner().unwrap();
    let summary: Vec<String> = logins
        .iter()
        .map(|l| {
            format!(
                "{:>6} ms {} host {} {}",
                l.at.saturating_duration_since(failover_at).as_millis() as i64
                    - failover_at.saturating_duration_since(l.at).as_millis() as i64,
                user(l.user),
                l.host,
                l.result
            )
        })
        .collect();
    let summary = summary.join("\n");

    // Every login either got in or was refused closed; none got in twice.
    let ok = |l: &&Login| l.result == "PAM_SUCCESS";
    assert!(
        logins.iter().all(|l| ["PAM_SUCCESS", "PAM_AUTHINFO_UNAVAIL"].contains(&l.result.as_str())),
        "{summary}"
    );
    let before: Vec<&Login> = logins.iter().filter(|l| l.at < failover_at).filter(ok).collect();
    assert!(before.len() >= 20, "a stream before the failover: {summary}");
    // Logins resumed within 10 s, with no change on the hosts.
    let resumed = logins
        .iter()
        .filter(|l| l.at > failover_at)
        .find(ok)
        .map(|l| l.at.duration_since(failover_at));
    assert!(
        resumed.is_some_and(|d| d < Duration::from_secs(10)),
        "resumed after {resumed:?}:\n{summary}"
    );
    let after = logins.iter().filter(|l| l.at > failover_at).filter(ok).count();
    assert!(after >= 20, "the stream went on: {summary}");
    // No code accepted before the failover is accepted after it, on any host.
    for login in &before {
        for (h, host) in hosts.iter().enumerate() {
            let run = host.pam.authenticate(&user(login.user), &[&login.code]);
            assert_eq!(
                run.result(),
                "PAM_AUTH_ERR",
                "{} (accepted on host {} before the failover) again on host {h}: {}",
                user(login.user),
                login.host,
                run.text
            );
        }
    }
    // No acknowledged enrollment was lost.
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(acknowledged.len() >= 10, "enrollments beside the stream: {acknowledged:?}");
    let list = acknowledged.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(",");
    let found = new_primary
        .psql("mfa", &format!("SELECT count(*) FROM mfa.account WHERE username IN ({list})"));
    assert_eq!(found.trim(), acknowledged.len().to_string(), "{acknowledged:?}");
    eprintln!(
        "failover: resumed after {resumed:?}; {} logins before, {after} after\n{summary}",
        before.len()
    );
}
