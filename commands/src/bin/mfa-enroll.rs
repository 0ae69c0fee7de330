//! mfa-enroll — set up the second factor: a QR code for the authenticator
//! app, a first code that proves it works, recovery codes.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use pam_mfa_client::{Client, ClientError, MfaError, Refusals};
use pam_mfa_commands::qr::{self, Style};
use pam_mfa_config::cli::{self, Opt};
use pam_mfa_config::i18n::{self, Texts};
use pam_mfa_config::schema::Config;
use pam_mfa_config::{say, say_part};
use pam_mfa_protocol::timefmt::utc;
use pam_mfa_protocol::wire::ChallengeOutcome;
use serde_json::json;

/// mfad bounds the wrong first codes (`[enroll] confirm_tries`, at most 10)
/// and drops the enrollment after the last; this only guards the loop.
const CONFIRM_TRIES: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Enroll,
    NewRecoveryCodes,
    ForgetDevices,
    Import(PathBuf),
    Status,
    List,
    Reset(String),
    UnblockPush(String),
    AddPhone,
    Phones,
    RemovePhone(String),
}

struct Options {
    action: Action,
    user: Option<String>,
    replace: bool,
    qr: Option<Style>,
    json: bool,
}

/// A failure, with the exit status it maps to.
struct Failure {
    status: u8,
    message: String,
    name: &'static str,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure { status: 2, message: message.into(), name: "Usage" }
    }
    fn other(message: impl Into<String>) -> Failure {
        Failure { status: 4, message: message.into(), name: "Failed" }
    }
    fn refused(name: &'static str, message: impl Into<String>) -> Failure {
        Failure { status: 1, message: message.into(), name }
    }
}

impl Failure {
    /// What mfad (or its absence) refused, in the user's language.
    fn from_client(t: &Texts, e: ClientError) -> Failure {
        match e {
            ClientError::Unavailable(m) => {
                Failure { status: 3, message: t.refusal_unavailable(m), name: "Unavailable" }
            }
            ClientError::Refused(e) => {
                // Refusals of what was asked keep their name (status 1);
                // anything else is a failure (status 4).
                let refusal = matches!(
                    e,
                    MfaError::AccessDenied(_)
                        | MfaError::InvalidArgument(_)
                        | MfaError::AlreadyEnrolled { .. }
                        | MfaError::ProofRefused
                        | MfaError::LockedOut { .. }
                        | MfaError::NotEnrolled
                        | MfaError::NoPendingEnrollment
                        | MfaError::PendingExpired
                        | MfaError::WrongCode { .. }
                );
                let name = e.short_name().filter(|_| refusal).unwrap_or("Failed");
                let message = t.refusal(&e);
                Failure { status: if name == "Failed" { 4 } else { 1 }, message, name }
            }
        }
    }
}

const OPTIONS: &[Opt] = &[
    cli::HELP,
    cli::VERSION,
    cli::CONFIG,
    Opt::flag("--replace"),
    Opt::flag("--json"),
    Opt::flag("--new-recovery-codes"),
    Opt::flag("--forget-devices"),
    Opt::flag("--list"),
    Opt::value("--import-google-authenticator"),
    Opt::optional("--status"),
    Opt::value("--reset"),
    Opt::value("--unblock-push"),
    Opt::flag("--add-phone"),
    Opt::flag("--phones"),
    Opt::value("--remove-phone"),
    Opt::value("--user"),
    Opt::value("--qr"),
];

