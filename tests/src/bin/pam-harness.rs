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
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::process::ExitCode;

#[repr(C)]
struct PamHandle {
    _private: [u8; 0],
}

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn = unsafe extern "C" fn(
    c_int,
    *mut *const PamMessage,
    *mut *mut PamResponse,
    *mut c_void,
) -> c_int;

#[repr(C)]
struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

const PAM_TTY: c_int = 3;
const PAM_RHOST: c_int = 4;
const PAM_CONV_ERR: c_int = 19;
const PAM_BUF_ERR: c_int = 5;

#[link(name = "pam")]
extern "C" {
    fn pam_start_confdir(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut PamHandle, status: c_int) -> c_int;
}

struct Answers {
    queue: RefCell<VecDeque<CString>>,
}

/// The conversation: prints each message, answers prompts from the queue.
unsafe extern "C" fn conversation(
    count: c_int,
    messages: *mut *const PamMessage,
    responses: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    let body = || {
        let Ok(n) = usize::try_from(count) else {
            return PAM_CONV_ERR;
        };
        if n == 0 || messages.is_null() || responses.is_null() || appdata.is_null() {
            return PAM_CONV_ERR;
        }
        // SAFETY: appdata is the `Answers` passed to pam_start_confdir, alive
        // for the whole transaction.
        let answers = unsafe { &*appdata.cast::<Answers>() };
        // SAFETY: calloc of n zeroed responses; libpam frees the array and
        // each `resp` with free().
        let out =
            unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) }.cast::<PamResponse>();
        if out.is_null() {
            return PAM_BUF_ERR;
        }
        for i in 0..n {
            // SAFETY: Linux-PAM passes an array of n message pointers.
            let message = unsafe { &**messages.add(i) };
            let text = if message.msg.is_null() {
                String::new()
            } else {
                // SAFETY: libpam's messages are NUL-terminated strings.
                unsafe { CStr::from_ptr(message.msg) }.to_string_lossy().into_owned()
            };
            match message.msg_style {
                1 | 2 => {
                    println!("prompt: {text}");
                    let answer = answers.queue.borrow_mut().pop_front().unwrap_or_default();
                    // SAFETY: strdup copies a valid C string with malloc.
                    let copy = unsafe { libc::strdup(answer.as_ptr()) };
                    // SAFETY: i < n, `out` has n zeroed entries.
                    unsafe { (*out.add(i)).resp = copy };
                }
                3 => println!("error: {text}"),
                _ => println!("info: {text}"),
            }
        }
        // SAFETY: `responses` is a valid out-pointer; ownership passes to libpam.
        unsafe { *responses = out };
        0
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(PAM_CONV_ERR)
}

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
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

const NAMES: [&str; 32] = [
    "PAM_SUCCESS",
    "PAM_OPEN_ERR",
    "PAM_SYMBOL_ERR",
    "PAM_SERVICE_ERR",
    "PAM_SYSTEM_ERR",
    "PAM_BUF_ERR",
    "PAM_PERM_DENIED",
    "PAM_AUTH_ERR",
    "PAM_CRED_INSUFFICIENT",
    "PAM_AUTHINFO_UNAVAIL",
    "PAM_USER_UNKNOWN",
    "PAM_MAXTRIES",
    "PAM_NEW_AUTHTOK_REQD",
    "PAM_ACCT_EXPIRED",
    "PAM_SESSION_ERR",
    "PAM_CRED_UNAVAIL",
    "PAM_CRED_EXPIRED",
    "PAM_CRED_ERR",
    "PAM_NO_MODULE_DATA",
    "PAM_CONV_ERR",
    "PAM_AUTHTOK_ERR",
    "PAM_AUTHTOK_RECOVERY_ERR",
    "PAM_AUTHTOK_LOCK_BUSY",
    "PAM_AUTHTOK_DISABLE_AGING",
    "PAM_TRY_AGAIN",
    "PAM_IGNORE",
    "PAM_ABORT",
    "PAM_AUTHTOK_EXPIRED",
    "PAM_MODULE_UNKNOWN",
    "PAM_BAD_ITEM",
    "PAM_CONV_AGAIN",
    "PAM_INCOMPLETE",
];

fn name(rc: c_int) -> String {
    usize::try_from(rc)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("UNKNOWN({rc})"), |n| n.to_string())
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

/// One pam_start_confdir / pam_authenticate / pam_end; None if start failed.
fn authenticate_once(
    attempt: &Attempt,
    confdir: &CStr,
    conv: &PamConv,
    rhost: Option<&CString>,
    tty: Option<&CString>,
) -> Option<c_int> {
    let mut pamh: *mut PamHandle = std::ptr::null_mut();
    // SAFETY: all strings are valid C strings; conv and its answers outlive
    // the transaction; pamh is a valid out-pointer.
    let rc = unsafe {
        pam_start_confdir(
            attempt.service.as_ptr(),
            attempt.user.as_ptr(),
            conv,
            confdir.as_ptr(),
            &mut pamh,
        )
    };
    if rc != 0 {
        println!("result: start failed {}", name(rc));
        return None;
    }
    for (item, value) in [(PAM_RHOST, rhost), (PAM_TTY, tty)] {
        if let Some(value) = value {
            // SAFETY: live handle; libpam copies the string.
            unsafe { pam_set_item(pamh, item, value.as_ptr().cast::<c_void>()) };
        }
    }
    let started = std::time::Instant::now();
    // SAFETY: live handle from pam_start_confdir.
    let rc = unsafe { pam_authenticate(pamh, 0) };
    println!("result: {}", name(rc));
    println!("elapsed_ms: {}", started.elapsed().as_millis());
    // SAFETY: live handle, ended once.
    unsafe { pam_end(pamh, rc) };
    Some(rc)
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
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
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
    let answers = Answers { queue: RefCell::new(answers.into_iter().map(cstr).collect()) };
    let conv = PamConv {
        conv: Some(conversation),
        appdata_ptr: std::ptr::from_ref(&answers).cast_mut().cast::<c_void>(),
    };
    let rhost = rhost.map(cstr);
    let tty = tty.map(cstr);

    println!("threads: {}", count("/proc/self/task"));
    println!("fds: {}", count("/proc/self/fd"));
    for (i, attempt) in plan.iter().enumerate() {
        if let Some(own) = &attempt.answers {
            *answers.queue.borrow_mut() = own.clone();
            println!(
                "attempt: {} {} {}",
                i + 1,
                attempt.user.to_string_lossy(),
                attempt.service.to_string_lossy()
            );
        }
        if authenticate_once(attempt, &confdir, &conv, rhost.as_ref(), tty.as_ref()).is_none() {
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
    ExitCode::SUCCESS
}
