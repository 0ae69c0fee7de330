//! mfa-approve — the approver: shows who asks to sign in as you and takes
//! the number shown on the requesting screen.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use futures_util::StreamExt;
use pam_mfa_client::{genuine_owner, ApproverProxy, ChallengeCreatedStream, MfaError, Refusals};
use pam_mfa_config::cli::{self, Opt};
use pam_mfa_config::i18n::{self, Texts};
use pam_mfa_config::schema::Config;
use pam_mfa_config::{say, say_part};
use pam_mfa_protocol::timefmt::utc;
use pam_mfa_protocol::wire::{context, ChallengeOutcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Prompt { once: bool },
    Agent,
    Test,
    List { json: bool },
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    // The config first: its language key decides what the user reads
    // ("auto": this process's locale).
    let config = Config::load_given(cli::config_path(&raw).as_deref());
    let language = config.as_ref().map_or(i18n::AUTO, |c| c.language.as_str());
    let t = Texts::for_process(language);
    let mut once = false;
    let mut mode = None;
    let mut json = false;
    const OPTIONS: &[Opt] = &[
        cli::HELP,
        cli::VERSION,
        cli::CONFIG,
        Opt::flag("--once"),
        Opt::flag("--json"),
        Opt::flag("--agent"),
        Opt::flag("--test"),
        Opt::flag("--list"),
    ];
    let given = match cli::parse(OPTIONS, &raw) {
        Ok(given) => given,
        Err(problem) => return usage(&t, &problem.said(&t)),
    };
    for (name, _) in given {
        match name {
            "--help" => {
                say!("{}", t.help_approve());
                return ExitCode::SUCCESS;
            }
            "--version" => {
                say!("mfa-approve {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            "--once" => once = true,
            "--json" => json = true,
            "--agent" => mode = Some(Mode::Agent),
            "--test" => mode = Some(Mode::Test),
            "--list" => mode = Some(Mode::List { json: false }),
            _ => {} // --config: read first, for its language
        }
    }
    let mode = match mode {
        None => Mode::Prompt { once },
        Some(Mode::List { .. }) => Mode::List { json },
        Some(m) => m,
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
            eprintln!("mfa-approve: {}", t.approve_cannot_start(e));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&t, mode, &config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mfa-approve: {e}");
            ExitCode::from(3)
        }
    }
}

fn usage(t: &Texts, problem: &str) -> ExitCode {
    eprintln!("mfa-approve: {problem}\n{}", t.approve_try_help());
    ExitCode::from(2)
}

type Request = (String, HashMap<String, String>, u64);

async fn run(t: &Texts, mode: Mode, config: &Config) -> Result<ExitCode, String> {
    let bound = Duration::from_millis(config.bus.timeout_ms.get());
    let address = config.bus.address.as_str();
    let service_user = config.bus.service_user.as_str();
    let mfad = tokio::time::timeout(bound, genuine_owner(address, service_user))
        .await
        .map_err(|_| t.approve_no_answer_from_bus(address))?
        .map_err(|e| t.approve_cannot_reach_bus(address, e))?;
    let approver = mfad.approver().await.map_err(|e| t.approve_bus_error(e))?;
    match mode {
        Mode::List { json } => {
            let pending = within(t, bound, "Pending", approver.pending()).await?;
            print_list(t, &pending, json);
            Ok(ExitCode::SUCCESS)
        }
        Mode::Test => {
            let (id, number, expires_in) =
                within(t, bound, "StartTest", approver.start_test()).await?;
            say!("{}", t.approve_test_made());
            say!("\n    {number}\n");
            say!("{}", t.approve_test_waiting(expires_in));
            let wait = Duration::from_secs(expires_in);
            let wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
            let outcome =
                within(t, wait + bound, "WaitTest", approver.wait_test(&id, wait_ms)).await?;
            let outcome = ChallengeOutcome::try_from(outcome).unwrap_or(ChallengeOutcome::Pending);
            if outcome == ChallengeOutcome::Approved {
                say!("{}", t.approve_test_works());
                Ok(ExitCode::SUCCESS)
            } else {
                say!("{}", t.approve_test_failed(explain(t, outcome)));
                Ok(ExitCode::FAILURE)
            }
        }
        Mode::Prompt { once } => prompt_loop(t, &approver, bound, once).await,
        Mode::Agent => agent_loop(t, &approver, bound).await,
    }
}

/// `call` to mfad, bounded by `bound`; a failure said in the user's language.
async fn within<T>(
    t: &Texts,
    bound: Duration,
    call_name: &str,
    call: impl std::future::Future<Output = Result<T, MfaError>>,
) -> Result<T, String> {
    tokio::time::timeout(bound, call)
        .await
        .map_err(|_| t.approve_no_answer_in_time(call_name))?
        .map_err(|e| t.refusal(&e))
}

/// Goes online as the user's approver: subscribes to new requests first
/// (so none falls between), then registers. Returns the subscription and
/// the user's name.
async fn go_online(
    t: &Texts,
    approver: &ApproverProxy<'_>,
    bound: Duration,
) -> Result<(ChallengeCreatedStream, String), String> {
    let created = approver.receive_challenge_created().await.map_err(|e| t.approve_bus_error(e))?;
    let user = within(t, bound, "Register", approver.register()).await?;
    Ok((created, user))
}

fn explain(t: &Texts, outcome: ChallengeOutcome) -> String {
    match outcome {
        ChallengeOutcome::Approved => t.approve_outcome_approved(),
        ChallengeOutcome::Denied => t.approve_outcome_denied(),
        ChallengeOutcome::WrongNumber => t.approve_outcome_wrong_number(),
        ChallengeOutcome::Expired => t.approve_outcome_expired(),
        ChallengeOutcome::Superseded => t.approve_outcome_superseded(),
        ChallengeOutcome::Cancelled => t.approve_outcome_cancelled(),
        ChallengeOutcome::Pending => t.approve_outcome_pending(),
    }
}

fn print_list(t: &Texts, pending: &[Request], json: bool) {
    if json {
        let list: Vec<_> = pending
            .iter()
            .map(
                |(id, ctx, left)| serde_json::json!({"id": id, "context": ctx, "expires_in": left}),
            )
            .collect();
        say!("{}", serde_json::json!({ "pending": list }));
    } else if pending.is_empty() {
        say!("{}", t.approve_none_pending());
    } else {
        for request in pending {
            say_part!("{}", describe_request(t, request));
        }
    }
}

/// Who asks: everything the approver is told (never the number).
fn describe_request(t: &Texts, (_, ctx, left): &Request) -> String {
    let get = |key: &str| ctx.get(key).filter(|v| !v.is_empty()).cloned();
    let mut text = match get(context::USER) {
        Some(user) => t.approve_request_for(user),
        None => t.approve_request_for_you(),
    };
    text.push('\n');
    let time = get(context::TIME).and_then(|t| t.parse().ok()).map(utc);
    let rows = [
        (t.approve_label_service(), Some(get(context::SERVICE).unwrap_or_else(|| "?".into()))),
        (t.approve_label_command(), get(context::COMMAND)),
        (t.approve_label_host(), get(context::HOST)),
        (t.approve_label_from(), get(context::RHOST)),
        (t.approve_label_terminal(), get(context::TTY)),
        (t.approve_label_time(), time),
        (t.approve_label_expires(), Some(t.approve_expires_value(left))),
    ];
    // Values line up two spaces after the longest label (of this language).
    let width = rows.iter().map(|(label, _)| label.chars().count()).max().unwrap_or(0) + 2;
    for (label, value) in rows {
        if let Some(value) = value {
            text.push_str(&format!("  {}{value}\n", i18n::pad(&label, width)));
        }
    }
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
    t: &Texts,
    approver: &ApproverProxy<'_>,
    created: &mut ChallengeCreatedStream,
    bound: Duration,
) -> Result<Request, String> {
    let pending = within(t, bound, "Pending", approver.pending()).await?;
    if let Some(first) = pending.into_iter().next() {
        return Ok(first);
    }
    let signal = created.next().await.ok_or_else(|| t.approve_bus_ended())?;
    let args = signal.args().map_err(|e| t.approve_bus_error(e))?;
    Ok((args.id().clone(), args.context().clone(), *args.expires_in()))
}

/// Whether `answer` means "this was not me": r or report, or this language's words.
fn is_report(t: &Texts, answer: &str) -> bool {
    let words = format!("r report {}", t.approve_report_answers());
    words.split_whitespace().any(|w| w.eq_ignore_ascii_case(answer))
}

/// Whether `answer` means "deny": d or deny, or this language's words.
fn is_deny(t: &Texts, answer: &str) -> bool {
    let words = format!("d deny {}", t.approve_deny_answers());
    words.split_whitespace().any(|w| w.eq_ignore_ascii_case(answer))
}

async fn prompt_loop(
    t: &Texts,
    approver: &ApproverProxy<'_>,
    bound: Duration,
    once: bool,
) -> Result<ExitCode, String> {
    let (mut created, user) = go_online(t, approver, bound).await?;
    say!("{}", t.approve_waiting(&user));
    'requests: loop {
        let request = next_request(t, approver, &mut created, bound).await?;
        say_part!("\x07\n{}", describe_request(t, &request));
        let outcome = loop {
            say_part!("{}", t.approve_type_number());
            let _ = std::io::stdout().flush();
            let Some(answer) = read_line().await else {
                return Ok(ExitCode::FAILURE);
            };
            let id = request.0.as_str();
            let reply = if is_deny(t, &answer) {
                approver.deny(id).await
            } else if is_report(t, &answer) {
                match approver.report(id).await {
                    Ok(_) => {
                        say!("{}", t.approve_reported());
                        if once {
                            return Ok(ExitCode::FAILURE);
                        }
                        continue 'requests;
                    }
                    Err(e) => Err(e),
                }
            } else if let Ok(number) = answer.parse::<u32>() {
                approver.approve(id, number).await
            } else {
                say!("{}", t.approve_type_two_digits());
                continue;
            };
            break reply;
        };
        let approved = match outcome {
            Ok(n) => {
                let outcome = ChallengeOutcome::try_from(n).unwrap_or(ChallengeOutcome::Pending);
                match outcome {
                    ChallengeOutcome::Approved => say!("{}", t.approve_approved()),
                    ChallengeOutcome::Denied => say!("{}", t.approve_denied()),
                    other => say!("{}", t.approve_not_approved(explain(t, other))),
                }
                outcome == ChallengeOutcome::Approved
            }
            Err(e) => {
                say!("{}", t.approve_not_approved(t.refusal(&e)));
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
async fn agent_loop(
    t: &Texts,
    approver: &ApproverProxy<'_>,
    bound: Duration,
) -> Result<ExitCode, String> {
    let (mut created, user) = go_online(t, approver, bound).await?;
    say!("{}", t.approve_agent_online(&user));
    // The desktop's bus, when there is one (a user program: its own
    // environment names it).
    let desktop = tokio::time::timeout(bound, zbus::connection::Builder::session().build())
        .await
        .ok()
        .and_then(Result::ok);
    while let Some(signal) = created.next().await {
        let Ok(args) = signal.args() else { continue };
        let request: Request = (args.id().clone(), args.context().clone(), *args.expires_in());
        let text = describe_request(t, &request);
        say!("{text}  {}", t.approve_agent_hint());
        if let Some(desktop) = &desktop {
            if let Err(e) = notify(t, desktop, &text, bound).await {
                eprintln!("mfa-approve: {}", t.approve_no_notification(e));
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

async fn notify(
    t: &Texts,
    desktop: &zbus::Connection,
    body: &str,
    bound: Duration,
) -> Result<(), String> {
    let proxy = NotificationsProxy::new(desktop).await.map_err(|e| e.to_string())?;
    let summary = t.approve_notify_summary();
    let call = proxy.notify(
        "mfa-approve",
        0,
        "dialog-password",
        &summary,
        body,
        &[],
        HashMap::new(),
        60_000,
    );
    tokio::time::timeout(bound, call)
        .await
        .map_err(|_| t.approve_notification_timeout())?
        .map(|_| ())
        .map_err(|e| e.to_string())
}
