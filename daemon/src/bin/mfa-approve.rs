//! mfa-approve — the approver: shows who asks to sign in as you and takes
//! the number shown on the requesting screen.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use futures_util::StreamExt;
use pam_mfa_config::client::{ApproverProxy, MfaError};
use pam_mfa_config::names;
use pam_mfa_config::schema::Config;
use pam_mfa_config::wire::{context, ChallengeOutcome};
use pam_mfa_daemon::timefmt::utc;

const HELP: &str = "\
mfa-approve - approve sign-ins by number matching

Usage: mfa-approve [--once] [--config PATH]
       mfa-approve --agent [--config PATH]
       mfa-approve --test [--config PATH]
       mfa-approve --list [--json] [--config PATH]

When you sign in with sudo (or ssh) and pam-mfa shows a number, run
mfa-approve in another session of yours (another terminal, another SSH
login): it rings the bell, shows who asks (service, host, remote host,
terminal, time) and asks for the number. Type the number you see on the
requesting screen to approve, or d to deny. A wrong number ends the request.
By default an approval must come from another login session than the one
that asks, so a script in that session cannot approve its own sudo.

Options:
  --once         handle one request, then exit (0 approved, 1 not)
  --agent        run as your background approver (systemd user unit): stay
                 online for mode=auto and raise a desktop notification for
                 each request; type the number in mfa-approve
  --test         the setup test: ask mfad for a test request, show its
                 number, and wait until you type it in an approver
                 (mfa-approve in another terminal, or your agent's prompt)
  --list         show your pending requests (never their numbers)
  --json         with --list: one JSON object
  --config PATH  config file (default /etc/pam-mfa/config.toml)
  --help         this text
  --version      the version

Exit status: 0 done (approved), 1 not approved (denied, wrong number,
refused, expired), 2 bad usage, 3 mfad not reachable.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Prompt { once: bool },
    Agent,
    Test,
    List { json: bool },
}

