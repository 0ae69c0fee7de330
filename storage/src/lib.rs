//! pam-mfa's stores: implementations of the core's
//! [`pam_mfa_core::storage::Storage`], each passing its conformance suite.
//! `file`: one private file per user below `/var/lib/pam-mfa` (the
//! default; one host). A database store for a fleet comes next to it.

pub mod file;
