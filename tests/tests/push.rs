//! Number matching on a private bus with a real mfad, real libpam (the
//! requester, pam-harness in mode=push) and real `mfa-approve` processes
//! run as real test accounts. Login sessions are made the way pam_loginuid
//! makes them: root writes /proc/self/loginuid, the kernel gives a new
//! audit session id.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use pam_mfa_tests::system::{ensure_user, require_root};
use pam_mfa_tests::{in_new_session, in_this_session, Bus, Mfad, PamService};

const ALICE: &str = "mfa-push-alice";
const BOB: &str = "mfa-push-bob";

fn uid(user: &str) -> u32 {
    nix::unistd::User::from_name(user).unwrap().unwrap().uid.as_raw()
}

struct Setup {
    _bus: Bus,
    mfad: Mfad,
    pam: PamService,
    /// Alice's unused recovery codes: each opens one login session that
    /// passed a second factor.
    proofs: std::cell::RefCell<Vec<String>>,
    /// Alice's authenticator app.
    app: pam_mfa_tests::Otpauth,
}

/// Where an approver runs.
#[derive(Clone, Copy)]
enum Session {
    /// A new login session that passed a second factor (the default rule's).
    Verified,
    /// A new login session that did not (a cron job, a key-only login).
    Unverified,
    /// The test's own session, which is the requester's.
    Same,
}

fn setup(extra: &str) -> Setup {
    require_root();
    ensure_user(ALICE, false);
    ensure_user(BOB, false);
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, extra);
    let (app, proofs) = mfad.enroll_with_recovery(ALICE);
    let pam = PamService::new(&format!("mode=push config={}", mfad.config.display()));
    Setup { _bus: bus, mfad, pam, proofs: std::cell::RefCell::new(proofs), app }
}

