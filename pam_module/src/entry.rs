//! The entry points the FFI shim calls: the real config and the real bus
//! around the logic of `authenticate.rs` (which knows mfad only as the
//! `Daemon` trait).

use crate::args::Args;
use crate::authenticate::{authenticate_with, prepared};
use crate::bus::BusDaemon;
use crate::codes::PamCode;
use crate::handler::{PamHandler, Priority};

/// `pam_sm_authenticate`: real config, real bus.
pub fn authenticate(pam: &dyn PamHandler, raw_args: &[String]) -> PamCode {
    let (args, config) = match prepared(pam, raw_args) {
        Ok(prepared) => prepared,
        Err(code) => return code,
    };
    let mut daemon = BusDaemon::new(&config);
    let code = authenticate_with(pam, &args, &mut daemon);
    if code == PamCode::Success {
        hand_off(pam, &args, &mut daemon);
    }
    code
}

/// After a second factor: a token from mfad in the PAM environment, for
/// `pam_sm_open_session` to prove that the session it opens passed (see
/// `session.rs`). mfad gives one only when a second factor succeeded on
/// this connection just now (not for a remembered device).
fn hand_off(pam: &dyn PamHandler, args: &Args, daemon: &mut BusDaemon) {
    let Ok(user) = pam.user() else { return };
    match daemon.grant_session(&user) {
        Ok(token) => {
            if !pam.putenv(&format!("{}={token}", crate::session::TOKEN_ENV)) {
                pam.log(Priority::Error, "cannot put the session token in the PAM environment");
            }
        }
        Err(e) if args.debug => {
            pam.log(Priority::Debug, &format!("no session token: {e}"));
        }
        Err(_) => {}
    }
}
