//! mfa-enroll — set up the second factor: a QR code for the authenticator
//! app, a first code that proves it works, recovery codes.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use pam_mfa_config::client::{Client, ClientError, MfaError};
use pam_mfa_config::names;
use pam_mfa_config::schema::Config;
use pam_mfa_daemon::qr::{self, Style};
use pam_mfa_daemon::timefmt::utc;
use serde_json::json;

const HELP: &str = "\
mfa-enroll - set up the authenticator app that pam-mfa asks codes from

Usage: mfa-enroll [OPTIONS]

Without options, sets up your authenticator app: shows a QR code to scan
(and the key to type in by hand), asks for the code the app then shows, and
only when it is right turns the second factor on and shows recovery codes.

Options:
  --replace              replace your enrollment (new phone, new app); asks
                         for a current code or a recovery code first
  --new-recovery-codes   replace your recovery codes; asks for a current code
  --forget-devices       forget every remembered device (remote address that
                         may skip the second factor, see [remember] in
                         pam-mfa.toml(5)) of yours, or of --user NAME (root)
  --import-google-authenticator PATH
                         take over a ~/.google_authenticator file (its secret,
                         window, rate limit; scratch codes become recovery
                         codes), so the app entry you have keeps working
  --status [NAME]        say whether you (or NAME) are enrolled, since when,
                         how many recovery codes are left
  --list                 list enrolled users (root)
  --user NAME            act for NAME instead of yourself (root): enroll,
                         --replace without a code, --status, --import-…
  --reset NAME           remove NAME's enrollment, e.g. a lost phone (root)
  --qr=utf8|ascii|none   how to draw the QR code (default utf8: half blocks,
                         black on white; ascii: '#' characters; none: no code)
  --json                 machine-readable output, one JSON object per line;
                         while enrolling, codes are read one per line from
                         standard input
  --config PATH          config file (default /etc/pam-mfa/config.toml)
  --help                 this text
  --version              the version

Exit status:
  0  done
  1  refused: wrong code, already enrolled, not allowed, expired, ...
  2  bad usage
  3  mfad is not reachable (is it running? is the bus policy installed?)
  4  another failure (unreadable config or file, no terminal to ask on)";

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
}

struct Options {
    action: Action,
    user: Option<String>,
    replace: bool,
    qr: Option<Style>,
    json: bool,
    config: Option<PathBuf>,
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

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        match e {
            ClientError::Unavailable(m) => Failure {
                status: 3,
                message: format!(
                    "mfad is not reachable ({m}); ask an administrator to start it (systemctl start mfad)"
                ),
                name: "Unavailable",
            },
            ClientError::Refused(e) => {
                let name = match &e {
                    MfaError::AccessDenied(_) => "AccessDenied",
                    MfaError::InvalidArgument(_) => "InvalidArgument",
                    MfaError::AlreadyEnrolled(_) => "AlreadyEnrolled",
                    MfaError::ProofRefused(_) => "ProofRefused",
                    MfaError::NotEnrolled(_) => "NotEnrolled",
                    MfaError::NoPendingEnrollment(_) => "NoPendingEnrollment",
                    MfaError::PendingExpired(_) => "PendingExpired",
                    MfaError::WrongCode(_) => "WrongCode",
                    MfaError::NoSuchChallenge(_)
                    | MfaError::ChallengeEnded(_)
                    | MfaError::SameSession(_)
                    | MfaError::Internal(_)
                    | MfaError::ZBus(_) => "Failed",
                };
                let message = match &e {
                    MfaError::AccessDenied(_) => {
                        "only root may do this for another user".to_string()
                    }
                    other => other.message(),
                };
                Failure { status: if name == "Failed" { 4 } else { 1 }, message, name }
            }
        }
    }
}

