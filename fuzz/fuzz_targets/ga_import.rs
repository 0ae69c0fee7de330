//! A user's `~/.google_authenticator` file, read by `mfa-enroll --import`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_mfa_core::ga_import;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ga_import::parse(text);
});