fn main() -> ExitCode {
    let mut once = false;
    let mut mode = None;
    let mut json = false;
    let mut config_path: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--help" | "-h" => {
                println!("{HELP}");
                return ExitCode::SUCCESS;
            }
            "--version" => {
                println!("mfa-approve {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            "--once" => once = true,
            "--json" => json = true,
            "--agent" => mode = Some(Mode::Agent),
            "--test" => mode = Some(Mode::Test),
            "--list" => mode = Some(Mode::List { json: false }),
            "--config" => match args.next() {
                Some(path) => config_path = Some(PathBuf::from(path)),
                None => return usage("--config needs a path"),
            },
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    let mode = match mode {
        None => Mode::Prompt { once },
        Some(Mode::List { .. }) => Mode::List { json },
        Some(m) => m,
    };
    let config = match &config_path {
        Some(path) => Config::load(path),
        None => Config::load_or_default(std::path::Path::new(names::DEFAULT_CONFIG_PATH)),
    };
    let config = match config {
        Ok(config) => config,
        Err(e) => {
            eprintln!("mfa-approve: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mfa-approve: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(mode, &config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mfa-approve: {e}");
            ExitCode::from(3)
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("mfa-approve: {problem}\nTry 'mfa-approve --help'.");
    ExitCode::from(2)
}

type Request = (String, HashMap<String, String>, u64);

async fn run(mode: Mode, config: &Config) -> Result<ExitCode, String> {
    let bound = Duration::from_millis(config.bus.timeout_ms.get());
    let address = config.bus.address.as_str();
    let conn = tokio::time::timeout(bound, zbus::connection::Builder::address(address).build())
        .await
        .map_err(|_| format!("no answer from the bus at {address}"))?
        .map_err(|e| format!("cannot reach the bus at {address}: {e}"))?;
    let approver = ApproverProxy::new(&conn).await.map_err(|e| e.to_string())?;
    let within = |what: &'static str| move |_| format!("mfad did not answer {what} in time");
    match mode {
        Mode::List { json } => {
            let pending = tokio::time::timeout(bound, approver.pending())
                .await
                .map_err(within("Pending"))?
                .map_err(describe)?;
            print_list(&pending, json);
            Ok(ExitCode::SUCCESS)
        }
        Mode::Test => {
            let (id, number, expires_in) = tokio::time::timeout(bound, approver.start_test())
                .await
                .map_err(within("StartTest"))?
                .map_err(describe)?;
            println!("Test request made. Type this number in your approver (mfa-approve):");
            println!("\n    {number}\n");
            println!("Waiting up to {expires_in} seconds...");
            let wait = Duration::from_secs(expires_in);
            let wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
            let outcome = tokio::time::timeout(wait + bound, approver.wait_test(&id, wait_ms))
                .await
                .map_err(within("WaitTest"))?
                .map_err(describe)?;
            let outcome = ChallengeOutcome::try_from(outcome).unwrap_or(ChallengeOutcome::Pending);
            if outcome == ChallengeOutcome::Approved {
                println!("It works: the approver got the request and the right number.");
                Ok(ExitCode::SUCCESS)
            } else {
                println!("The test did not pass: {}.", explain(outcome));
                Ok(ExitCode::FAILURE)
            }
        }
        Mode::Prompt { once } => prompt_loop(&approver, bound, once).await,
        Mode::Agent => agent_loop(&approver, bound).await,
    }
}

fn describe(e: MfaError) -> String {
    match e {
        MfaError::ZBus(e) => format!("mfad is not reachable ({e}); is it running?"),
        other => other.message(),
    }
}

fn explain(outcome: ChallengeOutcome) -> &'static str {
    match outcome {
        ChallengeOutcome::Approved => "approved",
        ChallengeOutcome::Denied => "denied",
        ChallengeOutcome::WrongNumber => "a wrong number was typed, so the request was ended",
        ChallengeOutcome::Expired => "nobody answered in time",
        ChallengeOutcome::Superseded => "a newer request replaced it",
        ChallengeOutcome::Cancelled => "the requester gave up",
        ChallengeOutcome::Pending => "still pending",
    }
}

fn print_list(pending: &[Request], json: bool) {
    if json {
        let list: Vec<_> = pending
            .iter()
            .map(
                |(id, ctx, left)| serde_json::json!({"id": id, "context": ctx, "expires_in": left}),
            )
            .collect();
        println!("{}", serde_json::json!({ "pending": list }));
    } else if pending.is_empty() {
        println!("No pending sign-in requests.");
    } else {
        for request in pending {
            print!("{}", describe_request(request));
        }
    }
}

/// Who asks: everything the approver is told (never the number).
fn describe_request((_, ctx, left): &Request) -> String {
    let get = |key: &str| ctx.get(key).filter(|v| !v.is_empty()).cloned();
    let mut text =
        format!("Sign-in request for {}\n", get(context::USER).unwrap_or_else(|| "you".into()));
    let service = get(context::SERVICE).unwrap_or_else(|| "?".into());
    text.push_str(&format!("  service:     {service}\n"));
    if let Some(command) = get(context::COMMAND) {
        text.push_str(&format!("  command:     {command}\n"));
    }
    if let Some(host) = get(context::HOST) {
        text.push_str(&format!("  host:        {host}\n"));
    }
    if let Some(rhost) = get(context::RHOST) {
        text.push_str(&format!("  from:        {rhost}\n"));
    }
    if let Some(tty) = get(context::TTY) {
        text.push_str(&format!("  terminal:    {tty}\n"));
    }
    if let Some(time) = get(context::TIME).and_then(|t| t.parse().ok()) {
        text.push_str(&format!("  time:        {}\n", utc(time)));
    }
    text.push_str(&format!("  expires in:  {left} s\n"));
    text
}

/// Reads one line from standard input (None at its end).
async fn read_line() -> Option<String> {
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        match std::io::stdin().lock().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim().to_string()),
        }
    })
    .await
    .ok()
    .flatten()
}

/// Waits for the next request of this user: one already pending, or the
/// next `ChallengeCreated` signal from mfad.
async fn next_request(
    approver: &ApproverProxy<'_>,
    created: &mut (impl futures_util::Stream<Item = pam_mfa_config::client::ChallengeCreated> + Unpin),
    bound: Duration,
) -> Result<Request, String> {
    let pending = tokio::time::timeout(bound, approver.pending())
        .await
        .map_err(|_| "mfad did not answer Pending in time".to_string())?
        .map_err(describe)?;
    if let Some(first) = pending.into_iter().next() {
        return Ok(first);
    }
    let signal = created.next().await.ok_or("the bus connection ended")?;
    let args = signal.args().map_err(|e| e.to_string())?;
    Ok((args.id().clone(), args.context().clone(), *args.expires_in()))
}

