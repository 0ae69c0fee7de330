//! The one check a username passes before it becomes a file name or a
//! key: checked here, never trusted from a caller.

use std::fmt;

/// Longest accepted username in bytes.
pub const MAX_LEN: usize = 64;

/// A username that is safe to use as a file name in the state directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(String);

/// Why a username was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadUsername(pub String);

impl fmt::Display for BadUsername {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadUsername {}

impl Username {
    /// Accepts 1 to 64 bytes of ASCII letters, digits, `_`, `-`, `.` and
    /// `@` (for directory users), not starting with `-` or `.`.
    pub fn parse(name: &str) -> Result<Username, BadUsername> {
        if name.is_empty() {
            return Err(BadUsername("the username is empty".into()));
        }
        if name.len() > MAX_LEN {
            return Err(BadUsername(format!("the username is longer than {MAX_LEN} bytes")));
        }
        if name.starts_with(['-', '.']) {
            return Err(BadUsername("a username may not start with '-' or '.'".into()));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@')))
        {
            return Err(BadUsername(format!(
                "a username may not contain {c:?}: allowed are ASCII letters, digits, '_', '-', '.', '@'"
            )));
        }
        Ok(Username(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_are_accepted() {
        for name in ["alice", "bob_2", "svc-backup", "first.last", "a@example.org", "A"] {
            assert_eq!(Username::parse(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn unsafe_names_are_refused() {
        for name in [
            "",
            ".",
            "..",
            "../etc/passwd",
            "a/b",
            "-rf",
            ".hidden",
            "a b",
            "a\0b",
            "é",
            "a\nb",
            "tab\t",
            &"x".repeat(65),
        ] {
            assert!(Username::parse(name).is_err(), "{name:?} accepted");
        }
    }
}
