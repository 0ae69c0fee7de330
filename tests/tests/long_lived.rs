//! The PAM module in a long-lived process, as it lives inside sshd or sudo:
//! one pam-harness process runs a thousand authentications through real
//! libpam (right, replayed and wrong codes of ~200 enrolled users, pushes
//! approved by a real `mfa-approve` in another login session, pushes that
//! expire), and its thread and file descriptor counts must be the same at
//! the end as at the start. A second test runs the module under valgrind
//! (`scripts/valgrind-module.sh`): no invalid read or write, no definite
//! leak from the module.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pam_mfa_tests::system::{ensure_user, require_root};
use pam_mfa_tests::{
    bin, bin_dir, command, in_new_session, module, now, number_in, workspace, Bus, Mfad, Otpauth,
    PamRun, PamService,
};

/// The real account whose pushes are approved (mfa-approve runs as it).
const PUSH_USER: &str = "mfa-long-push";
/// Users with codes; each makes 5 code attempts (2 right, 3 wrong).
const CODE_USERS: usize = 198;
/// Pushes approved with the right number from another login session.
const APPROVED: usize = 8;
/// Pushes nobody answers (5 s each with `timeout_seconds = 5`).
const EXPIRED: usize = 2;
/// Parallel `mfa-enroll` runs while setting up.
const ENROLL_THREADS: usize = 6;

/// The two tests are timing-sensitive (codes) and CPU-heavy (valgrind):
/// one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The current step's code, or the next step's.
    Right,
    /// A code already accepted.
    Replay,
    /// A code valid at no step of the run.
    Wrong,
    PushApproved,
    PushExpired,
}

impl Kind {
    fn expected(self) -> &'static str {
        match self {
            Kind::Right | Kind::PushApproved => "PAM_SUCCESS",
            Kind::Replay | Kind::Wrong | Kind::PushExpired => "PAM_AUTH_ERR",
        }
    }
}

struct Step {
    user: String,
    answer: String,
    service: &'static str,
    kind: Kind,
}

impl Step {
    fn code(user: &str, answer: &str, kind: Kind) -> Step {
        Step { user: user.into(), answer: answer.into(), service: "mfa-code", kind }
    }

    fn push(kind: Kind) -> Step {
        Step { user: PUSH_USER.into(), answer: "-".into(), service: "mfa-push", kind }
    }
}

/// A code of the same length that is none of `valid`: each digit shifted.
fn wrong_code(base: &str, valid: &[String], skip: usize) -> String {
    (1..10u8)
        .map(|k| base.bytes().map(|b| char::from(b'0' + (b - b'0' + k) % 10)).collect::<String>())
        .filter(|c| !valid.contains(c))
        .nth(skip)
        .unwrap()
}

/// Enrolls `users` with a few mfa-enroll processes at a time.
fn enroll_all(mfad: &Mfad, users: &[String]) -> Vec<Otpauth> {
    let per_thread = users.len().div_ceil(ENROLL_THREADS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = users
            .chunks(per_thread)
            .map(|chunk| scope.spawn(move || chunk.iter().map(|u| mfad.enroll(u)).collect()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|_| Vec::new())).collect()
    })
}

/// Puts `pushes` into `steps` at evenly spaced places.
fn spread(steps: &mut Vec<Step>, pushes: &[Kind]) {
    let gap = steps.len() / (pushes.len() + 1);
    for (i, kind) in pushes.iter().enumerate().rev() {
        steps.insert((i + 1) * gap, Step::push(*kind));
    }
}

fn uid(user: &str) -> u32 {
    nix::unistd::User::from_name(user).unwrap().unwrap().uid.as_raw()
}