async fn prompt_loop(
    approver: &ApproverProxy<'_>,
    bound: Duration,
    once: bool,
) -> Result<ExitCode, String> {
    let mut created = approver.receive_challenge_created().await.map_err(|e| e.to_string())?;
    let user = tokio::time::timeout(bound, approver.register())
        .await
        .map_err(|_| "mfad did not answer Register in time".to_string())?
        .map_err(describe)?;
    println!("Waiting for sign-in requests for {user} (Ctrl-C to stop)...");
    loop {
        let request = next_request(approver, &mut created, bound).await?;
        print!("\x07\n{}", describe_request(&request));
        let outcome = loop {
            print!("Type the number shown on the requesting screen (or d to deny): ");
            let _ = std::io::stdout().flush();
            let Some(answer) = read_line().await else {
                return Ok(ExitCode::FAILURE);
            };
            let id = request.0.as_str();
            let reply = if answer.eq_ignore_ascii_case("d") || answer.eq_ignore_ascii_case("deny") {
                approver.deny(id).await
            } else if let Ok(number) = answer.parse::<u32>() {
                approver.approve(id, number).await
            } else {
                println!("Type the two-digit number, or d.");
                continue;
            };
            break reply;
        };
        let approved = match outcome {
            Ok(n) => {
                let outcome = ChallengeOutcome::try_from(n).unwrap_or(ChallengeOutcome::Pending);
                match outcome {
                    ChallengeOutcome::Approved => println!("Approved."),
                    ChallengeOutcome::Denied => println!("Denied."),
                    other => println!("Not approved: {}.", explain(other)),
                }
                outcome == ChallengeOutcome::Approved
            }
            Err(e) => {
                println!("Not approved: {}.", describe(e));
                false
            }
        };
        if once {
            return Ok(if approved { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
    }
}

/// The background approver: online for mode=auto, and a desktop
/// notification for each request when a session bus is there.
async fn agent_loop(approver: &ApproverProxy<'_>, bound: Duration) -> Result<ExitCode, String> {
    let mut created = approver.receive_challenge_created().await.map_err(|e| e.to_string())?;
    let user = tokio::time::timeout(bound, approver.register())
        .await
        .map_err(|_| "mfad did not answer Register in time".to_string())?
        .map_err(describe)?;
    println!("mfa-approve agent online for {user}");
    // The desktop's bus, when there is one (a user program: its own
    // environment names it).
    let desktop = tokio::time::timeout(bound, zbus::connection::Builder::session().build())
        .await
        .ok()
        .and_then(Result::ok);
    while let Some(signal) = created.next().await {
        let Ok(args) = signal.args() else { continue };
        let request: Request = (args.id().clone(), args.context().clone(), *args.expires_in());
        let text = describe_request(&request);
        println!("{text}  Type the number in mfa-approve.");
        if let Some(desktop) = &desktop {
            if let Err(e) = notify(desktop, &text, bound).await {
                eprintln!("mfa-approve: no desktop notification: {e}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[zbus::proxy(
    interface = "org.freedesktop.Notifications",
    default_service = "org.freedesktop.Notifications",
    default_path = "/org/freedesktop/Notifications"
)]
trait Notifications {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        app_name: &str,
        replaces_id: u32,
        app_icon: &str,
        summary: &str,
        body: &str,
        actions: &[&str],
        hints: HashMap<&str, zbus::Variant<'_>>,
        expire_timeout: i32,
    ) -> zbus::Result<u32>;
}

async fn notify(desktop: &zbus::Connection, body: &str, bound: Duration) -> Result<(), String> {
    let proxy = NotificationsProxy::new(desktop).await.map_err(|e| e.to_string())?;
    let call = proxy.notify(
        "mfa-approve",
        0,
        "dialog-password",
        "Sign-in request: type the number in mfa-approve",
        body,
        &[],
        HashMap::new(),
        60_000,
    );
    tokio::time::timeout(bound, call)
        .await
        .map_err(|_| "the notification service did not answer".to_string())?
        .map(|_| ())
        .map_err(|e| e.to_string())
}
