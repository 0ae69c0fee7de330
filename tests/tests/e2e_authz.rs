//! The authorization matrix, over the real system bus with the packaged
//! policy: every D-Bus method of mfad called as root, as the user itself
//! and as another ordinary user (real accounts; `dbus-send` under
//! `setpriv`). The table below is the documentation: DESIGN.md rule 2 says
//! a caller may act only on its own user unless it is root, and verifying
//! for another user is never open to ordinary users.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use pam_mfa_client::Client;
use pam_mfa_tests::system::{ensure_user, require_root, Scratch, SystemBus, SystemMfad};

const ALICE: &str = "mfa-authz-alice";
const BOB: &str = "mfa-authz-bob";

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Root,
    /// Alice, about Alice.
    Own,
    /// Bob, about Alice.
    Other,
}

/// What must come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A reply.
    Ok,
    /// The bus policy refuses before mfad sees the call.
    Bus,
    /// mfad answers with io.github.pam_mfa.Error.<name>.
    Err(&'static str),
}

use Expect::{Bus, Err, Ok};

/// (interface.method, dbus-send arguments, root, own, other). `@ID` is a
/// pending challenge of Alice's, made by a connection none of the callers
/// own; `@GA` a google-authenticator file.
const MATRIX: &[(&str, &str, Expect, Expect, Expect)] = &[
    // The PAM side and administration: root only, by policy (and by mfad).
    ("Pam1.IsEnrolled", "string:@A", Ok, Bus, Bus),
    ("Pam1.VerifyCode", "string:@A string:000000 dict:string:string:service,authz", Ok, Bus, Bus),
    ("Pam1.HasApprover", "string:@A", Ok, Bus, Bus),
    ("Pam1.IsRemembered", "string:@A dict:string:string:rhost,192.0.2.7", Ok, Bus, Bus),
    (
        "Pam1.Covered",
        "string:@A array:string:staff array:string:nobody array:string:nogroup",
        Ok,
        Bus,
        Bus,
    ),
    // Alice's request is waiting: a new one is refused, never ends it.
    (
        "Pam1.CreateChallenge",
        "string:@A dict:string:string:service,authz",
        Err("RequestPending"),
        Bus,
        Bus,
    ),
    // No second factor succeeded on root's dbus-send connection; no such token.
    ("Pam1.GrantSession", "string:@A", Err("AccessDenied"), Bus, Bus),
    (
        "Pam1.OpenSession",
        "string:@A string:0123456789abcdef dict:string:string:service,authz",
        Err("AccessDenied"),
        Bus,
        Bus,
    ),
    ("Pam1.CloseSession", "string:@A", Ok, Bus, Bus),
    ("Admin1.UnblockPush", "string:@A", Ok, Bus, Bus),
    ("Pam1.WaitChallenge", "string:@ID uint32:1", Err("NoSuchChallenge"), Bus, Bus),
    ("Pam1.CancelChallenge", "string:@ID", Err("NoSuchChallenge"), Bus, Bus),
    ("Admin1.ListUsers", "", Ok, Bus, Bus),
    ("Admin1.Reset", "string:nobody-enrolled-here", Ok, Bus, Bus),
    // Self-service: anyone for themselves, root for anyone.
    ("Enroll1.Status", "string:@A", Ok, Ok, Err("AccessDenied")),
    ("Enroll1.ForgetDevices", "string:@A", Ok, Ok, Err("AccessDenied")),
    (
        "Enroll1.Begin",
        "string:@A boolean:false string:",
        Err("AlreadyEnrolled"),
        Err("AlreadyEnrolled"),
        Err("AccessDenied"),
    ),
    (
        "Enroll1.Confirm",
        "string:@A string:000000",
        Err("NoPendingEnrollment"),
        Err("NoPendingEnrollment"),
        Err("AccessDenied"),
    ),
    (
        "Enroll1.NewRecoveryCodes",
        "string:@A string:000000",
        Ok,
        Err("ProofRefused"),
        Err("AccessDenied"),
    ),
    (
        "Enroll1.ImportGoogleAuthenticator",
        "string:@A string:@GA boolean:false string:",
        Err("AlreadyEnrolled"),
        Err("AlreadyEnrolled"),
        Err("AccessDenied"),
    ),
    // Approvers: each for the caller's own user; nobody sees or answers
    // another user's request (root neither, unless allow_root_approval).
    ("Approver1.Register", "", Ok, Ok, Ok),
    ("Approver1.Pending", "", Ok, Ok, Ok),
    // Alice's own test waits while her real request does.
    ("Approver1.StartTest", "", Ok, Err("RequestPending"), Ok),
    (
        "Approver1.WaitTest",
        "string:@ID uint32:1",
        Err("NoSuchChallenge"),
        Err("NoSuchChallenge"),
        Err("NoSuchChallenge"),
    ),
    (
        "Approver1.Approve",
        "string:@ID uint32:0",
        Err("NoSuchChallenge"),
        Err("SameSession"),
        Err("NoSuchChallenge"),
    ),
    ("Approver1.Deny", "string:@ID", Err("NoSuchChallenge"), Ok, Err("NoSuchChallenge")),
    ("Approver1.Report", "string:@ID", Err("NoSuchChallenge"), Ok, Err("NoSuchChallenge")),
];

