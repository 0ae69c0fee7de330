//! What a client sends mfad: a user name and a code (TOTP or recovery),
//! through the bus argument check and each place a code is read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_mfa_config::schema::Algorithm;
use pam_mfa_protocol::username::Username;
use pam_mfa_core::{recovery, totp};
use pam_mfa_daemon::bus;

/// The RFC 6238 test secret ("12345678901234567890").
const SECRET: &[u8] = b"12345678901234567890";
const PARAMS: totp::Params = totp::Params { algorithm: Algorithm::Sha1, digits: 6, period: 30 };
/// The seeds `totp_accepted` and `totp_replayed` are the codes of this step
/// and of the one before it (the last accepted below).
const NOW: u64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Username::parse(s);
    let _ = bus::checked_code(s, false);
    let _ = bus::checked_code(s, true);
    let _ = recovery::normalize(s);
    let _ = totp::check(SECRET, PARAMS, s, NOW, 1, Some(NOW / 30 - 1));
    let _ = totp::check(SECRET, PARAMS, s, NOW, 0, None);
});
