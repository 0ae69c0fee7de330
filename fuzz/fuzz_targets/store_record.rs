//! A store file as mfad reads it (`<state_dir>/users/NAME.toml`, which root
//! can edit by hand), then the checks made before a code is verified.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_mfa_storage::file::parse_record;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(record) = parse_record(text) {
        let account = record.into_account();
        let _ = account.params();
        let _ = account.secret_bytes();
    }
});
