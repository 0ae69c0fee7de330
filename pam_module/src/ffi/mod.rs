//! The PAM FFI boundary: the only `unsafe` code of pam-mfa.
//!
//! libpam calls the exported `pam_sm_*` functions; every one of them runs
//! inside `catch_unwind` so that no panic unwinds into sshd or sudo (a
//! caught panic fails closed with `PAM_SYSTEM_ERR`). [`LibPam`] is the safe
//! face of a `pam_handle_t` that the logic sees through [`PamHandler`].
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

use zeroize::Zeroizing;

use crate::codes::PamCode;
use crate::handler::{Item, PamHandler, Priority};

/// Opaque `pam_handle_t`.
#[repr(C)]
pub struct PamHandle {
    _private: [u8; 0],
    _not_send: PhantomData<*mut u8>,
}

const PAM_SERVICE: c_int = 1;
const PAM_TTY: c_int = 3;
const PAM_RHOST: c_int = 4;
const PAM_RUSER: c_int = 8;

const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;

#[link(name = "pam")]
extern "C" {
    fn pam_get_user(pamh: *mut PamHandle, user: *mut *const c_char, prompt: *const c_char)
        -> c_int;
    fn pam_get_item(pamh: *const PamHandle, item_type: c_int, item: *mut *const c_void) -> c_int;
    fn pam_prompt(
        pamh: *mut PamHandle,
        style: c_int,
        response: *mut *mut c_char,
        fmt: *const c_char,
        ...
    ) -> c_int;
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
    fn pam_getenv(pamh: *mut PamHandle, name: *const c_char) -> *const c_char;
    fn pam_putenv(pamh: *mut PamHandle, name_value: *const c_char) -> c_int;
}

/// A live `pam_handle_t`, valid for the duration of one `pam_sm_*` call.
pub struct LibPam {
    handle: *mut PamHandle,
}

/// Text for C, with interior NULs (which a caller could smuggle in) removed.
fn c_text(text: &str) -> CString {
    CString::new(text.replace('\0', "")).unwrap_or_default()
}

impl PamHandler for LibPam {
    fn user(&self) -> Result<String, PamCode> {
        let mut user: *const c_char = std::ptr::null();
        // SAFETY: `handle` is the live handle libpam passed to this call; `user`
        // is a valid out-pointer; a NULL prompt asks libpam for its default.
        let rc = unsafe { pam_get_user(self.handle, &mut user, std::ptr::null()) };
        if rc != 0 {
            return Err(PamCode::try_from(rc).unwrap_or(PamCode::SystemErr));
        }
        if user.is_null() {
            return Err(PamCode::UserUnknown);
        }
        // SAFETY: on success libpam returns a NUL-terminated string it owns,
        // valid until the item changes; we copy it at once.
        let name = unsafe { CStr::from_ptr(user) };
        name.to_str().map(str::to_owned).map_err(|_| PamCode::UserUnknown)
    }

    fn item(&self, item: Item) -> Option<String> {
        let item_type = match item {
            Item::Service => PAM_SERVICE,
            Item::Tty => PAM_TTY,
            Item::RHost => PAM_RHOST,
            Item::RUser => PAM_RUSER,
        };
        let mut value: *const c_void = std::ptr::null();
        // SAFETY: live handle; valid out-pointer; these item types are strings.
        let rc = unsafe { pam_get_item(self.handle, item_type, &mut value) };
        if rc != 0 || value.is_null() {
            return None;
        }
        // SAFETY: string items are NUL-terminated C strings owned by libpam,
        // valid during this call; copied at once.
        let text = unsafe { CStr::from_ptr(value.cast::<c_char>()) };
        Some(text.to_string_lossy().into_owned())
    }

    fn prompt_hidden(&self, prompt: &str) -> Result<Zeroizing<String>, PamCode> {
        self.prompt(PAM_PROMPT_ECHO_OFF, prompt)
    }

    fn prompt_visible(&self, prompt: &str) -> Result<Zeroizing<String>, PamCode> {
        self.prompt(PAM_PROMPT_ECHO_ON, prompt)
    }

    fn info(&self, text: &str) {
        self.show(PAM_TEXT_INFO, text);
    }

    fn error(&self, text: &str) {
        self.show(PAM_ERROR_MSG, text);
    }

    fn log(&self, priority: Priority, text: &str) {
        let level = match priority {
            Priority::Error => libc::LOG_ERR,
            Priority::Notice => libc::LOG_NOTICE,
            Priority::Info => libc::LOG_INFO,
            Priority::Debug => libc::LOG_DEBUG,
        };
        let message = c_text(text);
        // SAFETY: live handle; fixed "%s" format with one string argument.
        unsafe { pam_syslog(self.handle, level, c"%s".as_ptr(), message.as_ptr()) };
    }

    fn getenv(&self, name: &str) -> Option<String> {
        let name = c_text(name);
        // SAFETY: live handle; `name` is a NUL-terminated string we own.
        let value = unsafe { pam_getenv(self.handle, name.as_ptr()) };
        if value.is_null() {
            return None;
        }
        // SAFETY: libpam returns a NUL-terminated string it owns, valid
        // until the environment changes; copied at once.
        let text = unsafe { CStr::from_ptr(value) };
        text.to_str().ok().map(str::to_owned)
    }

