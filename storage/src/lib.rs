//! pam-mfa's stores: implementations of the core's
//! [`pam_mfa_core::storage::Storage`], each passing its conformance suite.
//! `file`: one private file per user below `/var/lib/pam-mfa` (the
//! default; one host). `postgres`: one database for a fleet of hosts,
//! whose rules run inside it (`schema` brings it to this build's version).

pub mod file;
pub mod postgres;
pub mod schema;