fn parse_args(t: &Texts, raw: &[String]) -> Result<Options, Failure> {
    let mut options = Options {
        action: Action::Enroll,
        user: None,
        replace: false,
        qr: Some(Style::Utf8),
        json: false,
    };
    let mut action = None;
    let mut set = |a: Action| -> Result<(), Failure> {
        match action.replace(a) {
            None => Ok(()),
            Some(_) => Err(Failure::usage(t.enroll_one_action())),
        }
    };
    let given = cli::parse(OPTIONS, raw).map_err(|p| Failure::usage(p.said(t)))?;
    for (name, value) in given {
        // Options that take a value have one here (the parser saw to it).
        let value = value.unwrap_or_default();
        match name {
            "--help" => {
                say!("{}", t.help_enroll());
                std::process::exit(0);
            }
            "--version" => {
                say!("mfa-enroll {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            "--replace" => options.replace = true,
            "--json" => options.json = true,
            "--new-recovery-codes" => set(Action::NewRecoveryCodes)?,
            "--forget-devices" => set(Action::ForgetDevices)?,
            "--list" => set(Action::List)?,
            "--import-google-authenticator" => set(Action::Import(PathBuf::from(value)))?,
            "--status" => {
                set(Action::Status)?;
                if !value.is_empty() {
                    options.user = Some(value);
                }
            }
            "--reset" => set(Action::Reset(value))?,
            "--unblock-push" => set(Action::UnblockPush(value))?,
            "--add-phone" => set(Action::AddPhone)?,
            "--phones" => set(Action::Phones)?,
            "--remove-phone" => set(Action::RemovePhone(value))?,
            "--user" => options.user = Some(value),
            "--qr" => {
                options.qr = match value.as_str() {
                    "utf8" => Some(Style::Utf8),
                    "ascii" => Some(Style::Ascii),
                    "none" => None,
                    other => return Err(Failure::usage(t.enroll_bad_qr(other))),
                }
            }
            _ => {} // --config: read first (cli::config_path), for its language
        }
    }
    if let Some(a) = action {
        options.action = a;
    }
    Ok(options)
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    // The config first: its language key decides what the user reads
    // ("auto": this process's locale). A config error is said after the
    // arguments are read, so --help works with a broken config.
    let config = Config::load_given(cli::config_path(&raw).as_deref());
    let language = config.as_ref().map_or(i18n::AUTO, |c| c.language.as_str());
    let t = Texts::for_process(language);
    let options = match parse_args(&t, &raw) {
        Ok(options) => options,
        Err(f) => {
            eprintln!("mfa-enroll: {}\n{}", f.message, t.enroll_try_help());
            return ExitCode::from(f.status);
        }
    };
    let json = options.json;
    let result = config
        .map_err(|e| Failure::other(e.to_string()))
        .and_then(|config| run(&t, options, &config));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if json {
                say!("{}", json!({"error": f.name, "message": f.message}));
            } else {
                eprintln!("mfa-enroll: {}", f.message);
            }
            ExitCode::from(f.status)
        }
    }
}

/// The name of the user running this program (from the kernel's uid, not
/// from the environment).
fn invoking_user(t: &Texts) -> Result<String, Failure> {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .ok_or_else(|| Failure::other(t.enroll_no_user_name()))
}