/// Runs `mfa-approve ARGS` as `user` with `input`, in `session`.
fn approver(s: &Setup, user: &str, session: Session, args: &[&str], input: &str) -> Output {
    let program = s.mfad.approve_bin();
    let cmd = match session {
        Session::Verified => {
            let proof = s.proofs.borrow_mut().pop().expect("out of recovery codes");
            s.mfad.in_verified_session(user, &proof, &program)
        }
        Session::Unverified => in_new_session(uid(user), Some(user), &program),
        Session::Same => in_this_session(user, &program),
    };
    s.mfad.run_client(cmd, args, input)
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn the_right_number_from_another_session_signs_in_promptly() {
    let s = setup("");
    let mut request = s.pam.start_push(ALICE, None);
    let out = approver(&s, ALICE, Session::Verified, &["--once"], &format!("{}\n", request.number));
    let approved_at = Instant::now();
    assert!(out.status.success(), "{}", text(&out));
    let screen = text(&out);
    assert!(screen.contains("Sign-in request for mfa-push-alice"), "{screen}");
    assert!(screen.contains("service:     mfa-test"), "{screen}");
    assert!(screen.contains("from:        192.0.2.7"), "{screen}");
    // What is approved: the command line of the process asking (for sudo,
    // the sudo command; here, the harness).
    assert!(
        screen.contains("command:     ") && screen.contains("pam-harness --confdir"),
        "{screen}"
    );
    assert!(s.mfad.log_text().contains("command=\""), "the log records it");
    // (The line saying how many seconds are left has a number of its own,
    // which may happen to be the same.)
    let told: String =
        screen.lines().filter(|l| !l.contains("expires in:")).collect::<Vec<_>>().join("\n");
    assert!(!told.contains(&format!(" {} ", request.number)), "the approver never sees the number");
    let (line, at) = request.result_line().expect("no result");
    assert_eq!(line, "result: PAM_SUCCESS");
    // Woken by mfad, not by the 60-second expiry or a polling interval.
    assert!(at.duration_since(approved_at) < Duration::from_secs(2), "{:?}", at - approved_at);
    assert!(s.mfad.log_text().contains("result=\"approved\""));
}

#[test]
fn a_wrong_number_ends_the_request_with_its_reason() {
    let s = setup("");
    let request = s.pam.start_push(ALICE, None);
    let wrong = if request.number == 10 { 11 } else { request.number - 1 };
    let out = approver(&s, ALICE, Session::Verified, &["--once"], &format!("{wrong}\n"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("wrong number"), "{}", text(&out));
    let run = request.finish();
    assert_eq!(run.result(), "PAM_AUTH_ERR", "{}", run.text);
    assert!(run.errors.iter().any(|e| e.contains("A wrong number was typed")), "{}", run.text);
    assert!(s.mfad.log_text().contains("result=\"wrong-number\""));
}

#[test]
fn a_denial_ends_the_request_with_its_reason() {
    let s = setup("");
    let request = s.pam.start_push(ALICE, None);
    let out = approver(&s, ALICE, Session::Verified, &["--once"], "d\n");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let run = request.finish();
    assert_eq!(run.result(), "PAM_AUTH_ERR", "{}", run.text);
    assert!(run.errors.iter().any(|e| e.contains("denied")), "{}", run.text);
    assert!(s.mfad.log_text().contains("result=\"denied\""));
}

#[test]
fn no_answer_expires_with_its_reason() {
    let s = setup("[push]\ntimeout_seconds = 5\n");
    let started = Instant::now();
    let run = s.pam.start_push(ALICE, None).finish();
    assert_eq!(run.result(), "PAM_AUTH_ERR", "{}", run.text);
    assert!(run.errors.iter().any(|e| e.contains("No approval came in time")), "{}", run.text);
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(4) && took < Duration::from_secs(15), "{took:?}");
}

#[test]
fn a_second_request_while_one_waits_is_refused_and_a_code_is_asked_instead() {
    let s = setup("");
    let first = s.pam.start_push(ALICE, None);
    let second =
        PamService::new(&format!("mode=push max_prompts=1 config={}", s.mfad.config.display()));
    let run = second.authenticate(ALICE, &["000000"]);
    assert!(
        run.errors.contains(
            &"Another sign-in request is waiting for approval: type a code instead.".into()
        ),
        "{}",
        run.text
    );
    assert_eq!(run.prompts, vec!["Verification code: "], "{}", run.text);
    assert_eq!(run.result(), "PAM_AUTH_ERR", "the made-up code is wrong: {}", run.text);
    assert!(s.mfad.log_text().contains("challenge-refused-pending"), "{}", s.mfad.log_text());
    // The waiting request was not ended by the newcomer.
    let out = approver(&s, ALICE, Session::Verified, &["--once"], &format!("{}\n", first.number));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(first.finish().result(), "PAM_SUCCESS");
}

#[test]
fn a_flood_of_requests_gets_three_then_one_per_twenty_seconds() {
    // 10 requests in a row, each given up at once (the prompt over SSH is
    // answered with a made-up code), as a loop of killed sudo calls makes.
    let s = setup("[limits]\nmax_failures = 100\n");
    let ssh = PamService::named(
        "sshd-flood",
        &[&format!(
            "auth required {} mode=push max_prompts=1 config={}",
            pam_mfa_tests::module().display(),
            s.mfad.config.display()
        )],
    );
    let runs: Vec<_> = (0..10).map(|_| ssh.authenticate(ALICE, &["000000"])).collect();
    let made = runs.iter().filter(|r| r.prompts.iter().any(|p| p.contains("mfa-approve"))).count();
    let refused = runs
        .iter()
        .filter(|r| r.errors.iter().any(|e| e.starts_with("Too many sign-in requests just now")))
        .count();
    assert_eq!(
        (made, refused),
        (3, 7),
        "{}",
        runs.iter().map(|r| r.text.as_str()).collect::<String>()
    );
    let log = s.mfad.log_text();
    assert_eq!(log.matches("challenge-created").count(), 3, "{log}");
    assert_eq!(log.matches("challenge-refused-too-many").count(), 7, "{log}");
    // Each refused one was still asked for a code.
    assert!(runs.iter().all(|r| r.prompts.len() == 1 && r.result() == "PAM_AUTH_ERR"));
}

#[test]
fn not_me_denies_logs_the_request_and_blocks_push_until_a_code_login() {
    // Four requests in this test: more than the default burst.
    let s = setup("[push]\nrequest_burst = 10\n");
    let app = &s.app;
    let request = s.pam.start_push(ALICE, None);
    let out = approver(&s, ALICE, Session::Verified, &["--once"], "r\n");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("Reported: the request was denied"), "{}", text(&out));
    let run = request.finish();
    assert_eq!(run.result(), "PAM_AUTH_ERR", "{}", run.text);
    assert!(run.errors.iter().any(|e| e.contains("was denied in your approver")), "{}", run.text);
    let log = s.mfad.log_text();
    let report = log.lines().find(|l| l.contains("suspicious-request-reported")).unwrap_or("");
    for field in [
        "WARN",
        "user=mfa-push-alice",
        "service=\"mfa-test\"",
        "rhost=\"192.0.2.7\"",
        "tty=\"/dev/pts/7\"",
        "command=",
        "reported_by=uid ",
    ] {
        assert!(report.contains(field), "{field} missing in {report:?}");
    }

    // Blocked: the next push is not made, a code is asked instead.
    let push =
        PamService::new(&format!("mode=push max_prompts=1 config={}", s.mfad.config.display()));
    let codes = app.codes_from(pam_mfa_tests::now(), 2);
    let run = push.authenticate(ALICE, &[&codes[0]]);
    assert!(
        run.errors.iter().any(|e| e.starts_with("Sign-in requests are blocked")),
        "{}",
        run.text
    );
    assert_eq!(run.result(), "PAM_SUCCESS", "a code still works: {}", run.text);
    assert!(s.mfad.log_text().contains("push-unblocked-by-code-login"));
    // That code login lifted the block: push works again.
    let request = s.pam.start_push(ALICE, None);
    let out = approver(&s, ALICE, Session::Verified, &["--once"], &format!("{}\n", request.number));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(request.finish().result(), "PAM_SUCCESS");

    // Reported again; this time an administrator lifts the block.
    let request = s.pam.start_push(ALICE, None);
    approver(&s, ALICE, Session::Verified, &["--once"], "report\n");
    request.finish();
    let out = s.mfad.enroll_cmd(&["--unblock-push", ALICE]);
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("sign-in requests (number matching) work again"));
    let out = s.mfad.enroll_cmd(&["--unblock-push", ALICE]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("were not blocked"));
    let request = s.pam.start_push(ALICE, None);
    assert!(request.number >= 10);
}

