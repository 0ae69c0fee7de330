//! The module arguments of a PAM line, e.g.
//! `auth required pam_mfa.so nullok debug config=/etc/pam-mfa/config.toml`.

use std::path::PathBuf;

use pam_mfa_config::i18n::{self, Texts};

/// Every module argument with its meaning: the one source of pam_mfa(8)
/// and of the error for an unknown argument.
pub const REFERENCE: &[(&str, &str)] = &[
    (
        "mode=code|push|auto",
        "How the second factor is asked for. code (the default): prompt \"Verification code:\" for a code from the authenticator app, or a recovery code. push: number matching; show a number and wait until it is typed into mfa-approve in another session of the user (over sshd the number is shown inside a prompt: approve, then press Enter, or type a code instead). auto: push when an approver of the user is online, else code.",
    ),
    (
        "nullok",
        "Let users without an enrollment through with PAM_IGNORE (the rest of the stack decides) instead of failing them with PAM_AUTH_ERR. For rolling pam-mfa out.",
    ),
    ("debug", "Log each step to syslog at debug priority (never a code)."),
    (
        "require_group=G[,G...]",
        "For this PAM line, instead of [policy] require_groups: only members of these groups must use a second factor; others get PAM_IGNORE.",
    ),
    (
        "exempt_user=U[,U...]",
        "For this PAM line, instead of [policy] exempt_users: these users never have to use a second factor (PAM_IGNORE).",
    ),
    (
        "exempt_group=G[,G...]",
        "For this PAM line, instead of [policy] exempt_groups: members of these groups never have to use a second factor (PAM_IGNORE).",
    ),
    (
        "max_prompts=N",
        "How many codes the user may type in one authentication before it fails, 1 to 10 (default 3). Each failure says what went wrong (wrong code; code already used; locked until HH:MM UTC) but never whether the user exists or is enrolled: an unenrolled user (without nullok) is asked like anyone else and told the code is wrong.",
    ),
    (
        "failmode=closed|open",
        "What happens when mfad cannot be reached or does not answer within the config's bus timeout. closed (the default): fail with PAM_AUTHINFO_UNAVAIL, nobody gets in on this line. open: answer PAM_IGNORE, so the rest of the stack decides (the second factor is skipped while mfad is down: weaker, logged at error priority).",
    ),
    (
        "language=auto|en|nl",
        "For this PAM line, instead of the config's language: the language of the prompts and notices. auto: the locale of the program the module runs in (inside sudo or su the invoking user's LC_ALL, LC_MESSAGES, LANG, LANGUAGE; sshd asks before the client's locale arrives, so there sshd's own), else English. The value only picks among the built-in languages.",
    ),
    (
        "config=/absolute/path",
        "Read this config file instead of /etc/pam-mfa/config.toml; it must exist. Only root-writable files belong here: the file names the bus the module trusts.",
    ),
];

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// `mode=code|push|auto`.
    pub mode: Mode,
    /// Let users without an enrollment through (`PAM_IGNORE`) instead of failing.
    pub nullok: bool,
    /// Log each step at debug priority.
    pub debug: bool,
    /// `max_prompts=N`: codes the user may type in one authentication.
    pub max_prompts: u8,
    /// `failmode=open`: PAM_IGNORE instead of PAM_AUTHINFO_UNAVAIL when
    /// mfad is unreachable.
    pub fail_open: bool,
    /// Config file to read instead of /etc/pam-mfa/config.toml (must exist).
    pub config: Option<PathBuf>,
    /// `require_group=`, `exempt_user=`, `exempt_group=`: this line's policy
    /// lists (`None`: the config's).
    pub require_groups: Option<Vec<String>>,
    pub exempt_users: Option<Vec<String>>,
    pub exempt_groups: Option<Vec<String>>,
    /// `language=`: this line's language setting (`None`: the config's).
    pub language: Option<String>,
    /// What the user reads, in the language chosen (English until the
    /// config and the locale are applied).
    pub texts: Texts,
    /// From the config's `[remember] seconds`: whether remembered devices skip.
    pub remember: bool,
    /// From the config's `[remember] ssh_services`: where the SSH key is read.
    pub ssh_services: Vec<String>,
    /// From the config's `[policy] enroll_deadline`, days since 1970-01-01.
    pub enroll_deadline: Option<i64>,
    /// From the config's `[push] show_command`: tell the approver the command.
    pub show_command: bool,
    /// From the config's `[push] show_remote_host`: tell the approver the remote host.
    pub show_remote_host: bool,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            mode: Mode::default(),
            nullok: false,
            debug: false,
            max_prompts: 3,
            fail_open: false,
            config: None,
            require_groups: None,
            exempt_users: None,
            exempt_groups: None,
            enroll_deadline: None,
            language: None,
            texts: Texts::english(),
            remember: false,
            ssh_services: Vec::new(),
            show_command: false,
            show_remote_host: false,
        }
    }
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
                Some((key @ ("require_group" | "exempt_user" | "exempt_group"), list)) => {
                    let names: Vec<String> =
                        list.split(',').filter(|n| !n.is_empty()).map(str::to_string).collect();
                    if names.is_empty() {
                        return Err(format!("{key}= needs at least one name"));
                    }
                    match key {
                        "require_group" => parsed.require_groups = Some(names),
                        "exempt_user" => parsed.exempt_users = Some(names),
                        _ => parsed.exempt_groups = Some(names),
                    }
                }
                Some(("language", lang))
                    if lang == i18n::AUTO || i18n::languages().any(|l| l == lang) =>
                {
                    parsed.language = Some(lang.to_string());
                }
                Some(("language", other)) => {
                    let known: Vec<&str> = i18n::languages().collect();
                    return Err(format!(
                        "language={other}: use language=auto or one of {}",
                        known.join(", ")
                    ));
                }
                Some(("max_prompts", n)) => match n.parse::<u8>() {
                    Ok(n) if (1..=10).contains(&n) => parsed.max_prompts = n,
                    _ => return Err(format!("max_prompts={n}: use a number from 1 to 10")),
                },
                Some(("failmode", "closed")) => parsed.fail_open = false,
                Some(("failmode", "open")) => parsed.fail_open = true,
                Some(("failmode", other)) => {
                    return Err(format!("failmode={other}: use failmode=closed or failmode=open"));
                }
                Some(("mode", other)) => {
                    return Err(format!("mode={other}: use mode=code, mode=push or mode=auto"));
                }
                _ => {
                    let allowed: Vec<&str> = REFERENCE.iter().map(|(name, _)| *name).collect();
                    return Err(format!(
                        "unknown module argument {arg:?}: allowed are {}",
                        allowed.join(", ")
                    ));
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
    fn every_documented_argument_is_accepted() {
        for (name, _) in REFERENCE {
            let example = match name.split_once('=') {
                Some(("mode", _)) => "mode=push".to_string(),
                Some(("config", _)) => "config=/etc/pam-mfa/config.toml".to_string(),
                Some(("failmode", _)) => "failmode=open".to_string(),
                Some(("max_prompts", _)) => "max_prompts=5".to_string(),
                Some(("language", _)) => "language=nl".to_string(),
                Some((key, _)) if key.starts_with("require_") || key.starts_with("exempt_") => {
                    format!("{key}=a,b")
                }
                Some(_) => panic!("{name} has no example"),
                None => name.to_string(),
            };
            assert!(args(&[&example]).is_ok(), "{example}");
            assert!(args(&["bogus"]).unwrap_err().contains(name));
        }
    }

    #[test]
    fn unknown_or_bad_arguments_are_refused() {
        assert!(args(&["nulok"]).unwrap_err().contains("unknown module argument"));
        assert!(args(&["config=relative.toml"]).unwrap_err().contains("absolute"));
        assert!(args(&["debug=1"]).is_err());
        assert!(args(&["mode=sms"]).unwrap_err().contains("mode=code, mode=push or mode=auto"));
        let refused = args(&["language=../x"]).unwrap_err();
        assert!(refused.contains("language=auto or one of ") && refused.contains("en, "));
        assert_eq!(args(&["language=auto"]).unwrap().language.as_deref(), Some("auto"));
    }
}
