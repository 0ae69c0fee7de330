//! mfad: the only holder of pam-mfa's secrets. Logic modules (`totp`,
//! `limits`, `store`, `service`) know nothing of the bus; `bus` translates
//! and authorizes.

pub mod bus;
pub mod challenge;
pub mod clock;
pub mod flood;
pub mod ga_import;
pub mod limits;
pub mod output;
pub mod policy;
pub mod push;
pub mod qr;
pub mod random;
pub mod recovery;
pub mod service;
pub mod sessions;
pub mod store;
pub use pam_mfa_config::timefmt;
pub mod totp;
pub mod uri;
