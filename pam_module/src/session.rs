//! `pam_sm_open_session` and `pam_sm_close_session`: tell mfad which login
//! sessions passed the second factor, so that with `approver_session =
//! "mfa"` only those approve requests (DESIGN.md rule 5).
//!
//! The line `session optional pam_mfa.so` must come after pam_loginuid
//! (which gives the session its audit session id). After a second factor
//! the auth step put a one-time token from mfad in the PAM environment;
//! here it goes back to mfad from the process that opens the session,
//! and mfad reads that process's audit session itself. The token is then
//! taken out of the environment, so the session's programs never see it.

use pam_mfa_protocol::username::Username;

use crate::authenticate::{configured, Attempt};
use crate::bus::BusDaemon;
use crate::codes::PamCode;
use crate::handler::{PamHandler, Priority};

/// The PAM environment variable that carries the token from auth to session.
pub const TOKEN_ENV: &str = "PAM_MFA_SESSION";

/// A session opens: if its authentication passed a second factor, mfad
/// records it. Nothing here can keep anyone out (the line is optional):
/// every failure is logged and answered with `PAM_IGNORE`.
pub fn open_session(pam: &dyn PamHandler, raw_args: &[String]) -> PamCode {
    let token = pam.getenv(TOKEN_ENV);
    if token.is_some() {
        // Out of the environment before anything else can go wrong.
        pam.putenv(TOKEN_ENV);
    }
    let (args, config) = match configured(pam, raw_args) {
        Ok(configured) => configured,
        Err(_) => return PamCode::Ignore,
    };
    let Some(user) = pam.user().ok().filter(|u| Username::parse(u).is_ok()) else {
        return PamCode::Ignore;
    };
    let attempt = Attempt::new(pam, &user);
    let Some(token) = token else {
        if args.debug {
            attempt.log(pam, Priority::Debug, "session: no second factor in this authentication");
        }
        return PamCode::Ignore;
    };
    match BusDaemon::new(&config).open_session(&user, &token, &attempt.context) {
        Ok(id) => {
            attempt.log(pam, Priority::Info, &format!("session=opened audit_session={id}"));
            PamCode::Success
        }
        Err(e) => {
            attempt.log(pam, Priority::Notice, &format!("session=not-recorded reason=\"{e}\""));
            PamCode::Ignore
        }
    }
}

/// A session closes: mfad forgets it (it approves nothing any more).
pub fn close_session(pam: &dyn PamHandler, raw_args: &[String]) -> PamCode {
    let Ok((args, config)) = configured(pam, raw_args) else {
        return PamCode::Ignore;
    };
    let Some(user) = pam.user().ok().filter(|u| Username::parse(u).is_ok()) else {
        return PamCode::Ignore;
    };
    match BusDaemon::new(&config).close_session(&user) {
        Ok(true) => {
            Attempt::new(pam, &user).log(pam, Priority::Info, "session=closed");
            PamCode::Success
        }
        Ok(false) => PamCode::Ignore,
        Err(e) => {
            if args.debug {
                Attempt::new(pam, &user).log(pam, Priority::Debug, &format!("session close: {e}"));
            }
            PamCode::Ignore
        }
    }
}
