//! What crosses between pam-mfa's parts: the names fixed by the design
//! (`names`), the values on the wire (`wire`), the errors mfad returns
//! (`error`), checked user names (`username`) and how times are written
//! (`timefmt`). The D-Bus API itself is `protocol/dbus/*.xml`, compared
//! with the running mfad by `tests/tests/api.rs`.

#[cfg(feature = "dbus")]
pub mod error;
pub mod names;
pub mod timefmt;
pub mod username;
pub mod wire;
