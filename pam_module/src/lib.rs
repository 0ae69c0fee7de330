//! pam_mfa.so: the PAM module. The FFI shim in `ffi` is the only unsafe
//! code; the logic behind it sees PAM through [`handler::PamHandler`] and
//! mfad through [`daemon::Daemon`], so it is unit-tested without libpam.
//! `entry` puts the real ones together: it alone knows both the logic and
//! the bus (no module imports the other way).

pub mod args;
pub mod authenticate;
mod bus;
pub mod codes;
pub mod daemon;
mod entry;
mod ffi;
pub mod handler;
pub mod session;