fn run(t: &Texts, options: Options, config: &Config) -> Result<(), Failure> {
    let refused = |e| Failure::from_client(t, e);
    let mut client = Client::from_config(&config.bus).map_err(refused)?;
    let me = invoking_user(t)?;
    let user = options.user.clone().unwrap_or_else(|| me.clone());
    let out = Output { json: options.json, t };
    match &options.action {
        Action::Enroll => enroll(&mut client, &options, &user, &out),
        Action::NewRecoveryCodes => {
            let proof = if nix::unistd::getuid().is_root() {
                String::new()
            } else {
                out.ask(&t.enroll_ask_current())?
            };
            let codes = client.new_recovery_codes(&user, &proof).map_err(refused)?;
            out.recovery_codes(&user, &codes, "recovery_codes");
            Ok(())
        }
        Action::Import(path) => import(&mut client, &options, &user, path, &out),
        Action::AddPhone => add_phone(&mut client, &options, &user, &out),
        Action::Phones => {
            let phones = client.phones(&user).map_err(refused)?;
            if out.json {
                let list: Vec<_> = phones
                    .iter()
                    .map(|(id, name, added, used)| {
                        json!({"id": id, "name": name, "added_at": added, "last_used": used})
                    })
                    .collect();
                say!("{}", json!({"user": user, "phones": list}));
            } else if phones.is_empty() {
                say!("{}", t.enroll_phones_none(&user));
            } else {
                for (id, name, added, used) in &phones {
                    let used = if *used == 0 { t.enroll_phone_never() } else { utc(*used) };
                    say!("{}", t.enroll_phone_line(name, utc(*added), used, id));
                }
            }
            Ok(())
        }
        Action::RemovePhone(phone) => {
            if client.remove_phone(&user, phone).map_err(refused)? {
                say!("{}", t.enroll_phone_removed(&user, phone));
                Ok(())
            } else {
                Err(Failure::refused("NoSuchPhone", t.enroll_phone_not_found(&user, phone)))
            }
        }
        Action::ForgetDevices => {
            let count = client.forget_devices(&user).map_err(refused)?;
            if out.json {
                say!("{}", json!({"user": user, "forgotten": count}));
            } else {
                say!("{}", t.enroll_forgotten(&user, count));
            }
            Ok(())
        }
        Action::Status => {
            let s = client.status(&user).map_err(refused)?;
            if out.json {
                say!(
                    "{}",
                    json!({"user": user, "enrolled": s.enrolled, "enrolled_at": s.enrolled_at,
                           "recovery_codes_left": s.recovery_left, "pending": s.pending,
                           "locked_for": s.locked_for})
                );
            } else if s.enrolled {
                say!("{}", t.enroll_status_enrolled(&user, utc(s.enrolled_at), s.recovery_left));
                if s.locked_for > 0 {
                    say!("{}", t.enroll_status_locked(s.locked_for));
                }
            } else {
                say!("{}", t.enroll_status_not_enrolled(&user));
            }
            Ok(())
        }
        Action::List => {
            let users = client.list_users().map_err(refused)?;
            if out.json {
                let list: Vec<_> =
                    users.iter().map(|(u, t)| json!({"user": u, "enrolled_at": t})).collect();
                say!("{}", json!({ "users": list }));
            } else if users.is_empty() {
                say!("{}", t.enroll_list_empty());
            } else {
                for (u, since) in users {
                    say!("{}", t.enroll_list_line(u, utc(since)));
                }
            }
            Ok(())
        }
        Action::Reset(name) => {
            let removed = client.reset(name).map_err(refused)?;
            if out.json {
                say!("{}", json!({"user": name, "removed": removed}));
            } else if removed {
                say!("{}", t.enroll_reset_done(name));
            } else {
                say!("{}", t.enroll_reset_not_enrolled(name));
            }
            Ok(())
        }
        Action::UnblockPush(name) => {
            let was = client.unblock_push(name).map_err(refused)?;
            if out.json {
                say!("{}", json!({"user": name, "was_blocked": was}));
            } else if was {
                say!("{}", t.enroll_unblocked(name));
            } else {
                say!("{}", t.enroll_not_blocked(name));
            }
            Ok(())
        }
    }
}

/// Where results go: the terminal in the user's language, or JSON lines.
struct Output<'a> {
    json: bool,
    t: &'a Texts,
}

impl Output<'_> {
    fn recovery_codes(&self, user: &str, codes: &[String], key: &str) {
        if self.json {
            say!("{}", json!({"event": "enrolled", "user": user, key: codes}));
            return;
        }
        say!("\n{}\n", self.t.enroll_recovery_intro());
        for pair in codes.chunks(2) {
            say!("    {}", pair.join("    "));
        }
        say!("\n{}", self.t.enroll_recovery_outro());
    }

    /// Asks for one line; in JSON mode or without a terminal, just reads it.
    fn ask(&self, prompt: &str) -> Result<String, Failure> {
        let stdin = std::io::stdin();
        if !self.json {
            say_part!("{prompt}");
            let _ = std::io::stdout().flush();
        }
        let mut line = String::new();
        let read = stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::other(self.t.enroll_read_failed(e)))?;
        if read == 0 {
            return Err(Failure::other(if std::io::stdin().is_terminal() {
                self.t.enroll_no_answer()
            } else {
                self.t.enroll_input_ended()
            }));
        }
        Ok(line.trim().to_string())
    }
}

