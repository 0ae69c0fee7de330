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
    /// A variable of the PAM environment (never the process's: that is
    /// the caller's, and the caller may be hostile).
    fn getenv(&self, _name: &str) -> Option<String> {
        None
    }
    /// Sets `NAME=value` in the PAM environment, or removes `NAME`.
    fn putenv(&self, _name_value: &str) -> bool {
        false
    }
    /// The command line of the process running PAM (for sudo: what the
    /// user asked sudo to do), as one line of at most 200 bytes.
    fn command_line(&self) -> Option<String> {
        let raw = std::fs::read("/proc/self/cmdline").ok()?;
        Some(one_line(&raw, 200))
    }
}

/// NUL-separated arguments as one printable line of at most `max` bytes.
pub fn one_line(raw: &[u8], max: usize) -> String {
    let text: String = String::from_utf8_lossy(raw)
        .trim_end_matches('\0')
        .chars()
        .map(|c| {
            if c == '\0' {
                ' '
            } else if c.is_control() {
                '?'
            } else {
                c
            }
        })
        .collect();
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_line_becomes_one_short_printable_line() {
        assert_eq!(one_line(b"sudo\0-k\0true\0", 200), "sudo -k true");
        assert_eq!(one_line(b"rm\0a\nb\x1b[2J", 200), "rm a?b?[2J");
        let long = one_line(&[b'x'; 500], 200);
        assert_eq!(long.len(), 200);
        assert!(long.ends_with("..."));
    }
}