fn parse_args() -> Result<Options, Failure> {
    let mut options = Options {
        action: Action::Enroll,
        user: None,
        replace: false,
        qr: Some(Style::Utf8),
        json: false,
        config: None,
    };
    let mut action = None;
    let mut set = |a: Action| -> Result<(), Failure> {
        match action.replace(a) {
            None => Ok(()),
            Some(_) => Err(Failure::usage("give one of --new-recovery-codes, --forget-devices, --import-google-authenticator, --status, --list, --reset")),
        }
    };
    let mut args = std::env::args().skip(1).peekable();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, Failure> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args.next().ok_or_else(|| Failure::usage(format!("{name} needs a value"))),
            }
        };
        match flag.as_str() {
            "--help" | "-h" => {
                println!("{HELP}");
                std::process::exit(0);
            }
            "--version" => {
                println!("mfa-enroll {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            "--replace" => options.replace = true,
            "--json" => options.json = true,
            "--new-recovery-codes" => set(Action::NewRecoveryCodes)?,
            "--forget-devices" => set(Action::ForgetDevices)?,
            "--list" => set(Action::List)?,
            "--import-google-authenticator" => {
                let path = value("--import-google-authenticator")?;
                set(Action::Import(PathBuf::from(path)))?;
            }
            "--status" => {
                set(Action::Status)?;
                if inline.is_some() {
                    options.user = inline.clone();
                } else if args.peek().is_some_and(|next| !next.starts_with("--")) {
                    options.user = args.next();
                }
            }
            "--reset" => {
                let name = value("--reset")?;
                set(Action::Reset(name))?;
            }
            "--user" => options.user = Some(value("--user")?),
            "--config" => options.config = Some(PathBuf::from(value("--config")?)),
            "--qr" => {
                options.qr = match value("--qr")?.as_str() {
                    "utf8" => Some(Style::Utf8),
                    "ascii" => Some(Style::Ascii),
                    "none" => None,
                    other => {
                        return Err(Failure::usage(format!(
                            "--qr={other}: use utf8, ascii or none"
                        )))
                    }
                }
            }
            other => return Err(Failure::usage(format!("unknown argument {other:?}"))),
        }
    }
    if let Some(a) = action {
        options.action = a;
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(f) => {
            eprintln!("mfa-enroll: {}\nTry 'mfa-enroll --help'.", f.message);
            return ExitCode::from(f.status);
        }
    };
    let json = options.json;
    match run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if json {
                println!("{}", json!({"error": f.name, "message": f.message}));
            } else {
                eprintln!("mfa-enroll: {}", f.message);
            }
            ExitCode::from(f.status)
        }
    }
}

/// The name of the user running this program (from the kernel's uid, not
/// from the environment).
fn invoking_user() -> Result<String, Failure> {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .ok_or_else(|| Failure::other("cannot find the name of the user running mfa-enroll"))
}

fn run(options: Options) -> Result<(), Failure> {
    let config = match &options.config {
        Some(path) => Config::load(path),
        None => Config::load_or_default(std::path::Path::new(names::DEFAULT_CONFIG_PATH)),
    }
    .map_err(|e| Failure::other(e.to_string()))?;
    let mut client = Client::from_config(&config)?;
    let me = invoking_user()?;
    let user = options.user.clone().unwrap_or_else(|| me.clone());
    let out = Output { json: options.json };
    match &options.action {
        Action::Enroll => enroll(&mut client, &options, &user, &out),
        Action::NewRecoveryCodes => {
            let proof = if nix::unistd::getuid().is_root() {
                String::new()
            } else {
                ask(&out, "Current code from your authenticator app: ")?
            };
            let codes = client.new_recovery_codes(&user, &proof)?;
            out.recovery_codes(&user, &codes, "recovery_codes");
            Ok(())
        }
        Action::Import(path) => import(&mut client, &options, &user, path, &out),
        Action::ForgetDevices => {
            let count = client.forget_devices(&user)?;
            if out.json {
                println!("{}", json!({"user": user, "forgotten": count}));
            } else {
                println!("{user}: {count} remembered devices forgotten; every login asks again.");
            }
            Ok(())
        }
        Action::Status => {
            let s = client.status(&user)?;
            if out.json {
                println!(
                    "{}",
                    json!({"user": user, "enrolled": s.enrolled, "enrolled_at": s.enrolled_at,
                           "recovery_codes_left": s.recovery_left, "pending": s.pending,
                           "locked_for": s.locked_for})
                );
            } else if s.enrolled {
                println!(
                    "{user} is enrolled since {}; {} recovery codes left.",
                    utc(s.enrolled_at),
                    s.recovery_left
                );
                if s.locked_for > 0 {
                    println!("Locked out for {} more seconds after wrong codes.", s.locked_for);
                }
            } else {
                println!("{user} is not enrolled. Run mfa-enroll to set up the authenticator app.");
            }
            Ok(())
        }
        Action::List => {
            let users = client.list_users()?;
            if out.json {
                let list: Vec<_> =
                    users.iter().map(|(u, t)| json!({"user": u, "enrolled_at": t})).collect();
                println!("{}", json!({ "users": list }));
            } else if users.is_empty() {
                println!("No user is enrolled.");
            } else {
                for (u, t) in users {
                    println!("{u}\tenrolled {}", utc(t));
                }
            }
            Ok(())
        }
        Action::Reset(name) => {
            let removed = client.reset(name)?;
            if out.json {
                println!("{}", json!({"user": name, "removed": removed}));
            } else if removed {
                println!("{name}: enrollment removed. They can enroll again with mfa-enroll.");
            } else {
                println!("{name} was not enrolled.");
            }
            Ok(())
        }
    }
}

struct Output {
    json: bool,
}

