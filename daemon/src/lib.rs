//! mfad: the only holder of pam-mfa's secrets. Logic modules (`totp`,
//! `limits`, `store`, `service`) know nothing of the bus; `bus` translates
//! and authorizes.

pub mod bus;
pub mod clock;
pub mod limits;
pub mod service;
pub mod store;
pub mod totp;
pub mod uri;
