//! pam-mfa's shared parts: the config schema, the names and values on the
//! bus, username validation, and the client every program uses to reach mfad.

pub mod client;
pub mod i18n;
pub mod names;
pub mod reference;
pub mod schema;
pub mod timefmt;
pub mod trust;
pub mod username;
pub mod wire;