#[test]
fn another_users_approver_sees_nothing_and_cannot_approve() {
    let s = setup("[push]\ntimeout_seconds = 10\n");
    let request = s.pam.start_push(ALICE, None);
    let theirs = approver(&s, BOB, Session::Unverified, &["--list", "--json"], "");
    assert!(text(&theirs).contains("{\"pending\":[]}"), "{}", text(&theirs));
    let mine = approver(&s, ALICE, Session::Unverified, &["--list", "--json"], "");
    let listed: serde_json::Value = serde_json::from_slice(&mine.stdout).unwrap();
    let id = listed["pending"][0]["id"].as_str().unwrap().to_string();
    assert!(!String::from_utf8_lossy(&mine.stdout).contains(&format!(":{}", request.number)));
    // Bob calls Approve with Alice's id and the right number, over the bus.
    let bus_address = s.mfad.log_text();
    let address = bus_address
        .split("bus=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    let out = in_new_session(uid(BOB), Some(BOB), std::path::Path::new("/usr/bin/dbus-send"))
        .args([&format!("--bus={address}"), "--print-reply", "--dest=io.github.pam_mfa"])
        .args(["/io/github/pam_mfa", "io.github.pam_mfa.Approver1.Approve"])
        .args([&format!("string:{id}"), &format!("uint32:{}", request.number)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("io.github.pam_mfa.Error.NoSuchChallenge"), "{}", text(&out));
    // Alice's request is still pending and can still be approved by her.
    let out = approver(&s, ALICE, Session::Verified, &["--once"], &format!("{}\n", request.number));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(request.finish().result(), "PAM_SUCCESS");
}

#[test]
fn the_requesting_session_cannot_approve_by_default() {
    let s = setup("[push]\ntimeout_seconds = 6\n");
    // The request and the approver share the test's own login session.
    let request = s.pam.start_push(ALICE, None);
    let out = approver(&s, ALICE, Session::Same, &["--once"], &format!("{}\n", request.number));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("another login session"), "{}", text(&out));
    assert!(s.mfad.log_text().contains("SameSession"), "{}", s.mfad.log_text());
    let run = request.finish();
    assert_eq!(run.result(), "PAM_AUTH_ERR", "{}", run.text);
    assert!(run.errors.iter().any(|e| e.contains("No approval came in time")), "{}", run.text);
}

#[test]
fn approver_session_any_allows_the_same_session() {
    let s = setup("[push]\napprover_session = \"any\"\n");
    let request = s.pam.start_push(ALICE, None);
    let out = approver(&s, ALICE, Session::Same, &["--once"], &format!("{}\n", request.number));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(request.finish().result(), "PAM_SUCCESS");
}

#[test]
fn the_setup_test_proves_the_approver_end_to_end() {
    let s = setup("");
    let mut test = in_new_session(uid(ALICE), Some(ALICE), &s.mfad.approve_bin())
        .arg("--config")
        .arg(&s.mfad.config)
        .arg("--test")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(test.stdout.take().unwrap());
    let mut number = None;
    let mut shown = String::new();
    for _ in 0..10 {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        shown.push_str(&line);
        if let Ok(n) = line.trim().parse::<u32>() {
            number = Some(n);
            break;
        }
    }
    let number = number.unwrap_or_else(|| panic!("no number shown: {shown}"));
    let out = approver(&s, ALICE, Session::Verified, &["--once"], &format!("{number}\n"));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("mfa-approve --test"), "{}", text(&out));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(test.wait().unwrap().success(), "{rest}");
    assert!(rest.contains("It works"), "{rest}");
}

