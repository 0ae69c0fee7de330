//! The reference of every config key: what it means and what it allows,
//! the one text of the example file and of pam-mfa.toml(5). Each fact of
//! a key is written once: its name, type, range and default in the schema
//! (`schema.rs`: the field, its `Ranged<MIN, MAX>`, its `Default`), its
//! meaning here; the docs take the default from the schema itself
//! ([`default_of`]). Tests hold the two together: every key of the schema
//! is here, every key here parses, and the range each doc states is the
//! one the parser allows.

/// One key of `/etc/pam-mfa/config.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDoc {
    /// `""` for top-level keys, else the `[section]` name.
    pub section: &'static str,
    pub key: &'static str,
    pub doc: &'static str,
}

/// What each section is for.
pub const SECTIONS: &[(&str, &str)] = &[
    ("", "Top-level keys."),
    ("totp", "Parameters of new enrollments (RFC 6238). Existing enrollments keep theirs."),
    ("limits", "Rate limiting of failed attempts, per user (or per user and address)."),
    ("enroll", "The setup of a new enrollment."),
    ("push", "Number matching: requests approved in mfa-approve."),
    ("policy", "Who must use a second factor. Users not covered get PAM_IGNORE: the rest of the stack decides. The PAM line can override the lists (require_group=, exempt_user=, exempt_group=)."),
    ("remember", "Remember this device: after a code from an SSH key and a remote address, skip the second factor for that user, key, address and service for a while. Off by default; mfa-enroll --forget-devices forgets them all."),
    ("bus", "How mfad and its clients meet."),
    ("web", "The phone approver: mfa-web serves a page where a phone signed in with a passkey approves requests by typing the number (README, Approve on your phone). mfad reads public_url and user too: it checks every passkey signature itself."),
    ("store", "Where mfad keeps enrollments: files on this host (the default), or one PostgreSQL database shared by a fleet of hosts, where codes are checked inside the database and no host can read a secret (README, Fleet)."),
];