/// `mfa-approve --once` as PUSH_USER in a new login session, typing `number`.
fn approve(mfad: &Mfad, number: u32) -> (bool, String) {
    let mut child = in_new_session(uid(PUSH_USER), Some(PUSH_USER), &mfad.approve_bin())
        .arg("--config")
        .arg(&mfad.config)
        .arg("--once")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{number}").unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn a_thousand_authentications_in_one_process_leave_no_thread_or_fd_behind() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    require_root();
    let test_started = Instant::now();
    ensure_user(PUSH_USER, false);
    let bus = Bus::start();
    // Approved from plain new login sessions: the rule is push.rs's subject.
    let mfad = Mfad::start(
        &bus,
        &format!(
            "[limits]\nmax_failures = 100\n[push]\ntimeout_seconds = 5\napprover_session = \"different\"\n{}",
            pam_mfa_tests::PUSH_FOR_BENCHES
        ),
    );
    // Two spare users: one whose codes collide within the window (one in
    // a million per pair) is left out rather than making the test flaky.
    let users: Vec<String> = (0..CODE_USERS + 2).map(|i| format!("long-{i:03}")).collect();
    let apps = enroll_all(&mfad, &users);
    assert_eq!(apps.len(), users.len(), "an enrollment failed:\n{}", mfad.log_text());
    mfad.enroll(PUSH_USER);
    let enrolled_in = test_started.elapsed();

    let pam = PamService::named(
        "mfa-code",
        &[&format!("auth required {} config={}", module().display(), mfad.config.display())],
    );
    std::fs::write(
        pam.dir.path().join("mfa-push"),
        format!(
            "auth required {} mode=push config={}\n",
            module().display(),
            mfad.config.display()
        ),
    )
    .unwrap();

    // Step s is now. Phase 1 uses step s's codes (accepted until step s+1
    // ends: at least 30 s from here), phase 2 step s+1's (until s+2 ends).
    // Wrong codes are none of steps s-1..s+2, the whole accepted window.
    let t = now();
    let mut phase1 = Vec::new();
    let mut phase2 = Vec::new();
    let mut used = 0;
    for (user, app) in users.iter().zip(&apps) {
        if used == CODE_USERS {
            break;
        }
        let window = app.codes_from(t - app.period, 4);
        let distinct = window.iter().collect::<std::collections::HashSet<_>>().len() == 4;
        if !distinct {
            continue;
        }
        used += 1;
        let (current, next) = (&window[1], &window[2]);
        phase1.push(Step::code(user, current, Kind::Right));
        phase1.push(Step::code(user, current, Kind::Replay));
        phase1.push(Step::code(user, &wrong_code(current, &window, 0), Kind::Wrong));
        phase2.push(Step::code(user, next, Kind::Right));
        phase2.push(Step::code(user, &wrong_code(current, &window, 1), Kind::Wrong));
    }
    assert_eq!(used, CODE_USERS);
    // Approved pushes in both phases; the slow expiring ones in phase 2.
    let first_half = APPROVED / 2;
    spread(&mut phase1, &vec![Kind::PushApproved; first_half]);
    let mut later = vec![Kind::PushApproved; APPROVED - first_half];
    for i in 0..EXPIRED {
        later.insert((2 * i + 1).min(later.len()), Kind::PushExpired);
    }
    spread(&mut phase2, &later);
    let phase1_len = phase1.len();
    let plan: Vec<Step> = phase1.into_iter().chain(phase2).collect();
    assert_eq!(plan.len(), 1000);

    let plan_file = pam.dir.path().join("plan.txt");
    let text: String =
        plan.iter().map(|s| format!("{} {} {}\n", s.user, s.answer, s.service)).collect();
    std::fs::write(&plan_file, text).unwrap();

    let run_started = Instant::now();
    let mut child = command(bin("pam-harness"))
        .arg("--confdir")
        .arg(pam.dir.path())
        .args(["--service", "mfa-code", "--users-file"])
        .arg(&plan_file)
        .args(["--rhost", "192.0.2.7", "--tty", "ssh"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    // Follow the run: approve the pushes meant to be approved.
    let deadline = run_started + Duration::from_secs(100);
    let mut seen = Vec::new();
    let mut current = 0usize;
    let mut phase1_done = None;
    let mut approvals = Vec::new();
    loop {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            let _ = child.kill();
            panic!("the run took over 100 s; last lines: {:?}", &seen[seen.len() - 5..]);
        };
        let line = match lines.recv_timeout(left) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if let Some(rest) = line.strip_prefix("attempt: ") {
            current = rest.split_whitespace().next().unwrap().parse().unwrap();
            if current == phase1_len + 1 {
                phase1_done = Some(run_started.elapsed());
            }
        } else if line.starts_with("info: ") && line.contains("mfa-approve") {
            let step = &plan[current - 1];
            let number = number_in(&line).unwrap_or_else(|| panic!("no number in {line:?}"));
            if step.kind == Kind::PushApproved {
                let (ok, text) = approve(&mfad, number);
                assert!(ok, "attempt {current}: mfa-approve failed: {text}");
                approvals.push(current);
            }
        }
        seen.push(line);
    }
    let status = child.wait().unwrap();
    let run_took = run_started.elapsed();
    let run = PamRun::parse(&(seen.join("\n") + "\n"));
    assert!(status.success(), "pam-harness: {status}\n{}", run.text);

    let successes = run.results.iter().filter(|r| *r == "PAM_SUCCESS").count();
    let failures = run.results.iter().filter(|r| *r == "PAM_AUTH_ERR").count();
    let expired = run.errors.iter().filter(|e| e.contains("No approval came in time")).count();
    let after_first =
        |key: &str| seen.iter().find_map(|l| l.strip_prefix(key)).unwrap_or("?").trim().to_string();
    println!(
        "long-lived: {} calls in one process ({} code users, {} pushes approved, {} expired): \
         {successes} PAM_SUCCESS, {failures} PAM_AUTH_ERR, {} other",
        run.results.len(),
        CODE_USERS,
        approvals.len(),
        expired,
        run.results.len() - successes - failures
    );
    println!(
        "long-lived: threads {:?} (after the first call {}), fds {:?} (after the first call {})",
        run.threads,
        after_first("threads-after-first:"),
        run.fds,
        after_first("fds-after-first:")
    );
    println!(
        "long-lived: enrollment {:.1} s, phase 1 {:.1} s, run {:.1} s, max call {} ms, test {:.1} s",
        enrolled_in.as_secs_f64(),
        phase1_done.unwrap_or_default().as_secs_f64(),
        run_took.as_secs_f64(),
        run.elapsed_ms.iter().max().unwrap_or(&0),
        test_started.elapsed().as_secs_f64()
    );

    assert_eq!(run.results.len(), plan.len(), "{}", run.text);
    let wrong: Vec<String> = plan
        .iter()
        .zip(&run.results)
        .enumerate()
        .filter(|(_, (step, result))| step.kind.expected() != result.as_str())
        .map(|(i, (step, result))| {
            format!("#{} {:?} {} {}: {result}", i + 1, step.kind, step.user, step.answer)
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} unexpected results (phase 1 took {:?}; its codes hold for 30 s at least): {:?}",
        wrong.len(),
        phase1_done,
        &wrong[..wrong.len().min(20)]
    );
    assert_eq!(successes, 2 * CODE_USERS + APPROVED);
    assert_eq!(failures, 3 * CODE_USERS + EXPIRED);
    assert_eq!(approvals.len(), APPROVED);
    assert_eq!(expired, EXPIRED, "{}", run.text);
    let log = mfad.log_text();
    assert_eq!(log.matches("result=\"approved\"").count(), APPROVED, "{log}");
    assert_eq!(log.matches("result=\"replayed\"").count(), CODE_USERS, "{log}");
    assert!(
        run.left_nothing_behind(),
        "threads {:?} fds {:?}\n{}",
        run.threads,
        run.fds,
        seen.iter().rev().find(|l| l.starts_with("fd-targets:")).map_or("", String::as_str)
    );
    assert!(test_started.elapsed() < Duration::from_secs(120), "{:?}", test_started.elapsed());
}

#[test]
fn under_valgrind_the_module_makes_no_invalid_access_and_no_definite_leak() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    require_root();
    ensure_user(PUSH_USER, false);
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(workspace().join("scripts/valgrind-module.sh"))
        .env("PAM_MFA_BIN_DIR", bin_dir())
        .env("PUSH_USER", PUSH_USER)
        .output()
        .unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    println!("valgrind test: {:.1} s", started.elapsed().as_secs_f64());
    assert!(out.status.success(), "valgrind-module.sh: {}\n{text}", out.status);
    assert!(text.contains("ERROR SUMMARY"), "{text}");
}