    fn putenv(&self, name_value: &str) -> bool {
        let text = c_text(name_value);
        // SAFETY: live handle; libpam copies the NUL-terminated string.
        unsafe { pam_putenv(self.handle, text.as_ptr()) == 0 }
    }
}

impl LibPam {
    /// Asks with `style` (echo off or on); the answer is wiped when dropped.
    fn prompt(&self, style: c_int, prompt: &str) -> Result<Zeroizing<String>, PamCode> {
        let message = c_text(prompt);
        let mut response: *mut c_char = std::ptr::null_mut();
        // SAFETY: live handle; the fixed "%s" format consumes exactly the one
        // string argument, so no text can act as a format specifier;
        // `response` is a valid out-pointer.
        let rc = unsafe {
            pam_prompt(self.handle, style, &mut response, c"%s".as_ptr(), message.as_ptr())
        };
        if rc != 0 {
            return Err(PamCode::ConvErr);
        }
        if response.is_null() {
            return Ok(Zeroizing::new(String::new()));
        }
        // SAFETY: on success `response` is a NUL-terminated string malloc'd by
        // the application's conversation function; it is ours to free.
        let bytes = Zeroizing::new(unsafe { CStr::from_ptr(response) }.to_bytes().to_vec());
        // SAFETY: `response` points to `bytes.len()` bytes we own; wipe them,
        // then free with the allocator the conversation used (malloc).
        unsafe {
            libc::explicit_bzero(response.cast::<c_void>(), bytes.len());
            libc::free(response.cast::<c_void>());
        }
        match std::str::from_utf8(&bytes) {
            Ok(text) => Ok(Zeroizing::new(text.to_owned())),
            Err(_) => Ok(Zeroizing::new(String::from("\u{fffd}"))),
        }
    }

    fn show(&self, style: c_int, text: &str) {
        let message = c_text(text);
        // SAFETY: live handle; fixed "%s" format with one string argument; a
        // NULL response pointer is allowed for messages that expect no answer.
        unsafe {
            pam_prompt(self.handle, style, std::ptr::null_mut(), c"%s".as_ptr(), message.as_ptr());
        }
    }
}

/// Checks the raw arguments, copies `argv`, and runs `body` inside
/// `catch_unwind`; any panic or bad pointer fails closed.
///
/// # Safety
/// `pamh`, `argc` and `argv` must be what libpam passed to a `pam_sm_*` call.
unsafe fn guarded(
    pamh: *mut PamHandle,
    argc: c_int,
    argv: *const *const c_char,
    body: fn(&LibPam, &[String]) -> PamCode,
) -> c_int {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let Ok(count) = usize::try_from(argc) else {
            return PamCode::SystemErr;
        };
        if pamh.is_null() || (count > 0 && argv.is_null()) {
            return PamCode::SystemErr;
        }
        let mut args = Vec::with_capacity(count);
        for i in 0..count {
            // SAFETY: libpam passes `argc` entries in `argv` (checked non-NULL above).
            let arg = unsafe { *argv.add(i) };
            if arg.is_null() {
                return PamCode::SystemErr;
            }
            // SAFETY: each entry is a NUL-terminated string owned by libpam.
            args.push(unsafe { CStr::from_ptr(arg) }.to_string_lossy().into_owned());
        }
        body(&LibPam { handle: pamh }, &args)
    }));
    i32::from(result.unwrap_or(PamCode::SystemErr))
}

/// # Safety
/// Called by libpam with its handle and the module arguments.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_authenticate(
    pamh: *mut PamHandle,
    _flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    // SAFETY: the arguments are forwarded unchanged from libpam.
    unsafe { guarded(pamh, argc, argv, |pam, args| crate::entry::authenticate(pam, args)) }
}

/// Nothing to establish: a second factor grants no credentials.
///
/// # Safety
/// Called by libpam with its handle and the module arguments.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_setcred(
    pamh: *mut PamHandle,
    _flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    // SAFETY: the arguments are forwarded unchanged from libpam.
    unsafe { guarded(pamh, argc, argv, |_, _| PamCode::Success) }
}

/// A login session opens: record it with mfad if it passed the second factor.
///
/// # Safety
/// Called by libpam with its handle and the module arguments.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_open_session(
    pamh: *mut PamHandle,
    _flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    // SAFETY: the arguments are forwarded unchanged from libpam.
    unsafe { guarded(pamh, argc, argv, |pam, args| crate::session::open_session(pam, args)) }
}

/// A login session closes: mfad forgets it.
///
/// # Safety
/// Called by libpam with its handle and the module arguments.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_close_session(
    pamh: *mut PamHandle,
    _flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    // SAFETY: the arguments are forwarded unchanged from libpam.
    unsafe { guarded(pamh, argc, argv, |pam, args| crate::session::close_session(pam, args)) }
}