#[test]
fn auto_mode_pushes_only_when_an_approver_that_may_approve_is_online() {
    let s = setup("");
    let auto =
        PamService::new(&format!("mode=auto max_prompts=1 config={}", s.mfad.config.display()));
    let run = auto.authenticate(ALICE, &["000000"]);
    assert_eq!(run.prompts, vec!["Verification code: "], "no approver: a code is asked");

    // An agent whose session passed no second factor (a systemd --user
    // service, say) is told of requests but cannot approve: still a code,
    // rather than a wait for an approval nobody online can give.
    let (mut bystander, mut bystander_out) =
        agent(in_new_session(uid(ALICE), Some(ALICE), &s.mfad.approve_bin()), &s);
    let run = auto.authenticate(ALICE, &["000000"]);
    assert_eq!(run.prompts, vec!["Verification code: "], "{}", run.text);

    // An agent in a login that passed a second factor: push.
    let proof = s.proofs.borrow_mut().pop().unwrap();
    let (mut able, mut able_out) =
        agent(s.mfad.in_verified_session(ALICE, &proof, &s.mfad.approve_bin()), &s);
    let request = auto.start_push(ALICE, None);
    for out in [&mut bystander_out, &mut able_out] {
        let mut told = String::new();
        std::io::BufRead::read_line(out, &mut told).unwrap();
        assert!(told.contains("Sign-in request for mfa-push-alice"), "each agent is told: {told}");
    }
    let out = approver(&s, ALICE, Session::Verified, &["--once"], &format!("{}\n", request.number));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(request.finish().result(), "PAM_SUCCESS");
    for child in [&mut bystander, &mut able] {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// `mfa-approve --agent` run by `cmd`, once it says it is online.
#[allow(clippy::zombie_processes)] // the caller kills and waits for the child it gets
fn agent(
    mut cmd: std::process::Command,
    s: &Setup,
) -> (std::process::Child, std::io::BufReader<std::process::ChildStdout>) {
    let mut child = cmd
        .arg("--config")
        .arg(&s.mfad.config)
        .arg("--agent")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let read = std::io::BufRead::read_line(&mut stdout, &mut line).unwrap_or(0);
        seen.push_str(&line);
        if line.contains("agent online") {
            return (child, stdout);
        }
        if read == 0 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent ended before it was online: {seen}");
        }
    }
}

