//! What the module needs from PAM, as a trait: libpam implements it in
//! `ffi`, unit tests with a script.

use zeroize::Zeroizing;

use crate::codes::PamCode;

/// String items the module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    Service,
    Tty,
    RHost,
    RUser,
}

/// Syslog priorities the module uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Error,
    Notice,
    Info,
    Debug,
}

pub trait PamHandler {
    /// The user being authenticated (PAM_USER, asking if unset).
    fn user(&self) -> Result<String, PamCode>;
    /// A string item, `None` when unset.
    fn item(&self, item: Item) -> Option<String>;
    /// Asks the user with echo off; the answer is wiped when dropped.
    fn prompt_hidden(&self, prompt: &str) -> Result<Zeroizing<String>, PamCode>;
    /// Asks the user with echo on (for "press Enter"); wiped when dropped.
    fn prompt_visible(&self, prompt: &str) -> Result<Zeroizing<String>, PamCode>;
    /// Shows a notice to the user.
    fn info(&self, text: &str);
    /// Shows an error to the user.
    fn error(&self, text: &str);
    /// Writes to the system log (never to the user).
    fn log(&self, priority: Priority, text: &str);
}
