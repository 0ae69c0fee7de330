//! mfa-enroll — set up the second factor (minimal administrator path).

use std::path::PathBuf;
use std::process::ExitCode;

use pam_mfa_config::client::Client;
use pam_mfa_config::names;
use pam_mfa_config::schema::Config;

const HELP: &str = "\
mfa-enroll - enroll a user's authenticator app with pam-mfa

Usage: mfa-enroll --user NAME [--config PATH]
       mfa-enroll --reset NAME [--config PATH]

As root: --user NAME gives NAME a new secret (replacing any) and prints the
otpauth URI to put in the authenticator app. --reset NAME removes NAME's
enrollment.

Options:
  --user NAME     enroll NAME (root only)
  --reset NAME    remove NAME's enrollment (root only)
  --config PATH   config file (default /etc/pam-mfa/config.toml)
  --help          this text

Exit status: 0 done, 1 refused or failed (the message says why),
2 bad usage, 3 mfad not reachable.";

enum Action {
    Enroll(String),
    Reset(String),
}

fn main() -> ExitCode {
    let mut action = None;
    let mut config_path: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or(format!("{flag} needs a value"));
        let step = match arg.as_str() {
            "--help" | "-h" => {
                println!("{HELP}");
                return ExitCode::SUCCESS;
            }
            "--user" => value("--user").map(|v| action = Some(Action::Enroll(v))),
            "--reset" => value("--reset").map(|v| action = Some(Action::Reset(v))),
            "--config" => value("--config").map(|v| config_path = Some(PathBuf::from(v))),
            other => Err(format!("unknown argument {other:?}")),
        };
        if let Err(problem) = step {
            return usage(&problem);
        }
    }
    let Some(action) = action else {
        return usage("say what to do: --user NAME or --reset NAME");
    };
    let config = match &config_path {
        Some(path) => Config::load(path),
        None => Config::load_or_default(std::path::Path::new(names::DEFAULT_CONFIG_PATH)),
    };
    let config = match config {
        Ok(config) => config,
        Err(e) => {
            eprintln!("mfa-enroll: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut client = match Client::from_config(&config) {
        Ok(client) => client,
        Err(e) => return failed(&e),
    };
    match action {
        Action::Enroll(user) => match client.enroll(&user) {
            Ok(uri) => {
                println!("{uri}");
                ExitCode::SUCCESS
            }
            Err(e) => failed(&e),
        },
        Action::Reset(user) => match client.reset(&user) {
            Ok(true) => {
                println!("{user}: enrollment removed");
                ExitCode::SUCCESS
            }
            Ok(false) => {
                println!("{user}: was not enrolled");
                ExitCode::SUCCESS
            }
            Err(e) => failed(&e),
        },
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("mfa-enroll: {problem}\nTry 'mfa-enroll --help'.");
    ExitCode::from(2)
}

fn failed(e: &pam_mfa_config::client::ClientError) -> ExitCode {
    eprintln!("mfa-enroll: {e}");
    match e {
        pam_mfa_config::client::ClientError::Unavailable(_) => ExitCode::from(3),
        pam_mfa_config::client::ClientError::Refused(_) => ExitCode::FAILURE,
    }
}