#[test]
fn over_ssh_the_number_is_in_the_prompt_and_enter_waits_for_the_approval() {
    let s = setup("");
    let module = pam_mfa_tests::module();
    let ssh = PamService::named(
        "sshd-push-test",
        &[&format!(
            "auth required {} mode=push config={}",
            module.display(),
            s.mfad.config.display()
        )],
    );
    let request = ssh.start_push(ALICE, None);
    let out = approver(&s, ALICE, Session::Verified, &["--once"], &format!("{}\n", request.number));
    assert!(out.status.success(), "{}", text(&out));
    let run = request.finish();
    assert_eq!(run.result(), "PAM_SUCCESS", "{}", run.text);
    assert!(run.prompts[0].contains("then press Enter here, or type a code"), "{}", run.text);
}

#[test]
fn the_agent_raises_a_desktop_notification_on_the_session_bus() {
    let s = setup("");
    // Alice's desktop session bus, with a stand-in notification service.
    let desktop = tempfile::tempdir().unwrap();
    std::process::Command::new("chown")
        .arg(format!("{ALICE}:"))
        .arg(desktop.path())
        .status()
        .unwrap();
    let socket = desktop.path().join("session.sock");
    let address = format!("unix:path={}", socket.display());
    let mut session_bus = in_this_session(ALICE, std::path::Path::new("/usr/bin/dbus-daemon"))
        .args(["--session", "--nofork", "--nopidfile", &format!("--address={address}")])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(pam_mfa_tests::wait_for(Duration::from_secs(10), || socket.exists()));
    let sink_bin = s.mfad.dir.path().join("notify-sink");
    std::fs::copy(pam_mfa_tests::bin("notify-sink"), &sink_bin).unwrap();
    let mut sink =
        in_this_session(ALICE, &sink_bin).arg(&address).stdout(Stdio::piped()).spawn().unwrap();
    let mut sink_out = std::io::BufReader::new(sink.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut sink_out, &mut line).unwrap();
    assert_eq!(line.trim(), "ready");

    let mut agent = in_new_session(uid(ALICE), Some(ALICE), &s.mfad.approve_bin())
        .arg("--config")
        .arg(&s.mfad.config)
        .arg("--agent")
        .env("DBUS_SESSION_BUS_ADDRESS", &address)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut agent_out = std::io::BufReader::new(agent.stdout.take().unwrap());
    line.clear();
    std::io::BufRead::read_line(&mut agent_out, &mut line).unwrap();
    assert!(line.contains("agent online"), "{line}");

    let request = s.pam.start_push(ALICE, None);
    line.clear();
    std::io::BufRead::read_line(&mut sink_out, &mut line).unwrap();
    assert!(line.starts_with("notify: Sign-in request"), "{line}");
    assert!(line.contains("Sign-in request for mfa-push-alice"), "{line}");
    assert!(line.contains("service:     mfa-test"), "{line}");
    assert!(!line.contains(&format!(" {} ", request.number)), "no number in it: {line}");
    for child in [&mut agent, &mut sink, &mut session_bus] {
        let _ = child.kill();
        let _ = child.wait();
    }
    drop(request);
}

