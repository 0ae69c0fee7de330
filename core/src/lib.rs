//! The core of pam-mfa: the rules of codes, recovery codes, lockouts,
//! enrollment and number matching, with no I/O. Time and randomness are
//! arguments; storage is the [`storage::Storage`] trait, whose operations
//! are the atomic units the rules need. Transports (D-Bus, later the web)
//! and stores (files, memory, later PostgreSQL) live in other crates.

pub mod account;
pub mod challenge;
pub mod challenges;
pub mod conformance;
pub mod flood;
pub mod ga_import;
pub mod limits;
pub mod memory;
pub mod passkey;
pub mod policy;
pub mod random;
pub mod recovery;
pub mod service;
pub mod storage;
pub mod totp;
pub mod uri;
