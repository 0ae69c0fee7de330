//! Writes pam-mfa's man pages and example config from their one sources:
//! each command's `--help`, the module's argument reference, and the config
//! key reference. So the pages cannot drift from the programs.
//!
//! ```text
//! gen-docs OUT_DIR BIN_DIR DATE VERSION
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use pam_mfa_config::i18n;
use pam_mfa_config::reference::{example_toml, KEYS, SECTIONS};

/// Escapes text for roff: backslashes, and a leading '.' or '\''.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

fn header(name: &str, section: &str, date: &str, version: &str, summary: &str) -> String {
    format!(
        ".TH {} {section} \"{date}\" \"pam-mfa {version}\" \"pam-mfa\"\n.SH NAME\n{} \\- {}\n",
        name.to_uppercase(),
        roff(name),
        roff(summary)
    )
}

/// A command's man page from its `--help` in `lang`: the first line is
/// the summary, the rest is kept as written (it is what `--help` prints).
fn command_page(
    bin: &Path,
    name: &str,
    section: &str,
    (date, version): (&str, &str),
    lang: &str,
) -> Result<String, String> {
    // The page in `lang` whatever the builder's locale or its
    // /etc/pam-mfa/config.toml says: an empty config (language "auto"),
    // and the language as the locale (C for English).
    let locale = if lang == i18n::FALLBACK { "C" } else { lang };
    let out = Command::new(bin.join(name))
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env_remove("LANGUAGE")
        .env("LANG", locale)
        .args(["--config", "/dev/null", "--help"])
        .output()
        .map_err(|e| format!("{}: {e}", bin.join(name).display()))?;
    let help = String::from_utf8(out.stdout).map_err(|e| e.to_string())?;
    let mut lines = help.lines();
    let first = lines.next().ok_or(format!("{name} --help printed nothing"))?;
    let summary = first.split_once(" - ").map_or(first, |(_, s)| s);
    let mut page = header(name, section, date, version, summary);
    page.push_str(".SH DESCRIPTION\n.nf\n");
    for line in lines {
        let _ = writeln!(page, "{}", roff(line));
    }
    page.push_str(".fi\n");
    page.push_str(".SH SEE ALSO\n.BR mfad (8),\n.BR mfa\\-db (8),\n.BR mfa\\-web (8),\n.BR pam_mfa (8),\n.BR mfa\\-enroll (1),\n.BR mfa\\-approve (1),\n.BR pam\\-mfa.toml (5)\n");
    Ok(page)
}

fn pam_page(date: &str, version: &str) -> String {
    let mut page = header(
        "pam_mfa",
        "8",
        date,
        version,
        "second factor (TOTP code or number matching) for PAM",
    );
    page.push_str(".SH SYNOPSIS\n.B auth required pam_mfa.so\n[\\fIARGUMENTS\\fR]\n.br\n.B session optional pam_mfa.so\n[\\fBconfig=\\fR\\fIPATH\\fR] [\\fBdebug\\fR]\n");
    page.push_str(".SH DESCRIPTION\nAsks the user for a second factor and lets \\fBmfad\\fR(8) decide, over the system D\\-Bus. The module holds no secrets and reads no store; it never takes the bus address from the environment. When mfad cannot be reached within the config's bus timeout it fails closed with PAM_AUTHINFO_UNAVAIL.\n");
    page.push_str(".SH SESSIONS\nThe session line (after \\fBpam_loginuid\\fR(8), which gives each login its audit session) tells mfad that a login session passed the second factor: after a code, a recovery code or an approval, the auth step leaves a one\\-time token from mfad in the PAM environment, and \\fBpam_sm_open_session\\fR hands it back from the process that opens the session and removes it from the environment. mfad reads that process's audit session itself. With [push] approver_session = \"mfa\" (the default) only such sessions, still open and other than the requesting one, may approve a request; \\fBpam_sm_close_session\\fR ends that. The pam\\-auth\\-update profile puts the line in common\\-session (interactive services only). The line is optional: it never keeps anyone out. In a service without it (sudo, whose session stack is common\\-session\\-noninteractive) the token stays unused in the PAM environment, where sudo may pass it to the command: only root can spend it, within 120 seconds.\n");
    page.push_str(".SH WARNINGS\nPut pam_mfa.so after the password module (pam_unix), as the packaged snippets and the pam\\-auth\\-update profile do. A stack that asks for the code first lets anyone who can reach the login type wrong codes for any user name, and lock that user out of code logins for up to [limits] lockout_max_seconds per round. If such a stack cannot be avoided, set [limits] scope = \"user+address\" so that one address locks out only itself.\n");
    page.push_str(".SH ARGUMENTS\n");
    for (name, doc) in pam_mfa::args::REFERENCE {
        let _ = write!(page, ".TP\n.B {}\n{}\n", roff(name), roff(doc));
    }
    page.push_str(".SH RETURN VALUES\n.TP\n.B PAM_SUCCESS\nRight code, unused recovery code, or approved request.\n.TP\n.B PAM_AUTH_ERR\nWrong or replayed code; denied, wrong number or expired request; not enrolled (without nullok).\n.TP\n.B PAM_MAXTRIES\nLocked out after too many wrong codes.\n.TP\n.B PAM_IGNORE\nNot enrolled, with nullok.\n.TP\n.B PAM_AUTHINFO_UNAVAIL\nmfad unreachable or silent past the timeout.\n.TP\n.B PAM_SERVICE_ERR\nA bad PAM line or config file (see the system log).\n");
    page.push_str(".SH EXAMPLES\n.nf\n# /etc/pam.d/sshd, after @include common\\-auth\nauth required pam_mfa.so\n# /etc/pam.d/sshd, after @include common\\-session\nsession optional pam_mfa.so\n# /etc/pam.d/sudo\nauth required pam_mfa.so mode=push\n.fi\n");
    page.push_str(".SH SEE ALSO\n.BR mfad (8),\n.BR mfa\\-enroll (1),\n.BR mfa\\-approve (1),\n.BR pam\\-mfa.toml (5),\n.BR pam (7)\n");
    page
}