pub const KEYS: &[KeyDoc] = &[
    KeyDoc {
        section: "",
        key: "issuer",
        doc: "Name the authenticator app shows above the account (the otpauth issuer). 1 to 64 printable characters, no colon.",
    },
    KeyDoc {
        section: "",
        key: "state_dir",
        doc: "Directory where mfad keeps one file per enrolled user (mode 0700, owned by the service user). An absolute path.",
    },
    KeyDoc {
        section: "",
        key: "language",
        doc: "Language of what users read: PAM prompts and notices, mfa-enroll and mfa-approve. \"auto\": the user's locale (LC_ALL, LC_MESSAGES, LANG, LANGUAGE) where the program has one: mfa-enroll, mfa-approve, and the PAM module inside sudo or su (the invoking user's); sshd authenticates before the client's locale arrives, so there it is sshd's own. Else English. Or a built-in language for everyone: \"en\" (English) or \"nl\" (Dutch). The PAM line can override it (language=). Administrator logs stay English. Adding a language is adding one file, config/lang/<code>.toml, to the source.",
    },
    KeyDoc {
        section: "totp",
        key: "algorithm",
        doc: "HMAC hash: \"SHA1\" (what every app supports), \"SHA256\" or \"SHA512\".",
    },
    KeyDoc { section: "totp", key: "digits", doc: "Digits of a code, 6 to 8." },
    KeyDoc { section: "totp", key: "period", doc: "Seconds a code lasts, 15 to 300." },
    KeyDoc {
        section: "totp",
        key: "skew",
        doc: "Time steps accepted either side of now, for clock drift, 0 to 10.",
    },
    KeyDoc {
        section: "limits",
        key: "max_failures",
        doc: "Consecutive failures that lock the user out, 1 to 100.",
    },
    KeyDoc {
        section: "limits",
        key: "lockout_seconds",
        doc: "Length of the first lockout in seconds, 1 to 86400; each further lockout without a success in between doubles it.",
    },
    KeyDoc {
        section: "limits",
        key: "lockout_max_seconds",
        doc: "Ceiling of the doubling lockout in seconds, 1 to 604800.",
    },
    KeyDoc {
        section: "limits",
        key: "scope",
        doc: "What failures are counted for. \"user\": all of a user's failures, from anywhere. This keeps the bound on guessing whatever addresses an attacker has: with the defaults, 5 wrong codes and then a lockout that doubles from 30 s up to an hour. With the password first in the stack (as packaged), only someone who has the password can cause a lockout. \"user+address\": failures per user and remote address (an IPv6 address counts by its /64; no remote host is one address, \"local\"). One address can then lock a user out only from that address, for stacks that ask for the code before the password. But an attacker gets the same number of guesses again from each address they control.",
    },
    KeyDoc {
        section: "enroll",
        key: "pending_seconds",
        doc: "Seconds a started enrollment waits for its first code before it expires, 1 to 3600.",
    },
    KeyDoc {
        section: "enroll",
        key: "confirm_tries",
        doc: "Wrong first codes before a started enrollment is dropped, 1 to 10.",
    },
    KeyDoc {
        section: "enroll",
        key: "require_account",
        doc: "Whether root may enroll only names the system knows as accounts (NSS: /etc/passwd, LDAP, SSSD; getent passwd NAME). A typo or a file name (\"users\", \"alice.toml\") is refused with an error saying so. false only for tests, or for users that NSS learns of at login.",
    },
    KeyDoc {
        section: "push",
        key: "timeout_seconds",
        doc: "Seconds a number-matching request waits for its approval, 5 to 600.",
    },
    KeyDoc {
        section: "push",
        key: "request_burst",
        doc: "New number-matching requests a user may make at once, 1 to 1000. Past it, and past request_every_seconds, a request is refused (logged, and the requester is asked for a code instead), so a loop of sudo calls cannot flood the approver. While one of the user's requests waits, a new one is refused the same way: a newcomer never ends the waiting request.",
    },
    KeyDoc {
        section: "push",
        key: "request_every_seconds",
        doc: "After the burst, one more request every this many seconds, 1 to 3600.",
    },
    KeyDoc {
        section: "push",
        key: "approver_session",
        doc: "Which login session may approve a request. \"mfa\": a login session of the user that itself passed pam_mfa's second factor (a code, a recovery code or an approval) and is not the one that asks; it needs the session line of pam_mfa (in the packaged sshd snippet and the pam-auth-update profile) so that mfad learns which sessions passed. A cron job, a key-only SSH login, a systemd --user service or a second window of the same session cannot approve. \"different\": any other login session of the user (weaker: someone with the password and a shell approves from a cron job or a key-only SSH login). \"any\": any process of the user, even in the requesting session (weakest: a script approves its own sudo). A test from mfa-approve --test may be answered from any session. mfad keeps the sessions that passed in state_dir/sessions.toml, with the boot's id: a restart of mfad keeps them (a waiting approver still counts), a reboot drops them (audit session ids start again).",
    },
    KeyDoc {
        section: "push",
        key: "allow_root_approval",
        doc: "Whether root may approve another user's request.",
    },
    KeyDoc {
        section: "push",
        key: "show_command",
        doc: "Whether the approver is told the command being run (for sudo: the sudo command line) and the log records it. Off for privacy.",
    },
    KeyDoc {
        section: "push",
        key: "show_remote_host",
        doc: "Whether the approver is told the remote host of an SSH login. Off for privacy.",
    },
    KeyDoc {
        section: "policy",
        key: "require_groups",
        doc: "When not empty, only members of these groups (from NSS, so LDAP and SSSD groups count) must use a second factor.",
    },
    KeyDoc {
        section: "policy",
        key: "exempt_users",
        doc: "Users who never have to use a second factor.",
    },
    KeyDoc {
        section: "policy",
        key: "exempt_groups",
        doc: "Members of these groups never have to use a second factor.",
    },
    KeyDoc {
        section: "policy",
        key: "enroll_deadline",
        doc: "A date \"YYYY-MM-DD\" (UTC). Until then, covered users who have not enrolled pass, with a notice at each login saying how to enroll and until when; from then on they are refused with the same notice. Empty: no grace period. The notice tells whoever passed the first factor that the account is not enrolled: that is the point of a deadline.",
    },
    KeyDoc {
        section: "remember",
        key: "seconds",
        doc: "Seconds a device is remembered for a user after a code from it, 0 to 2592000 (30 days); 0, the default, is off. A device is the SSH public key that authenticated before the code, together with the remote address and the PAM service: the same key from the same address through the same service skips the second factor for this long. What this trusts: whoever holds that private key and comes from that address. Nothing is remembered without a key (password or keyboard-interactive logins, sudo, su), nor after a recovery code. sshd must have ExposeAuthInfo yes (the packaged sshd_config snippet sets it): the key comes from SSH_AUTH_INFO_0 in the PAM environment, never from the process environment, and only in the services of ssh_services.",
    },
    KeyDoc {
        section: "remember",
        key: "ssh_services",
        doc: "The PAM services that are sshd: only there the module reads the SSH key that remembering binds to.",
    },
    KeyDoc {
        section: "bus",
        key: "address",
        doc: "D-Bus address of the bus mfad serves on (the system bus). Only tests set another. Never taken from the environment.",
    },
    KeyDoc {
        section: "bus",
        key: "timeout_ms",
        doc: "Upper bound in milliseconds of every call a client makes to mfad, connecting included, 100 to 60000. The PAM module fails closed (PAM_AUTHINFO_UNAVAIL) past it.",
    },
    KeyDoc {
        section: "bus",
        key: "service_user",
        doc: "The account mfad runs as. Before a client (the PAM module, mfa-enroll, mfa-approve) says anything to mfad, it checks two things. The bus daemon must say that this user owns io.github.pam_mfa (GetConnectionUnixUser). The bus socket's peer (SO_PEERCRED) must be root, messagebus or this user. Otherwise the client refuses, and the module fails closed, so a bus or a name someone else runs is never believed. Only tests set another.",
    },
    KeyDoc {
        section: "store",
        key: "backend",
        doc: "\"file\": one file per user in state_dir, for this host alone. \"postgres\": the database of connection, for every host that uses it: one enrollment, a code accepted once fleet-wide, failures and lockouts counted across hosts.",
    },
    KeyDoc {
        section: "store",
        key: "connection",
        doc: "With backend \"postgres\": a libpq connection string, key=value or postgresql:// URL, e.g. \"host=db1.example,db2.example dbname=mfa user=web1 target_session_attrs=read-write\". Several hosts with target_session_attrs=read-write follow a failover to the new primary. user is this host's role (made by mfa-db add-host); the audit names the host by it. No password here: see password_file.",
    },
    KeyDoc {
        section: "store",
        key: "password_file",
        doc: "A file (mode 0600, owned by the service user) holding the role's password, if the database asks for one. Empty: none (client certificates or peer authentication).",
    },
    KeyDoc {
        section: "store",
        key: "ca_file",
        doc: "PEM file of the CA that signed the database's certificate. When set, TLS is required and the server's name is checked against its certificate (rustls). Empty: no TLS (only for a database on this host's own socket).",
    },
    KeyDoc {
        section: "store",
        key: "client_cert",
        doc: "PEM certificate this host shows the database (for pg_hba's cert method; its CN is the host's role). Needs client_key and ca_file.",
    },
    KeyDoc {
        section: "store",
        key: "client_key",
        doc: "PEM private key of client_cert (mode 0600, owned by the service user).",
    },
    KeyDoc {
        section: "store",
        key: "connect_timeout_ms",
        doc: "Milliseconds to wait for each database server to answer a connection, 100 to 30000.",
    },
    KeyDoc {
        section: "store",
        key: "timeout_ms",
        doc: "Upper bound in milliseconds of every store operation (a code check, an enrollment step), 100 to 60000: past it mfad answers that the store cannot be reached, and the login fails closed. Keep it below [bus] timeout_ms so the user reads why.",
    },
    KeyDoc {
        section: "store",
        key: "pool_size",
        doc: "Database connections mfad keeps open for its work, 1 to 64 (one more waits for challenges).",
    },
    KeyDoc {
        section: "store",
        key: "fallback",
        doc: "While the database cannot be reached: \"none\" refuses every second factor (there is no mode that lets users in); \"local\" checks codes of users enrolled in this host's own file store (state_dir) only: a break-glass account for the administrators, enrolled with mfa-enroll while backend is \"file\". Enrollment and number matching still need the database.",
    },
    KeyDoc {
        section: "web",
        key: "public_url",
        doc: "The address phones open, https://host or https://host:port, with a DNS name (passkeys are bound to it: changing it makes every phone register again). Empty: no phone approver; mfa-enroll --add-phone says so.",
    },
    KeyDoc {
        section: "web",
        key: "listen",
        doc: "The address and port mfa-web listens on (HTTPS only).",
    },
    KeyDoc {
        section: "web",
        key: "certificate",
        doc: "PEM certificate chain of public_url's name, readable by mfa-web's user.",
    },
    KeyDoc {
        section: "web",
        key: "key",
        doc: "PEM private key of certificate (mode 0600 or 0640, owned by root or mfa-web's user).",
    },
    KeyDoc {
        section: "web",
        key: "user",
        doc: "The account mfa-web runs as: mfad answers its interface (io.github.pam_mfa.Web1) to this user and root only.",
    },
    KeyDoc {
        section: "web",
        key: "session_seconds",
        doc: "How long a phone stays signed in to the page, 60 to 3600 seconds; each approval is signed by the passkey anyway.",
    },
    KeyDoc {
        section: "web",
        key: "link_seconds",
        doc: "How long the link of mfa-enroll --add-phone can be used (once), 60 to 1800 seconds.",
    },
    KeyDoc {
        section: "web",
        key: "connection",
        doc: "Fleet mode: mfa-web works on the fleet's database instead of this host's mfad, as a libpq connection string with its own role (made by mfa-db add-web), e.g. \"host=db1.example dbname=mfa user=phones target_session_attrs=read-write\". That role may list requests and answer them only with a user's phone; the database keeps each answer's signature. TLS, timeouts: as [store] says. Empty: mfa-web talks to mfad on the bus.",
    },
    KeyDoc {
        section: "web",
        key: "password_file",
        doc: "Fleet mode: a file (mode 0600, owned by mfa-web's user) holding the password of connection's role, if the database asks for one.",
    },
];