#[test]
fn the_command_and_remote_host_can_be_kept_from_the_approver() {
    let s = setup("[push]\nshow_command = false\nshow_remote_host = false\n");
    let request = s.pam.start_push(ALICE, None);
    let out = approver(&s, ALICE, Session::Verified, &["--once"], &format!("{}\n", request.number));
    assert!(out.status.success(), "{}", text(&out));
    let screen = text(&out);
    assert!(screen.contains("service:     mfa-test"), "{screen}");
    assert!(!screen.contains("command:") && !screen.contains("from:"), "{screen}");
    assert_eq!(request.finish().result(), "PAM_SUCCESS");
}

#[test]
fn a_login_session_that_never_passed_a_second_factor_cannot_approve() {
    let s = setup("[push]\ntimeout_seconds = 6\n");
    // A new login session of Alice's that no second factor opened: what a
    // cron job or a key-only SSH login gets.
    let request = s.pam.start_push(ALICE, None);
    let out =
        approver(&s, ALICE, Session::Unverified, &["--once"], &format!("{}\n", request.number));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("did not pass a second factor"), "{}", text(&out));
    assert!(s.mfad.log_text().contains("NotVerified"), "{}", s.mfad.log_text());
    let run = request.finish();
    assert_eq!(run.result(), "PAM_AUTH_ERR", "{}", run.text);
    assert!(run.errors.iter().any(|e| e.contains("No approval came in time")), "{}", run.text);
}

#[test]
fn a_session_approves_nothing_once_it_has_closed() {
    let s = setup("[push]\ntimeout_seconds = 8\n");
    let request = s.pam.start_push(ALICE, None);
    // A verified session that leaves an approver behind when it ends (as
    // nohup or a tmux server would): the session closes at once, the
    // approver answers after.
    let program = std::path::Path::new("/bin/sh");
    let proof = s.proofs.borrow_mut().pop().unwrap();
    let number_file = s.mfad.dir.path().join("number");
    std::fs::write(&number_file, format!("{}\n", request.number)).unwrap();
    std::fs::set_permissions(&number_file, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .unwrap();
    let outbox = s.mfad.dir.path().join("outbox");
    std::fs::create_dir(&outbox).unwrap();
    std::os::unix::fs::chown(&outbox, Some(uid(ALICE)), None).unwrap();
    let left_behind = outbox.join("left-behind.out");
    let script = format!(
        "(sleep 1; {} --config {} --once < {} > {} 2>&1) & exit 0",
        s.mfad.approve_bin().display(),
        s.mfad.config.display(),
        number_file.display(),
        left_behind.display()
    );
    let out =
        s.mfad.in_verified_session(ALICE, &proof, program).args(["-c", &script]).output().unwrap();
    let harness = String::from_utf8_lossy(&out.stdout);
    assert!(harness.contains("open_session: PAM_SUCCESS"), "{harness}");
    assert!(harness.contains("close_session: PAM_SUCCESS"), "{harness}");
    let run = request.finish();
    assert_eq!(run.result(), "PAM_AUTH_ERR", "{}", run.text);
    let said = std::fs::read_to_string(&left_behind).unwrap_or_default();
    assert!(said.contains("did not pass a second factor"), "{said}");
    let log = s.mfad.log_text();
    assert!(log.contains("session-verified") && log.contains("session-closed"), "{log}");
}

#[test]
fn approver_session_different_lets_a_session_without_second_factor_approve() {
    let s = setup("[push]\napprover_session = \"different\"\n");
    let request = s.pam.start_push(ALICE, None);
    let out =
        approver(&s, ALICE, Session::Unverified, &["--once"], &format!("{}\n", request.number));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(request.finish().result(), "PAM_SUCCESS");
}
