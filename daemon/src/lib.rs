//! mfad: the only holder of pam-mfa's secrets on a host. The rules are the
//! core's (`pam_mfa_core`), the store is a `pam_mfa_storage` one; here are
//! the D-Bus transport (`bus`: translates and authorizes), the live
//! number-matching state (`push`, `sessions`) and the user commands' output.

pub mod bus;
pub mod clock;
pub mod output;
pub mod push;
pub mod qr;
pub mod random;
pub mod sessions;
pub use pam_mfa_config::timefmt;
