//! `/etc/pam-mfa/config.toml` as every program reads it: any text gives a
//! config or an error with a position, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_mfa_config::schema::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(err) = Config::parse(std::path::Path::new("fuzz.toml"), text) {
        // The message mfad logs is part of the path under test.
        let _ = err.to_string();
    }
});
