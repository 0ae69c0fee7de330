//! pam_mfa.so: the PAM module. The FFI shim in `ffi` is the only unsafe
//! code; the logic behind it sees PAM through [`handler::PamHandler`] and
//! mfad through [`authenticate::Daemon`], so it is unit-tested without libpam.

pub mod args;
pub mod authenticate;
mod bus;
pub mod codes;
mod ffi;
pub mod handler;
pub mod session;
