//! The module arguments of a PAM line, e.g.
//! `auth required pam_mfa.so nullok debug config=/etc/pam-mfa/config.toml`.

use std::path::PathBuf;

/// Parsed module arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
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
                _ => {
                    return Err(format!(
                        "unknown module argument {arg:?}: allowed are nullok, debug, config=/absolute/path"
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
        let a = args(&["nullok", "debug", "config=/tmp/c.toml"]).unwrap();
        assert!(a.nullok && a.debug);
        assert_eq!(a.config, Some(PathBuf::from("/tmp/c.toml")));
        assert_eq!(args(&[]).unwrap(), Args::default());
    }

    #[test]
    fn unknown_or_bad_arguments_are_refused() {
        assert!(args(&["nulok"])
            .unwrap_err()
            .contains("unknown module argument"));
        assert!(args(&["config=relative.toml"])
            .unwrap_err()
            .contains("absolute"));
        assert!(args(&["debug=1"]).is_err());
    }
}
