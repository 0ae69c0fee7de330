//! The module arguments of a PAM line, e.g.
//! `auth required pam_mfa.so nullok debug config=/etc/pam-mfa/config.toml`.

use std::path::PathBuf;

/// How the second factor is asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// A six-digit code from the app (or a recovery code).
    #[default]
    Code,
    /// Number matching: show a number, wait for the approval in mfa-approve.
    Push,
    /// Push when an approver of the user is online, else a code.
    Auto,
}

/// Parsed module arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    /// `mode=code|push|auto`.
    pub mode: Mode,
    /// Let users without an enrollment through (`PAM_IGNORE`) instead of failing.
    pub nullok: bool,
    /// Log each step at debug priority.
    pub debug: bool,
    /// Config file to read instead of /etc/pam-mfa/config.toml (must exist).
    pub config: Option<PathBuf>,
}

impl Args {
    /// Unknown arguments are an error: a typo in a PAM line must not
    /// silently weaken it.
    pub fn parse(args: &[String]) -> Result<Args, String> {
        let mut parsed = Args::default();
        for arg in args {
            match arg.split_once('=') {
                None if arg == "nullok" => parsed.nullok = true,
                None if arg == "debug" => parsed.debug = true,
                Some(("config", path)) if path.starts_with('/') => {
                    parsed.config = Some(PathBuf::from(path));
                }
                Some(("config", path)) => {
                    return Err(format!("config={path}: the path must be absolute"));
                }
                Some(("mode", "code")) => parsed.mode = Mode::Code,
                Some(("mode", "push")) => parsed.mode = Mode::Push,
                Some(("mode", "auto")) => parsed.mode = Mode::Auto,
                Some(("mode", other)) => {
                    return Err(format!("mode={other}: use mode=code, mode=push or mode=auto"));
                }
                _ => {
                    return Err(format!(
                        "unknown module argument {arg:?}: allowed are nullok, debug, mode=code|push|auto, config=/absolute/path"
                    ))
                }
            }
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        Args::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn known_arguments_are_read() {
        let a = args(&["nullok", "debug", "config=/tmp/c.toml", "mode=push"]).unwrap();
        assert!(a.nullok && a.debug);
        assert_eq!(a.mode, Mode::Push);
        assert_eq!(args(&["mode=auto"]).unwrap().mode, Mode::Auto);
        assert_eq!(a.config, Some(PathBuf::from("/tmp/c.toml")));
        assert_eq!(args(&[]).unwrap(), Args::default());
    }

    #[test]
    fn unknown_or_bad_arguments_are_refused() {
        assert!(args(&["nulok"]).unwrap_err().contains("unknown module argument"));
        assert!(args(&["config=relative.toml"]).unwrap_err().contains("absolute"));
        assert!(args(&["debug=1"]).is_err());
        assert!(args(&["mode=sms"]).unwrap_err().contains("mode=code, mode=push or mode=auto"));
    }
}