const GA_FILE: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n";

fn call(caller: Caller, method: &str, args: &str, id: &str) -> (bool, String, String) {
    let mut cmd = match caller {
        Caller::Root => Command::new("dbus-send"),
        Caller::Own | Caller::Other => {
            let user = if caller == Caller::Own { ALICE } else { BOB };
            let mut cmd = Command::new("setpriv");
            cmd.args([&format!("--reuid={user}"), &format!("--regid={user}"), "--init-groups"])
                .arg("dbus-send");
            cmd
        }
    };
    cmd.args(["--system", "--print-reply", "--reply-timeout=5000", "--dest=io.github.pam_mfa"])
        .args(["/io/github/pam_mfa", &format!("io.github.pam_mfa.{method}")]);
    for arg in args.split(' ').filter(|a| !a.is_empty()) {
        cmd.arg(arg.replace("@A", ALICE).replace("@ID", id).replace("@GA", GA_FILE));
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn matches(expect: Expect, (ok, _, err): &(bool, String, String)) -> bool {
    match expect {
        Expect::Ok => *ok,
        Expect::Bus => !ok && err.contains("org.freedesktop.DBus.Error.AccessDenied"),
        Expect::Err(name) => !ok && err.contains(&format!("io.github.pam_mfa.Error.{name}")),
    }
}

#[test]
fn every_method_answers_root_the_user_and_another_user_as_rule_2_says() {
    require_root();
    let _bus = SystemBus::ensure();
    let scratch = Scratch::new();
    ensure_user(ALICE, false);
    ensure_user(BOB, false);
    // A request per call: more than the flood limit allows by default.
    let mfad = SystemMfad::start(&scratch, &format!("[push]\n{}", pam_mfa_tests::PUSH_FOR_BENCHES));
    let app = mfad.enroll(&scratch, ALICE);
    let config = pam_mfa_config::schema::Config::load(&mfad.config).unwrap();
    // A pending request of Alice's, made by a connection of the test's own.
    let mut requester = Client::new(
        config.bus.address.as_str(),
        config.bus.service_user.as_str(),
        Duration::from_secs(5),
    )
    .unwrap();
    let context = HashMap::from([("service".to_string(), "authz-test".to_string())]);

    let mut failures = Vec::new();
    let mut replies = String::new();
    for (method, args, root, own, other) in MATRIX {
        for (caller, expect) in [(Caller::Root, root), (Caller::Own, own), (Caller::Other, other)] {
            // A fresh request for each call: answers and denials end them.
            let (id, number, _) = requester.create_challenge(ALICE, &context).unwrap();
            let reply = call(caller, method, args, &id);
            if !matches(*expect, &reply) {
                failures.push(format!(
                    "{method} as {caller:?}: expected {expect:?}, got ok={} {}{}",
                    reply.0,
                    reply.1.trim(),
                    reply.2.trim()
                ));
            }
            if method.ends_with("Pending") {
                let listed = reply.1.contains(&id);
                let should = caller == Caller::Own;
                if listed != should {
                    failures.push(format!("Pending as {caller:?} lists Alice's request: {listed}"));
                }
                if reply.1.contains(&format!("uint32 {number}\n")) {
                    failures.push(format!("Pending as {caller:?} shows the number"));
                }
            }
            replies.push_str(&reply.1);
            replies.push_str(&reply.2);
            // Make room for the next request: end this one, and lift the
            // block a "not me" report puts on Alice's requests.
            requester.cancel_challenge(&id).unwrap();
            requester.unblock_push(ALICE).unwrap();
        }
    }
    assert!(failures.is_empty(), "authorization matrix:\n{}", failures.join("\n"));
    // No reply carried Alice's secret: it never leaves mfad after enrollment.
    assert!(!replies.contains(&app.secret), "a reply contained Alice's TOTP secret");
    assert!(!mfad.log_text().contains(&app.secret), "the log contained Alice's TOTP secret");
    println!("authorization matrix: {} methods x 3 callers as documented", MATRIX.len());
}