/// The default of `key`, as TOML, from the parser's own defaults
/// (`Config::default()`): the docs cannot say another.
pub fn default_of(key: &KeyDoc) -> String {
    static DEFAULTS: std::sync::OnceLock<toml::Table> = std::sync::OnceLock::new();
    let table = DEFAULTS.get_or_init(|| {
        let text = toml::to_string(&crate::schema::Config::default()).unwrap_or_default();
        toml::from_str(&text).unwrap_or_default()
    });
    let value = match key.section {
        "" => table.get(key.key),
        section => table.get(section).and_then(|s| s.get(key.key)),
    };
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// A commented config file with every key at its default.
pub fn example_toml() -> String {
    let mut out = String::from(
        "# /etc/pam-mfa/config.toml - every key is optional; shown here at its default.\n\
         # Unknown keys and bad values are refused with file:line:column.\n",
    );
    for (section, about) in SECTIONS {
        out.push('\n');
        if !section.is_empty() {
            out.push_str(&format!("# {about}\n[{section}]\n"));
        }
        for key in KEYS.iter().filter(|k| k.section == *section) {
            for line in wrap(key.doc, 76) {
                out.push_str(&format!("# {line}\n"));
            }
            out.push_str(&format!("#{} = {}\n", key.key, default_of(key)));
        }
    }
    out
}

/// Word-wraps `text` at `width` columns.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Config;
    use std::path::Path;

    #[test]
    fn every_documented_key_parses_with_its_documented_default() {
        let uncommented: String = example_toml()
            .lines()
            .map(|l| l.strip_prefix('#').filter(|r| r.contains(" = ")).unwrap_or(l))
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        let parsed = Config::parse(Path::new("example.toml"), &uncommented).unwrap();
        assert_eq!(parsed, Config::default(), "{uncommented}");
    }

    #[test]
    fn every_numeric_key_says_the_range_the_parser_allows() {
        for key in KEYS.iter().filter(|k| default_of(k).parse::<i64>().is_ok()) {
            let header =
                if key.section.is_empty() { String::new() } else { format!("[{}]\n", key.section) };
            let text = format!("{header}{} = -1\n", key.key);
            let err = Config::parse(Path::new("x.toml"), &text).unwrap_err();
            let range = err
                .message
                .split("allowed is ")
                .nth(1)
                .map(|r| r.trim_end_matches('.').trim().to_string())
                .unwrap_or_else(|| panic!("{}: {}", key.key, err.message));
            assert!(
                key.doc.contains(&range),
                "[{}] {}: the parser allows {range}; the doc says: {}",
                key.section,
                key.key,
                key.doc
            );
        }
    }

    #[test]
    fn every_key_of_the_schema_is_documented() {
        for (section, _) in SECTIONS {
            let text = if section.is_empty() {
                "zzz_not_a_key = 1".to_string()
            } else {
                format!("[{section}]\nzzz_not_a_key = 1")
            };
            let err = Config::parse(Path::new("x.toml"), &text).unwrap_err();
            let expected: Vec<&str> =
                err.message.split('`').skip(3).step_by(2).map(str::trim).collect();
            let mut documented: Vec<&str> =
                KEYS.iter().filter(|k| k.section == *section).map(|k| k.key).collect();
            if section.is_empty() {
                documented.extend(SECTIONS.iter().filter(|(s, _)| !s.is_empty()).map(|(s, _)| *s));
            }
            assert!(!expected.is_empty(), "{}", err.message);
            let (mut a, mut b) = (expected.clone(), documented.clone());
            a.sort();
            b.sort();
            assert_eq!(a, b, "section [{section}]: {}", err.message);
        }
    }
}
