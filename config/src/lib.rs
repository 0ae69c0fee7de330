//! What administrators and users read and type: the one schema of
//! `/etc/pam-mfa/config.toml` (`schema`, its documentation `reference`,
//! the ownership checks `trust`), the messages in each language (`i18n`,
//! from `lang/`), the command lines of mfad, mfa-enroll and mfa-approve
//! (`cli`) and their standard output (`output`).

pub mod cli;
pub mod i18n;
pub mod output;
pub mod reference;
pub mod schema;
pub mod trust;
