//! A client of real libpam, as sshd or sudo is one: `pam_start_confdir`
//! (the service file comes from a directory of the test's, not
//! /etc/pam.d), a conversation that answers prompts from a queue, and
//! `pam_authenticate`. Used by `pam-harness` and the benchmarks.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_void, CStr, CString};

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
    fn pam_open_session(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_close_session(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut PamHandle, status: c_int) -> c_int;
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

/// The C name of a PAM return code.
pub fn name(rc: c_int) -> String {
    usize::try_from(rc)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("UNKNOWN({rc})"), |n| n.to_string())
}

/// The conversation: prints each message, answers prompts from the queue.
unsafe extern "C" fn converse(
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
        // SAFETY: appdata is the `Conversation` passed to pam_start_confdir,
        // alive for the whole transaction.
        let answers = unsafe { &*appdata.cast::<Conversation>() };
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
            if let Some(callback) = &answers.on_message {
                callback(&text);
            }
            let print = |kind: &str| {
                if answers.print {
                    println!("{kind}: {text}");
                }
            };
            match message.msg_style {
                1 | 2 => {
                    print("prompt");
                    let answer = answers.answers.borrow_mut().pop_front().unwrap_or_default();
                    // SAFETY: strdup copies a valid C string with malloc.
                    let copy = unsafe { libc::strdup(answer.as_ptr()) };
                    // SAFETY: i < n, `out` has n zeroed entries.
                    unsafe { (*out.add(i)).resp = copy };
                }
                3 => print("error"),
                _ => print("info"),
            }
        }
        // SAFETY: `responses` is a valid out-pointer; ownership passes to libpam.
        unsafe { *responses = out };
        0
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(PAM_CONV_ERR)
}

/// A callback that sees each message's text.
pub type MessageHook = Box<dyn Fn(&str)>;

/// What the conversation does: answers prompts in order, and prints each
/// message (`prompt: …`, `info: …`, `error: …`) when `print` is set.
pub struct Conversation {
    pub answers: RefCell<VecDeque<CString>>,
    pub print: bool,
    /// Called with each message's text (e.g. to read a number off it).
    pub on_message: Option<MessageHook>,
}

impl Conversation {
    pub fn new(answers: VecDeque<CString>, print: bool) -> Conversation {
        Conversation { answers: RefCell::new(answers), print, on_message: None }
    }
}

/// One pam_start_confdir / pam_authenticate / pam_end; after a success,
/// with `session`, pam_open_session, `session()`, pam_close_session (as
/// sshd does around the user's shell). `Err` carries the code of a failed
/// pam_start_confdir.
pub fn authenticate(
    service: &CStr,
    user: &CStr,
    confdir: &CStr,
    conversation: &Conversation,
    rhost: Option<&CStr>,
    tty: Option<&CStr>,
    session: Option<&mut dyn FnMut()>,
) -> Result<c_int, c_int> {
    let conv = PamConv {
        conv: Some(converse),
        appdata_ptr: std::ptr::from_ref(conversation).cast_mut().cast::<c_void>(),
    };
    let mut pamh: *mut PamHandle = std::ptr::null_mut();
    // SAFETY: all strings are valid C strings; conv and the conversation
    // outlive the transaction; pamh is a valid out-pointer.
    let rc = unsafe {
        pam_start_confdir(service.as_ptr(), user.as_ptr(), &conv, confdir.as_ptr(), &mut pamh)
    };
    if rc != 0 {
        return Err(rc);
    }
    for (item, value) in [(PAM_RHOST, rhost), (PAM_TTY, tty)] {
        if let Some(value) = value {
            // SAFETY: live handle; libpam copies the string.
            unsafe { pam_set_item(pamh, item, value.as_ptr().cast::<c_void>()) };
        }
    }
    // SAFETY: live handle from pam_start_confdir.
    let rc = unsafe { pam_authenticate(pamh, 0) };
    if rc == 0 {
        if let Some(inside) = session {
            // SAFETY: live handle, authenticated.
            let opened = unsafe { pam_open_session(pamh, 0) };
            println!("open_session: {}", name(opened));
            inside();
            // SAFETY: live handle; the session opened above.
            let closed = unsafe { pam_close_session(pamh, 0) };
            println!("close_session: {}", name(closed));
        }
    }
    // SAFETY: live handle, ended once.
    unsafe { pam_end(pamh, rc) };
    Ok(rc)
}