fn config_page(date: &str, version: &str) -> String {
    let mut page = header("pam-mfa.toml", "5", date, version, "configuration of pam-mfa");
    page.push_str(".SH SYNOPSIS\n/etc/pam\\-mfa/config.toml\n.SH DESCRIPTION\nA TOML file read by \\fBmfad\\fR(8), \\fBpam_mfa\\fR(8), \\fBmfa\\-enroll\\fR(1) and \\fBmfa\\-approve\\fR(1). Every key is optional; with no file at all the defaults below apply. Unknown keys and values out of range are refused with the file, line and column and what is allowed.\n");
    for (section, about) in SECTIONS {
        let title = if section.is_empty() {
            "TOP\\-LEVEL KEYS".to_string()
        } else {
            format!("[{section}]")
        };
        let _ = write!(page, ".SH {title}\n{}\n", roff(about));
        for key in KEYS.iter().filter(|k| k.section == *section) {
            let _ = write!(
                page,
                ".TP\n.BR {} \" (default: \" {} )\n{}\n",
                roff(key.key),
                roff(&pam_mfa_config::reference::default_of(key)).replace('"', "\\(dq"),
                roff(key.doc)
            );
        }
    }
    page.push_str(".SH EXAMPLE\n.nf\n");
    for line in example_toml().lines() {
        let _ = writeln!(page, "{}", roff(line));
    }
    page.push_str(".fi\n.SH SEE ALSO\n.BR mfad (8),\n.BR pam_mfa (8)\n");
    page
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, bin, date, version] = args.as_slice() else {
        eprintln!("usage: gen-docs OUT_DIR BIN_DIR DATE VERSION");
        return ExitCode::from(2);
    };
    let out = PathBuf::from(out);
    let bin = PathBuf::from(bin);
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    // The user commands in every built-in language (under LANG/manN/, as
    // /usr/share/man/LANG/ wants them); mfad, mfa-db and mfa-web, for
    // administrators, in English.
    let mut pages = vec![
        (i18n::FALLBACK, "mfad", "8"),
        (i18n::FALLBACK, "mfa-db", "8"),
        (i18n::FALLBACK, "mfa-web", "8"),
    ];
    for lang in i18n::languages() {
        pages.extend([(lang, "mfa-enroll", "1"), (lang, "mfa-approve", "1")]);
    }
    for (lang, name, section) in pages {
        let dir = if lang == i18n::FALLBACK { out.clone() } else { out.join(lang) };
        match command_page(&bin, name, section, (date, version), lang) {
            Ok(page) => files.push((dir.join(format!("man{section}/{name}.{section}")), page)),
            Err(e) => {
                eprintln!("gen-docs: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    files.push((out.join("man8/pam_mfa.8"), pam_page(date, version)));
    files.push((out.join("man5/pam-mfa.toml.5"), config_page(date, version)));
    files.push((out.join("examples/config.toml"), example_toml()));
    for (path, text) in files {
        if let Some(dir) = path.parent() {
            if let Err(e) = std::fs::create_dir_all(dir) {
                eprintln!("gen-docs: {}: {e}", dir.display());
                return ExitCode::FAILURE;
            }
        }
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("gen-docs: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("{}", path.display());
    }
    ExitCode::SUCCESS
}