fn enroll(client: &mut Client, options: &Options, user: &str, out: &Output) -> Result<(), Failure> {
    let t = out.t;
    let refused = |e| Failure::from_client(t, e);
    let root = nix::unistd::getuid().is_root();
    let status = client.status(user).map_err(refused)?;
    if status.enrolled && !options.replace {
        let message = t.enroll_already_enrolled(user, utc(status.enrolled_at));
        return Err(Failure::refused("AlreadyEnrolled", message));
    }
    let proof = if status.enrolled && !root {
        out.ask(&t.enroll_ask_current_or_recovery())?
    } else {
        String::new()
    };
    let (uri, account, expires_in) =
        client.begin(user, options.replace, &proof).map_err(refused)?;
    let secret = uri
        .split("secret=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .unwrap_or_default()
        .to_string();
    if out.json {
        say!(
            "{}",
            json!({"event": "begin", "user": user, "account": account, "uri": uri,
                   "secret": secret, "expires_in": expires_in})
        );
    } else {
        let shown = format!("{} ({account})", config_issuer(&uri));
        show_setup(t, options.qr, &uri, &secret, &shown, expires_in)?;
    }
    for attempt in 1..=CONFIRM_TRIES {
        let code = out.ask(&t.enroll_ask_first_code())?;
        match client.confirm(user, &code) {
            Ok(codes) => {
                if !out.json {
                    say!("\n{}", t.enroll_works(user));
                }
                out.recovery_codes(user, &codes, "recovery_codes");
                if !out.json {
                    say!("\n{}", t.enroll_next_time(&account));
                }
                return Ok(());
            }
            Err(ClientError::Refused(e @ MfaError::WrongCode { .. }))
                if attempt < CONFIRM_TRIES =>
            {
                let why = t.refusal(&e);
                if out.json {
                    say!("{}", json!({"event": "wrong_code", "message": why}));
                } else {
                    say!("{}", t.enroll_not_right(why));
                }
            }
            Err(e) => return Err(refused(e)),
        }
    }
    Err(Failure::refused("WrongCode", t.enroll_gave_up()))
}

/// `--add-phone`: a current code, then the link as a QR code; waits for
/// the phone's passkey, shows the test number, and waits for the phone to
/// type it: only then is the phone active.
fn add_phone(
    client: &mut Client,
    options: &Options,
    user: &str,
    out: &Output,
) -> Result<(), Failure> {
    let t = out.t;
    let refused = |e| Failure::from_client(t, e);
    let proof = if nix::unistd::getuid().is_root() {
        String::new()
    } else {
        out.ask(&t.enroll_ask_current())?
    };
    let (link, seconds) = client.add_phone(user, &proof).map_err(refused)?;
    let had = client.phones(user).map_err(refused)?.len();
    if out.json {
        say!(
            "{}",
            json!({"event": "phone_link", "user": user, "link": link, "expires_in": seconds})
        );
    } else {
        say!(
            "{}
",
            t.enroll_phone_scan(duration(t, seconds))
        );
        if let Some(style) = options.qr {
            let drawn =
                qr::render(&link, style).map_err(|e| Failure::other(t.enroll_qr_failed(e)))?;
            say_part!("{drawn}");
        }
        say!("\n   {link}\n");
        say!("{}", t.enroll_phone_waiting());
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    let (id, number, expires_in, name) = loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(Failure::refused("PendingExpired", t.enroll_phone_link_expired()));
        }
        let wait = left.min(std::time::Duration::from_secs(30));
        if let Some(told) = client.wait_phone(&link, wait).map_err(refused)? {
            break told;
        }
    };
    if out.json {
        say!(
            "{}",
            json!({"event": "phone_test", "id": id, "number": number, "name": name, "expires_in": expires_in})
        );
    } else {
        say!("\n{}\n\n        {number}\n", t.enroll_phone_test(&name));
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(expires_in + 1);
    let outcome = loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        let outcome =
            client.wait_test(&id, left.min(std::time::Duration::from_secs(30))).map_err(refused)?;
        if outcome != ChallengeOutcome::Pending || left.is_zero() {
            break outcome;
        }
    };
    // mfad keeps the phone right after it takes the approval (which wakes
    // us first): see that it did, for at most two seconds.
    let mut kept = false;
    if outcome == ChallengeOutcome::Approved {
        for _ in 0..20 {
            kept = client.phones(user).map_err(refused)?.len() > had;
            if kept {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    if kept {
        if out.json {
            say!("{}", json!({"event": "phone_added", "user": user, "name": name}));
        } else {
            say!("{}", t.enroll_phone_ready(&name, user));
        }
        Ok(())
    } else {
        Err(Failure::refused("PhoneNotAdded", t.enroll_phone_not_added(outcome.as_str())))
    }
}

fn show_setup(
    t: &Texts,
    style: Option<Style>,
    uri: &str,
    secret: &str,
    account: &str,
    expires_in: u64,
) -> Result<(), Failure> {
    say!("{}\n", t.enroll_step_scan());
    if let Some(style) = style {
        let drawn = qr::render(uri, style).map_err(|e| Failure::other(t.enroll_qr_failed(e)))?;
        say_part!("{drawn}");
    }
    let groups: Vec<String> =
        secret.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    // The key and the account line up; the long URI has a line of its own.
    let labels = [t.enroll_by_hand(), t.enroll_shown_as()];
    let width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) + 1;
    let [by_hand, shown_as] = labels.map(|l| i18n::pad(&l, width));
    say!("\n   {by_hand}{}", groups.join(" "));
    say!("   {shown_as}{account}");
    say!("   {} {uri}\n", t.enroll_uri());
    say!("{}", t.enroll_step_wait(duration(t, expires_in)));
    Ok(())
}

fn import(
    client: &mut Client,
    options: &Options,
    user: &str,
    path: &PathBuf,
    out: &Output,
) -> Result<(), Failure> {
    let t = out.t;
    let refused = |e| Failure::from_client(t, e);
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::other(t.enroll_cannot_read(path.display(), e)))?;
    let root = nix::unistd::getuid().is_root();
    let status = client.status(user).map_err(refused)?;
    let proof = if status.enrolled && options.replace && !root {
        out.ask(&t.enroll_ask_current_or_recovery())?
    } else {
        String::new()
    };
    let count = client
        .import_google_authenticator(user, &text, options.replace, &proof)
        .map_err(refused)?;
    if out.json {
        say!("{}", json!({"event": "imported", "user": user, "recovery_codes": count}));
    } else {
        say!("{}", t.enroll_imported(path.display(), user, count));
        say!("{}", t.enroll_imported_delete(path.display()));
    }
    Ok(())
}

/// The issuer named in the URI, percent-decoded (what the app shows).
fn config_issuer(uri: &str) -> String {
    let raw = uri.split("issuer=").nth(1).and_then(|s| s.split('&').next()).unwrap_or_default();
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn duration(t: &Texts, seconds: u64) -> String {
    if seconds >= 120 {
        t.enroll_minutes(seconds / 60)
    } else {
        t.enroll_seconds(seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_is_read_back_from_the_uri() {
        let uri = "otpauth://totp/a?secret=X&issuer=pam-mfa%20demo&algorithm=SHA1";
        assert_eq!(config_issuer(uri), "pam-mfa demo");
    }
}
