//! A store file as mfad reads it (`<state_dir>/users/NAME.toml`, which root
//! can edit by hand), then the checks made before a code is verified.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_mfa_storage::file::parse_record;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A record that parses may still hold a phone that does not decode: an
    // error, never a panic.
    if let Ok(Ok(account)) = parse_record(text).map(|record| record.into_account()) {
        let _ = account.params();
        let _ = account.secret_bytes();
    }
});
