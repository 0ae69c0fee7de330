//! Drives real libpam the way sshd or sudo does, for the tests:
//!
//! ```text
//! pam-harness --confdir DIR --service NAME --user USER [--answer TEXT]...
//!             [--rhost H] [--tty T] [--repeat N]
//! ```
//!
//! Starts a PAM transaction with `pam_start_confdir`, so the service file
//! comes from DIR instead of /etc/pam.d, answers prompts with the given
//! answers in order, and prints one line per event (`prompt: …`, `info: …`,
//! `error: …`) and `result: NAME` per authentication, plus the process's
//! thread and file descriptor counts before and after (`threads:` / `fds:`),
//! so that tests can check that the module leaves nothing behind.
//! `--then PROGRAM ARGS...` (last): after a successful authentication, open
//! the PAM session, run PROGRAM in it and wait for it, close the session
//! (`open_session: NAME`, `close_session: NAME`), as sshd does; PROGRAM's
//! exit status becomes pam-harness's (125 when it never ran).
//!
//! ```text
//! pam-harness --confdir DIR --service NAME --users-file PATH [--rhost H] [--tty T]
//! ```
//!
//! A long-lived process: one authentication per line of PATH, in order, in
//! this one process. A line is `USER [ANSWER [SERVICE]]` (`-` as ANSWER: no
//! answer; SERVICE defaults to `--service`; blank lines and `#` comments are
//! skipped). Each attempt prints `attempt: N USER SERVICE` before it starts
//! and `result: NAME` when it ends; the thread and descriptor counts are
//! printed before the first, after the first (`threads-after-first:`,
//! `fds-after-first:`) and after the last attempt.

use std::collections::VecDeque;
use std::ffi::{c_int, CStr, CString};
use std::process::ExitCode;

use pam_mfa_tests::libpam::{self, name, Conversation};

/// The exit status of the `--then` program: pam-harness's own, when given
/// (-1 until it ran: the authentication failed).
static THEN_STATUS: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// This process's peak resident memory (VmHWM) in KiB: what the modules
/// of the stack added to a PAM application, for the benchmark.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// What the open descriptors point to, for diagnosing a leak.
fn fd_targets() -> String {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return String::new();
    };
    let mut targets: Vec<String> = dir
        .flatten()
        .map(|e| {
            let target = std::fs::read_link(e.path()).unwrap_or_default();
            format!("{}={}", e.file_name().to_string_lossy(), target.display())
        })
        .collect();
    targets.sort();
    targets.join(" ")
}

/// One authentication of the run: who, through which service, answering what.
struct Attempt {
    user: CString,
    service: CString,
    answers: Option<VecDeque<CString>>,
}

/// Reads a `--users-file`: `USER [ANSWER [SERVICE]]` per line.
fn read_plan(path: &str, service: &CString) -> Result<Vec<Attempt>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut plan = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() > 3 {
            return Err(format!("{path}:{}: more than USER ANSWER SERVICE", number + 1));
        }
        let cstr = |s: &str| CString::new(s).map_err(|e| format!("{path}:{}: {e}", number + 1));
        let answers = match fields.get(1) {
            Some(&"-") | None => VecDeque::new(),
            Some(answer) => VecDeque::from([cstr(answer)?]),
        };
        plan.push(Attempt {
            user: cstr(fields[0])?,
            service: match fields.get(2) {
                Some(name) => cstr(name)?,
                None => service.clone(),
            },
            answers: Some(answers),
        });
    }
    Ok(plan)
}

/// One authentication, printing its result and time; None if start failed.
fn authenticate_once(
    attempt: &Attempt,
    confdir: &CStr,
    conversation: &Conversation,
    rhost: Option<&CString>,
    tty: Option<&CString>,
    then: &[String],
) -> Option<c_int> {
    let started = std::time::Instant::now();
    let mut run_then = || {
        let Some((program, args)) = then.split_first() else { return };
        let code = match std::process::Command::new(program).args(args).status() {
            Ok(status) => status.code().unwrap_or(-1),
            Err(e) => {
                println!("then: cannot run {program}: {e}");
                127
            }
        };
        println!("then: {code}");
        THEN_STATUS.store(code, std::sync::atomic::Ordering::Relaxed);
    };
    let session: Option<&mut dyn FnMut()> =
        if then.is_empty() { None } else { Some(&mut run_then) };
    let result = libpam::authenticate(
        &attempt.service,
        &attempt.user,
        confdir,
        conversation,
        rhost.map(CString::as_c_str),
        tty.map(CString::as_c_str),
        session,
    );
    match result {
        Ok(rc) => {
            println!("result: {}", name(rc));
            println!("elapsed_ms: {}", started.elapsed().as_millis());
            Some(rc)
        }
        Err(rc) => {
            println!("result: start failed {}", name(rc));
            None
        }
    }
}