impl Output {
    fn recovery_codes(&self, user: &str, codes: &[String], key: &str) {
        if self.json {
            println!("{}", json!({"event": "enrolled", "user": user, key: codes}));
            return;
        }
        println!("\nYour recovery codes. Each one works once, in place of a code, if you");
        println!("lose your phone:\n");
        for pair in codes.chunks(2) {
            println!("    {}", pair.join("    "));
        }
        println!("\nStore them offline: print them, or keep them in a password manager.");
        println!("They are not shown again (mfa-enroll --new-recovery-codes makes new ones).");
    }
}

/// Asks for one line; in JSON mode or without a terminal, just reads it.
fn ask(out: &Output, prompt: &str) -> Result<String, Failure> {
    let stdin = std::io::stdin();
    if !out.json {
        print!("{prompt}");
        let _ = std::io::stdout().flush();
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line).map_err(|e| Failure::other(e.to_string()))?;
    if read == 0 {
        return Err(Failure::other(if std::io::stdin().is_terminal() {
            "no answer given"
        } else {
            "standard input ended before a code was given"
        }));
    }
    Ok(line.trim().to_string())
}

fn enroll(client: &mut Client, options: &Options, user: &str, out: &Output) -> Result<(), Failure> {
    let root = nix::unistd::getuid().is_root();
    let status = client.status(user)?;
    if status.enrolled && !options.replace {
        let message = format!(
            "{user} is already enrolled (since {}). To replace the app: mfa-enroll --replace \
             (asks for a current code or a recovery code). Lost the phone and the recovery \
             codes? An administrator can reset: mfa-enroll --reset {user}",
            utc(status.enrolled_at)
        );
        return Err(Failure::refused("AlreadyEnrolled", message));
    }
    let proof = if status.enrolled && !root {
        ask(out, "Current code from your authenticator app (or a recovery code): ")?
    } else {
        String::new()
    };
    let (uri, account, expires_in) = client.begin(user, options.replace, &proof)?;
    let secret = uri
        .split("secret=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .unwrap_or_default()
        .to_string();
    if out.json {
        println!(
            "{}",
            json!({"event": "begin", "user": user, "account": account, "uri": uri,
                   "secret": secret, "expires_in": expires_in})
        );
    } else {
        let shown = format!("{} ({account})", config_issuer(&uri));
        show_setup(options.qr, &uri, &secret, &shown, expires_in)?;
    }
    for attempt in 1..=CONFIRM_TRIES {
        let code = ask(out, "Enter the code the app shows now: ")?;
        match client.confirm(user, &code) {
            Ok(codes) => {
                if !out.json {
                    println!("\nThe app works: the second factor is on for {user}.");
                }
                out.recovery_codes(user, &codes, "recovery_codes");
                if !out.json {
                    println!(
                        "\nNext time you sign in (ssh, sudo) you are asked for a verification"
                    );
                    println!("code: open the app and type the code it shows for {account}.");
                }
                return Ok(());
            }
            Err(ClientError::Refused(MfaError::WrongCode(message))) if attempt < CONFIRM_TRIES => {
                if out.json {
                    println!("{}", json!({"event": "wrong_code", "message": message}));
                } else {
                    println!("That code is not right: {message}.");
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Failure::refused("WrongCode", "no right code given: run mfa-enroll again"))
}

fn show_setup(
    style: Option<Style>,
    uri: &str,
    secret: &str,
    account: &str,
    expires_in: u64,
) -> Result<(), Failure> {
    println!("1. In your authenticator app, add an account and scan this QR code:\n");
    if let Some(style) = style {
        print!("{}", qr::render(uri, style).map_err(Failure::other)?);
    }
    let groups: Vec<String> =
        secret.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    println!("\n   Or type the key by hand (time-based): {}", groups.join(" "));
    println!("   The app will show it as:             {account}");
    println!("   URI: {uri}\n");
    println!("2. This setup waits {} for the first code.", duration(expires_in));
    Ok(())
}

fn import(
    client: &mut Client,
    options: &Options,
    user: &str,
    path: &PathBuf,
    out: &Output,
) -> Result<(), Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::other(format!("cannot read {}: {e}", path.display())))?;
    let root = nix::unistd::getuid().is_root();
    let status = client.status(user)?;
    let proof = if status.enrolled && options.replace && !root {
        ask(out, "Current code from your authenticator app (or a recovery code): ")?
    } else {
        String::new()
    };
    let count = client.import_google_authenticator(user, &text, options.replace, &proof)?;
    if out.json {
        println!("{}", json!({"event": "imported", "user": user, "recovery_codes": count}));
    } else {
        println!(
            "Imported {}: {user} keeps the same app entry; {count} scratch codes are now recovery codes.",
            path.display()
        );
        println!("You can delete {} once you have signed in with pam-mfa.", path.display());
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

fn duration(seconds: u64) -> String {
    if seconds >= 120 {
        format!("{} minutes", seconds / 60)
    } else {
        format!("{seconds} seconds")
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
