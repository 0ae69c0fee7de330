//! mfad: the only holder of pam-mfa's secrets on a host. The rules are the
//! core's (`pam_mfa_core`), the store is a `pam_mfa_storage` one; here is
//! the D-Bus transport: `bus` works out the caller and authorizes by the
//! one table, `push` knows which approver connections are online,
//! `sessions` which login sessions passed a second factor.

pub mod bus;
pub mod clock;
pub mod push;
pub mod random;
pub mod sessions;
pub mod web;