fn main() -> ExitCode {
    let mut confdir = None;
    let mut service = None;
    let mut user = None;
    let mut answers = VecDeque::new();
    let mut rhost = None;
    let mut tty = None;
    let mut repeat = 1usize;
    let mut users_file = None;
    let mut then = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--then" {
            then = args.by_ref().collect();
            break;
        }
        let Some(value) = args.next() else {
            eprintln!("pam-harness: {flag} needs a value");
            return ExitCode::from(2);
        };
        match flag.as_str() {
            "--confdir" => confdir = Some(value),
            "--service" => service = Some(value),
            "--user" => user = Some(value),
            "--answer" => answers.push_back(value),
            "--rhost" => rhost = Some(value),
            "--tty" => tty = Some(value),
            "--repeat" => repeat = value.parse().unwrap_or(1),
            "--users-file" => users_file = Some(value),
            _ => {
                eprintln!("pam-harness: unknown flag {flag}");
                return ExitCode::from(2);
            }
        }
    }
    let cstr = |s: String| CString::new(s).unwrap_or_default();
    let (Some(confdir), Some(service)) = (confdir, service) else {
        eprintln!("usage: pam-harness --confdir DIR --service NAME --user USER [--answer TEXT]...");
        eprintln!("       pam-harness --confdir DIR --service NAME --users-file PATH");
        return ExitCode::from(2);
    };
    let (confdir, service) = (cstr(confdir), cstr(service));
    let plan = match (users_file, user) {
        (Some(path), None) => match read_plan(&path, &service) {
            Ok(plan) => plan,
            Err(e) => {
                eprintln!("pam-harness: {e}");
                return ExitCode::from(2);
            }
        },
        (None, Some(user)) => {
            // The same user `repeat` times; the answers are shared, in order.
            let user = cstr(user);
            (0..repeat)
                .map(|_| Attempt { user: user.clone(), service: service.clone(), answers: None })
                .collect()
        }
        _ => {
            eprintln!("pam-harness: give either --user or --users-file");
            return ExitCode::from(2);
        }
    };
    let long_lived = plan.iter().any(|a| a.answers.is_some());
    let conversation = Conversation::new(answers.into_iter().map(cstr).collect(), true);
    let rhost = rhost.map(cstr);
    let tty = tty.map(cstr);

    println!("threads: {}", count("/proc/self/task"));
    println!("fds: {}", count("/proc/self/fd"));
    for (i, attempt) in plan.iter().enumerate() {
        if let Some(own) = &attempt.answers {
            *conversation.answers.borrow_mut() = own.clone();
            println!(
                "attempt: {} {} {}",
                i + 1,
                attempt.user.to_string_lossy(),
                attempt.service.to_string_lossy()
            );
        }
        if authenticate_once(attempt, &confdir, &conversation, rhost.as_ref(), tty.as_ref(), &then)
            .is_none()
        {
            return ExitCode::from(1);
        }
        if long_lived && i == 0 {
            println!("threads-after-first: {}", count("/proc/self/task"));
            println!("fds-after-first: {}", count("/proc/self/fd"));
        }
    }
    println!("threads: {}", count("/proc/self/task"));
    println!("fds: {}", count("/proc/self/fd"));
    println!("fd-targets: {}", fd_targets());
    println!("peak-rss-kib: {}", peak_rss_kib());
    if !then.is_empty() {
        let status = THEN_STATUS.load(std::sync::atomic::Ordering::Relaxed);
        return ExitCode::from(u8::try_from(status).unwrap_or(125));
    }
    ExitCode::SUCCESS
}
