//! `pam_sm_authenticate`: ask for a code, let mfad decide, map the answer.

use std::collections::HashMap;
use std::path::Path;

use pam_mfa_config::i18n::Texts;
use pam_mfa_config::schema::{Config, ModuleConfig};
use pam_mfa_protocol::names;
use pam_mfa_protocol::username::Username;
use pam_mfa_protocol::wire::{context, ssh_key_of, ChallengeOutcome, VerifyOutcome};

use crate::args::{Args, Mode};
use crate::codes::PamCode;
use crate::daemon::{Daemon, DaemonError, PushRefusal};
use crate::handler::{Item, PamHandler, Priority};

/// The module arguments and the config they name, checked: a config
/// someone else than root can change is refused (`PAM_AUTHINFO_UNAVAIL`,
/// whatever failmode says: it could name their own bus).
pub fn configured(
    pam: &dyn PamHandler,
    raw_args: &[String],
) -> Result<(Args, ModuleConfig), PamCode> {
    let args = match Args::parse(raw_args) {
        Ok(args) => args,
        Err(e) => {
            pam.log(Priority::Error, &format!("bad PAM line: {e}"));
            return Err(PamCode::ServiceErr);
        }
    };
    if let Err(e) = Config::check_trusted(args.config.as_deref()) {
        pam.log(Priority::Error, &format!("config refused: {e}"));
        return Err(PamCode::AuthinfoUnavail);
    }
    match ModuleConfig::load_given(args.config.as_deref()) {
        Ok(config) => Ok((args, config)),
        Err(e) => {
            pam.log(Priority::Error, &format!("config refused: {e}"));
            Err(PamCode::ServiceErr)
        }
    }
}

/// The module arguments completed from the config (policy lists,
/// deadline, remembering, what to show, the language), and the config.
pub fn prepared(
    pam: &dyn PamHandler,
    raw_args: &[String],
) -> Result<(Args, ModuleConfig), PamCode> {
    let (mut args, config) = configured(pam, raw_args)?;
    if args.debug {
        pam.log(
            Priority::Debug,
            &format!(
                "config {} read; mfad at {} within {} ms",
                args.config.as_deref().unwrap_or(Path::new(names::DEFAULT_CONFIG_PATH)).display(),
                config.bus.address.as_str(),
                config.bus.timeout_ms.get()
            ),
        );
    }
    let policy = &config.policy;
    args.require_groups.get_or_insert_with(|| policy.require_groups.clone());
    args.exempt_users.get_or_insert_with(|| policy.exempt_users.clone());
    args.exempt_groups.get_or_insert_with(|| policy.exempt_groups.clone());
    args.enroll_deadline = policy.enroll_deadline.0;
    args.remember = config.remember.seconds.get() > 0;
    args.ssh_services = config.remember.ssh_services.clone();
    args.show_command = config.push.show_command;
    args.show_remote_host = config.push.show_remote_host;
    // The language: this line's, else the config's; "auto" reads the
    // locale of the process the module runs in (inside sudo, the invoking
    // user's). A hostile caller's environment can only pick among the
    // built-in catalogs: the value is compared with their names, never
    // used as a path or a format.
    let language = args.language.clone().unwrap_or_else(|| config.language.as_str().to_string());
    args.texts = Texts::for_process(&language);
    Ok((args, config))
}

/// The decision, given arguments and a daemon.
pub fn authenticate_with(pam: &dyn PamHandler, args: &Args, daemon: &mut dyn Daemon) -> PamCode {
    let user = match pam.user() {
        Ok(user) => user,
        Err(code) => {
            pam.log(Priority::Error, &format!("no user: {}", code.name()));
            return code;
        }
    };
    let mut attempt = Attempt::new(pam, &user);
    // Remembering binds to the SSH key that authenticated before the
    // code: sshd (ExposeAuthInfo yes) puts it in the PAM environment, read
    // here in the services the config names as SSH only. Never the
    // process environment: inside sudo that is the caller's.
    let service = attempt.context.get(context::SERVICE).cloned().unwrap_or_default();
    if args.remember && args.ssh_services.contains(&service) {
        if let Some(key) = pam.getenv("SSH_AUTH_INFO_0").as_deref().and_then(ssh_key_of) {
            attempt.context.insert(context::SSH_KEY.to_string(), key);
        }
    }
    let user = match Username::parse(&user) {
        Ok(user) => user,
        Err(e) => {
            attempt.log(pam, Priority::Notice, &format!("result=refused reason=\"{e}\""));
            return PamCode::UserUnknown;
        }
    };
    let lists = [&args.require_groups, &args.exempt_users, &args.exempt_groups]
        .map(|l| l.clone().unwrap_or_default());
    if lists.iter().any(|l| !l.is_empty()) {
        match daemon.covered(user.as_str(), &lists[0], &lists[1], &lists[2]) {
            Ok(true) => {}
            Ok(false) => {
                attempt.log(pam, Priority::Info, "result=ignored reason=not-covered-by-policy");
                return PamCode::Ignore;
            }
            Err(e) => return unavailable(pam, args, &attempt, &e),
        }
    }
    let enrolled = daemon.is_enrolled(user.as_str());
    if args.debug {
        attempt.log(pam, Priority::Debug, &format!("enrolled={enrolled:?}"));
    }
    match (enrolled, args.enroll_deadline) {
        (Ok(true), _) => {}
        (Ok(false), Some(day)) => {
            return before_deadline(pam, &args.texts, day, &attempt);
        }
        (Ok(false), None) if args.nullok => {
            attempt.log(pam, Priority::Info, "result=ignored reason=not-enrolled (nullok)");
            return PamCode::Ignore;
        }
        (Ok(false), None) => {
            // Asked like anyone else and told the code is wrong: the
            // prompt says nothing of whether the user is enrolled.
            attempt.log(pam, Priority::Notice, "result=refused reason=not-enrolled");
            return ask_codes(pam, args, daemon, &user, &attempt, false);
        }
        (Err(e), _) => {
            return unavailable(pam, args, &attempt, &e);
        }
    }
    // Remember this device: a code from this SSH key, address and service
    // a short while ago counts ([remember] seconds; off by default).
    let device = attempt.context.contains_key(context::SSH_KEY)
        && attempt.context.get(context::RHOST).is_some_and(|r| !r.is_empty());
    if args.remember && device {
        match daemon.is_remembered(user.as_str(), &attempt.context) {
            Ok(true) => {
                attempt.log(pam, Priority::Info, "result=remembered-device");
                return PamCode::Success;
            }
            Ok(false) => {}
            Err(e) => return unavailable(pam, args, &attempt, &e),
        }
    }
    let mode = match args.mode {
        Mode::Auto => match daemon.has_approver(user.as_str()) {
            Ok(true) => Mode::Push,
            Ok(false) => Mode::Code,
            Err(e) => {
                return unavailable(pam, args, &attempt, &e);
            }
        },
        mode => mode,
    };
    match mode {
        Mode::Push => push(pam, args, daemon, &user, &attempt),
        Mode::Code | Mode::Auto => ask_codes(pam, args, daemon, &user, &attempt, true),
    }
}

/// A covered user who has not enrolled, under an enrollment deadline: in
/// before it with a notice, refused from it on with the same notice.
fn before_deadline(
    pam: &dyn PamHandler,
    texts: &Texts,
    deadline_day: i64,
    attempt: &Attempt,
) -> PamCode {
    let start = u64::try_from(deadline_day).unwrap_or(0).saturating_mul(86_400);
    let date = pam_mfa_protocol::timefmt::utc(start);
    let date = date.get(..10).unwrap_or(&date).to_string();
    if unix_now() < start {
        pam.info(&texts.pam_enroll_by(&date));
        attempt.log(pam, Priority::Notice, "result=ignored reason=not-enrolled-before-deadline");
        PamCode::Ignore
    } else {
        pam.error(&texts.pam_enroll_overdue(&date));
        attempt.log(pam, Priority::Notice, "result=refused reason=not-enrolled-after-deadline");
        PamCode::AuthErr
    }
}

/// What one typed code led to.
enum Step {
    /// The authentication is decided.
    Done(PamCode),
    /// Wrong (the user was told why); another prompt may follow.
    Again,
}

/// Asks for a code up to `max_prompts` times. `enrolled` false: a decoy,
/// every code is wrong and mfad is not asked.
fn ask_codes(
    pam: &dyn PamHandler,
    args: &Args,
    daemon: &mut dyn Daemon,
    user: &Username,
    attempt: &Attempt,
    enrolled: bool,
) -> PamCode {
    for _ in 0..args.max_prompts.max(1) {
        let code = match pam.prompt_hidden(&args.texts.pam_prompt()) {
            Ok(code) => code,
            Err(rc) => {
                attempt.log(pam, Priority::Notice, "result=conversation-failed");
                return rc;
            }
        };
        if !enrolled {
            pam.error(&args.texts.pam_wrong_code());
            continue;
        }
        if let Step::Done(rc) = check_code(pam, args, daemon, user, attempt, &code) {
            return rc;
        }
    }
    PamCode::AuthErr
}

/// Seconds since the epoch: the module's one reading of the clock.
fn unix_now() -> u64 {
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `HH:MM UTC`, `seconds` from now.
fn clock_in(seconds: u64) -> String {
    let stamp = pam_mfa_protocol::timefmt::utc(unix_now().saturating_add(seconds));
    stamp.get(11..).unwrap_or(&stamp).to_string()
}

/// mfad gave no answer: fail closed, or with `failmode=open` let the rest
/// of the stack decide. Logged at error priority either way.
fn unavailable(pam: &dyn PamHandler, args: &Args, attempt: &Attempt, e: &DaemonError) -> PamCode {
    // Open only when mfad itself cannot be reached: mfad answering that it
    // cannot check (its database is down, say) never lets anyone in.
    let mfad_answered = !matches!(e, DaemonError::Unavailable(_));
    if mfad_answered {
        pam.error(&args.texts.pam_not_now());
    }
    let (code, what) = if args.fail_open && !mfad_answered {
        (PamCode::Ignore, "result=unavailable failmode=open (second factor skipped)")
    } else {
        (PamCode::AuthinfoUnavail, "result=unavailable failmode=closed")
    };
    attempt.log(pam, Priority::Error, &format!("{what} reason=\"{e}\""));
    code
}

/// Checks a typed code (or recovery code) with mfad and maps the answer.
fn check_code(
    pam: &dyn PamHandler,
    args: &Args,
    daemon: &mut dyn Daemon,
    user: &Username,
    attempt: &Attempt,
    code: &str,
) -> Step {
    let typed = code.trim();
    let plausible = typed.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b' ');
    if typed.is_empty() || typed.len() > 32 || !plausible {
        // Cannot be right; not worth a round trip (and not a brute-force step).
        attempt.log(pam, Priority::Notice, "result=malformed");
        pam.error(&args.texts.pam_wrong_code());
        return Step::Again;
    }
    let (outcome, retry_after) = match daemon.verify_code(user.as_str(), typed, &attempt.context) {
        Ok(v) => v,
        Err(e) => {
            return Step::Done(unavailable(pam, args, attempt, &e));
        }
    };
    let priority = if outcome.is_success() { Priority::Info } else { Priority::Notice };
    attempt.log(pam, priority, &format!("result={}", outcome.as_str()));
    let t = &args.texts;
    let locked = |left: u64| t.pam_locked_until(clock_in(left));
    match outcome {
        VerifyOutcome::Accepted => Step::Done(PamCode::Success),
        VerifyOutcome::RecoveryAccepted => {
            pam.info(&t.pam_recovery_accepted());
            Step::Done(PamCode::Success)
        }
        VerifyOutcome::Rejected | VerifyOutcome::Replayed if retry_after > 0 => {
            pam.error(&t.pam_wrong_code_locked(clock_in(retry_after)));
            Step::Done(PamCode::Maxtries)
        }
        VerifyOutcome::Rejected => {
            pam.error(&t.pam_wrong_code());
            Step::Again
        }
        VerifyOutcome::Replayed => {
            // The code is spent either way: saying so helps only the user.
            pam.error(&t.pam_replayed());
            Step::Again
        }
        VerifyOutcome::LockedOut => {
            pam.error(&locked(retry_after.max(1)));
            Step::Done(PamCode::Maxtries)
        }
        VerifyOutcome::NotEnrolled if args.nullok => Step::Done(PamCode::Ignore),
        VerifyOutcome::NotEnrolled => {
            pam.error(&t.pam_wrong_code());
            Step::Again
        }
    }
}

/// Number matching: show the number, wait (woken by mfad) for the approval.
/// Over SSH keyboard-interactive, info text appears only with the next
/// prompt, so there the number is part of a prompt: the user approves and
/// presses Enter, or types a code instead.
fn push(
    pam: &dyn PamHandler,
    args: &Args,
    daemon: &mut dyn Daemon,
    user: &Username,
    attempt: &Attempt,
) -> PamCode {
    // What the approver is told (and mfad logs): who asks, and what for.
    let mut told = attempt.context.clone();
    if args.show_command {
        if let Some(command) = pam.command_line() {
            told.insert(context::COMMAND.to_string(), command);
        }
    }
    if !args.show_remote_host {
        told.remove(context::RHOST);
    }
    // The key is for remembering, not for the approver's screen.
    told.remove(context::SSH_KEY);
    let (id, number, expires_in) = match daemon.create_challenge(user.as_str(), &told) {
        Ok(challenge) => challenge,
        Err(DaemonError::PushRefused(why)) => {
            // Said, logged, and a code still works: a flood neither locks
            // the user out nor ends their own waiting request.
            let t = &args.texts;
            pam.error(&match why {
                PushRefusal::TooMany(seconds) => t.pam_push_too_many(seconds),
                PushRefusal::Pending => t.pam_push_pending(),
                PushRefusal::Blocked => t.pam_push_blocked(),
            });
            attempt.log(
                pam,
                Priority::Notice,
                &format!("mode=push result=refused reason={}", why.as_str()),
            );
            return ask_codes(pam, args, daemon, user, attempt, true);
        }
        Err(e) => {
            return unavailable(pam, args, attempt, &e);
        }
    };
    let started = std::time::Instant::now();
    // Where to approve: a phone when the user has one (an old mfad that
    // cannot say is taken as "no phone").
    let phone = daemon.has_phone(user.as_str()).unwrap_or(false);
    let t = &args.texts;
    let over_ssh = attempt.context.get(context::SERVICE).is_some_and(|s| s.starts_with("sshd"));
    if over_ssh {
        let prompt =
            if phone { t.pam_push_over_ssh_phone(number) } else { t.pam_push_over_ssh(number) };
        let answer = match pam.prompt_visible(&prompt) {
            Ok(answer) => answer,
            Err(rc) => {
                let _ = daemon.cancel_challenge(&id);
                attempt.log(pam, Priority::Notice, "result=conversation-failed");
                return rc;
            }
        };
        if !answer.trim().is_empty() {
            let _ = daemon.cancel_challenge(&id);
            return match check_code(pam, args, daemon, user, attempt, &answer) {
                Step::Done(rc) => rc,
                Step::Again => PamCode::AuthErr,
            };
        }
    } else if phone {
        pam.info(&t.pam_push_waiting_phone(number, expires_in));
    } else {
        pam.info(&t.pam_push_waiting(number, expires_in));
    }
    let left = std::time::Duration::from_secs(expires_in).saturating_sub(started.elapsed());
    let outcome = match daemon.wait_challenge(&id, left) {
        Ok(outcome) => outcome,
        Err(e) => {
            return unavailable(pam, args, attempt, &e);
        }
    };
    let priority =
        if outcome == ChallengeOutcome::Approved { Priority::Info } else { Priority::Notice };
    attempt.log(pam, priority, &format!("mode=push result={}", outcome.as_str()));
    let t = &args.texts;
    let message = match outcome {
        ChallengeOutcome::Approved => return PamCode::Success,
        ChallengeOutcome::Denied => t.pam_push_denied(),
        ChallengeOutcome::WrongNumber => t.pam_push_wrong_number(),
        ChallengeOutcome::Expired | ChallengeOutcome::Pending => t.pam_push_expired(),
        ChallengeOutcome::Superseded => t.pam_push_superseded(),
        ChallengeOutcome::Cancelled => t.pam_push_cancelled(),
    };
    pam.error(&message);
    PamCode::AuthErr
}

/// The context of one attempt, for mfad and for the log line.
pub(crate) struct Attempt {
    user: String,
    pub(crate) context: HashMap<String, String>,
}

impl Attempt {
    pub(crate) fn new(pam: &dyn PamHandler, user: &str) -> Attempt {
        let mut context = HashMap::new();
        for (key, item) in [
            (context::SERVICE, Item::Service),
            (context::RHOST, Item::RHost),
            (context::TTY, Item::Tty),
        ] {
            if let Some(value) = pam.item(item) {
                context.insert(key.to_string(), value);
            }
        }
        Attempt { user: user.to_string(), context }
    }

    fn field(&self, key: &str) -> String {
        let value = self.context.get(key).map_or("", String::as_str);
        format!("{value:?}")
    }

    pub(crate) fn log(&self, pam: &dyn PamHandler, priority: Priority, what: &str) {
        pam.log(
            priority,
            &format!(
                "user={:?} service={} rhost={} tty={} {what}",
                self.user,
                self.field(context::SERVICE),
                self.field(context::RHOST),
                self.field(context::TTY),
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use zeroize::Zeroizing;

    /// The prompt, as DESIGN.md fixes it (in English).
    const PROMPT: &str = "Verification code: ";

    #[derive(Default)]
    struct Script {
        user: String,
        answer: Option<String>,
        shown: RefCell<Vec<String>>,
        logged: RefCell<Vec<String>>,
    }

    impl PamHandler for Script {
        fn user(&self) -> Result<String, PamCode> {
            Ok(self.user.clone())
        }
        fn item(&self, item: Item) -> Option<String> {
            (item == Item::Service).then(|| "sshd".to_string())
        }
        fn prompt_hidden(&self, prompt: &str) -> Result<Zeroizing<String>, PamCode> {
            self.shown.borrow_mut().push(prompt.to_string());
            self.answer.clone().map(Zeroizing::new).ok_or(PamCode::ConvErr)
        }
        fn prompt_visible(&self, prompt: &str) -> Result<Zeroizing<String>, PamCode> {
            self.prompt_hidden(prompt)
        }
        fn info(&self, text: &str) {
            self.shown.borrow_mut().push(text.to_string());
        }
        fn error(&self, text: &str) {
            self.shown.borrow_mut().push(text.to_string());
        }
        fn log(&self, _: Priority, text: &str) {
            self.logged.borrow_mut().push(text.to_string());
        }
    }

    struct Fake {
        enrolled: Result<bool, DaemonError>,
        outcome: Result<(VerifyOutcome, u64), DaemonError>,
        codes_seen: Vec<String>,
        push: Option<ChallengeOutcome>,
        cancelled: bool,
        phone: bool,
    }

    impl Fake {
        fn new(
            enrolled: Result<bool, DaemonError>,
            outcome: Result<(VerifyOutcome, u64), DaemonError>,
        ) -> Fake {
            Fake {
                enrolled,
                outcome,
                codes_seen: vec![],
                push: None,
                cancelled: false,
                phone: false,
            }
        }
    }

    impl Daemon for Fake {
        fn is_enrolled(&mut self, _: &str) -> Result<bool, DaemonError> {
            self.enrolled.clone()
        }
        fn verify_code(
            &mut self,
            _: &str,
            code: &str,
            _: &HashMap<String, String>,
        ) -> Result<(VerifyOutcome, u64), DaemonError> {
            self.codes_seen.push(code.to_string());
            self.outcome.clone()
        }
        fn has_approver(&mut self, _: &str) -> Result<bool, DaemonError> {
            Ok(self.push.is_some())
        }
        fn has_phone(&mut self, _: &str) -> Result<bool, DaemonError> {
            Ok(self.phone)
        }
        fn create_challenge(
            &mut self,
            _: &str,
            _: &HashMap<String, String>,
        ) -> Result<(String, u32, u64), DaemonError> {
            Ok(("c1".into(), 71, 60))
        }
        fn wait_challenge(
            &mut self,
            _: &str,
            _: std::time::Duration,
        ) -> Result<ChallengeOutcome, DaemonError> {
            self.push.ok_or(DaemonError::Unavailable("no push".into()))
        }
        fn cancel_challenge(&mut self, _: &str) -> Result<(), DaemonError> {
            self.cancelled = true;
            Ok(())
        }
        fn is_remembered(
            &mut self,
            _: &str,
            _: &HashMap<String, String>,
        ) -> Result<bool, DaemonError> {
            Ok(false)
        }
        fn covered(
            &mut self,
            _: &str,
            require: &[String],
            _: &[String],
            _: &[String],
        ) -> Result<bool, DaemonError> {
            Ok(!require.iter().any(|g| g == "nobody-is-in-this"))
        }
    }

    fn run(
        answer: Option<&str>,
        enrolled: Result<bool, DaemonError>,
        outcome: Result<(VerifyOutcome, u64), DaemonError>,
        nullok: bool,
    ) -> (PamCode, Script, Fake) {
        let script = Script {
            user: "alice".into(),
            answer: answer.map(str::to_string),
            ..Script::default()
        };
        let mut fake = Fake::new(enrolled, outcome);
        let args = Args { nullok, ..Args::default() };
        let rc = authenticate_with(&script, &args, &mut fake);
        (rc, script, fake)
    }

    #[test]
    fn accepted_code_succeeds_and_is_sent_trimmed() {
        let (rc, script, fake) =
            run(Some(" 123456\n"), Ok(true), Ok((VerifyOutcome::Accepted, 0)), false);
        assert_eq!(rc, PamCode::Success);
        assert_eq!(script.shown.borrow()[0], PROMPT);
        assert_eq!(fake.codes_seen, vec!["123456"]);
    }

    #[test]
    fn wrong_and_replayed_codes_are_asked_again_then_fail_with_auth_err() {
        for (outcome, told) in [
            (VerifyOutcome::Rejected, "Wrong code."),
            (VerifyOutcome::Replayed, "That code was already used: wait for the next one."),
        ] {
            let (rc, script, fake) = run(Some("111111"), Ok(true), Ok((outcome, 0)), false);
            assert_eq!(rc, PamCode::AuthErr);
            let shown = script.shown.borrow();
            assert_eq!(shown.iter().filter(|s| *s == PROMPT).count(), 3, "{shown:?}");
            assert_eq!(shown.iter().filter(|s| *s == told).count(), 3, "{shown:?}");
            assert_eq!(fake.codes_seen.len(), 3);
        }
    }

    #[test]
    fn the_texts_given_are_the_ones_shown() {
        let script =
            Script { user: "alice".into(), answer: Some("111111".into()), ..Script::default() };
        let mut fake = Fake::new(Ok(true), Ok((VerifyOutcome::Rejected, 0)));
        let args = Args { max_prompts: 1, texts: Texts::new("nl"), ..Args::default() };
        assert_eq!(authenticate_with(&script, &args, &mut fake), PamCode::AuthErr);
        assert_eq!(*script.shown.borrow(), ["Verificatiecode: ", "Onjuiste code."]);
    }

    #[test]
    fn max_prompts_bounds_the_tries() {
        let script =
            Script { user: "alice".into(), answer: Some("111111".into()), ..Script::default() };
        let mut fake = Fake::new(Ok(true), Ok((VerifyOutcome::Rejected, 0)));
        let args = Args { max_prompts: 1, ..Args::default() };
        assert_eq!(authenticate_with(&script, &args, &mut fake), PamCode::AuthErr);
        assert_eq!(fake.codes_seen.len(), 1);
    }

    #[test]
    fn a_wrong_code_that_starts_a_lockout_ends_the_tries() {
        let (rc, script, fake) =
            run(Some("111111"), Ok(true), Ok((VerifyOutcome::Rejected, 30)), false);
        assert_eq!(rc, PamCode::Maxtries);
        assert_eq!(fake.codes_seen.len(), 1);
        let last = script.shown.borrow().last().cloned().unwrap_or_default();
        assert!(last.starts_with("Wrong code. Too many wrong codes: locked until "), "{last}");
    }

    #[test]
    fn failmode_open_skips_only_an_unreachable_mfad_never_its_refusal() {
        let script =
            || Script { user: "alice".into(), answer: Some("123456".into()), ..Script::default() };
        let args = Args { fail_open: true, ..Args::default() };
        let down = || DaemonError::Unavailable("no owner of the name".into());
        let mut fake = Fake::new(Err(down()), Err(down()));
        assert_eq!(authenticate_with(&script(), &args, &mut fake), PamCode::Ignore);
        // mfad answered: its database is down. Closed, whatever failmode says.
        let store_down = "the enrollment store cannot be reached".to_string();
        for (enrolled, outcome) in [
            (Err(DaemonError::Refused(store_down.clone())), Ok((VerifyOutcome::Accepted, 0))),
            (Ok(true), Err(DaemonError::Refused(store_down.clone()))),
        ] {
            let (script, mut fake) = (script(), Fake::new(enrolled, outcome));
            assert_eq!(authenticate_with(&script, &args, &mut fake), PamCode::AuthinfoUnavail);
            let shown = script.shown.borrow();
            assert!(
                shown
                    .iter()
                    .any(|s| s.starts_with("The second factor cannot be checked right now")),
                "{shown:?}"
            );
            let logged = script.logged.borrow();
            assert!(
                logged.iter().any(|l| l.contains("failmode=closed") && l.contains(&store_down)),
                "{logged:?}"
            );
        }
    }

    #[test]
    fn malformed_code_fails_without_asking_mfad() {
        for typed in ["", "12\u{e9}456", "1234567890123456789012345678901234", "12;456"] {
            let (rc, _, fake) = run(Some(typed), Ok(true), Ok((VerifyOutcome::Accepted, 0)), false);
            assert_eq!(rc, PamCode::AuthErr, "{typed:?}");
            assert!(fake.codes_seen.is_empty());
        }
    }

    #[test]
    fn locked_out_user_gets_maxtries_and_the_wait() {
        let (rc, script, _) =
            run(Some("111111"), Ok(true), Ok((VerifyOutcome::LockedOut, 42)), false);
        assert_eq!(rc, PamCode::Maxtries);
        let last = script.shown.borrow().last().cloned().unwrap_or_default();
        assert!(last.starts_with("Too many wrong codes: locked until "), "{last}");
        assert!(last.ends_with(" UTC."), "{last}");
    }

    #[test]
    fn not_enrolled_is_ignored_only_with_nullok() {
        let (rc, script, _) = run(None, Ok(false), Ok((VerifyOutcome::Accepted, 0)), true);
        assert_eq!(rc, PamCode::Ignore);
        assert!(script.shown.borrow().is_empty(), "no prompt for an unenrolled user");
        // Without nullok: asked like anyone else, told the code is wrong,
        // and mfad is never asked to check it.
        let (rc, script, fake) =
            run(Some("123456"), Ok(false), Ok((VerifyOutcome::Accepted, 0)), false);
        assert_eq!(rc, PamCode::AuthErr);
        assert_eq!(script.shown.borrow()[0], PROMPT);
        assert!(script.shown.borrow().contains(&"Wrong code.".to_string()));
        assert!(fake.codes_seen.is_empty());
    }

    #[test]
    fn unreachable_daemon_fails_closed() {
        let down = || DaemonError::Unavailable("no socket".into());
        let (rc, _, _) = run(Some("1"), Err(down()), Ok((VerifyOutcome::Accepted, 0)), true);
        assert_eq!(rc, PamCode::AuthinfoUnavail);
        let (rc, _, _) = run(Some("111111"), Ok(true), Err(down()), true);
        assert_eq!(rc, PamCode::AuthinfoUnavail);
    }

    #[test]
    fn failmode_open_lets_the_stack_decide_when_mfad_is_down() {
        let script = Script { user: "alice".into(), ..Script::default() };
        let mut fake = Fake::new(
            Err(DaemonError::Unavailable("no socket".into())),
            Ok((VerifyOutcome::Accepted, 0)),
        );
        let args = Args { fail_open: true, ..Args::default() };
        assert_eq!(authenticate_with(&script, &args, &mut fake), PamCode::Ignore);
        assert!(script.logged.borrow().join("").contains("failmode=open"));
    }

    #[test]
    fn users_the_policy_does_not_cover_are_ignored_without_a_prompt() {
        let script = Script { user: "alice".into(), answer: Some("1".into()), ..Script::default() };
        let mut fake = Fake::new(Ok(true), Ok((VerifyOutcome::Accepted, 0)));
        let args =
            Args { require_groups: Some(vec!["nobody-is-in-this".into()]), ..Args::default() };
        assert_eq!(authenticate_with(&script, &args, &mut fake), PamCode::Ignore);
        assert!(script.shown.borrow().is_empty());
    }

    #[test]
    fn unenrolled_users_pass_with_a_notice_before_the_deadline_and_not_after() {
        let run_with = |day: i64| {
            let script = Script { user: "alice".into(), ..Script::default() };
            let mut fake = Fake::new(Ok(false), Ok((VerifyOutcome::Accepted, 0)));
            let args = Args { enroll_deadline: Some(day), ..Args::default() };
            let rc = authenticate_with(&script, &args, &mut fake);
            let shown = script.shown.borrow().join("|");
            (rc, shown)
        };
        let (rc, shown) = run_with(i64::from(i32::MAX)); // far in the future
        assert_eq!(rc, PamCode::Ignore);
        assert!(shown.contains("run mfa-enroll to set it up before then"), "{shown}");
        let (rc, shown) = run_with(10_000); // 1997
        assert_eq!(rc, PamCode::AuthErr);
        assert!(shown.contains("required since 1997-05-19 (UTC)"), "{shown}");
    }

    #[test]
    fn the_log_has_the_context_but_never_the_code() {
        let (_, script, _) = run(Some("918273"), Ok(true), Ok((VerifyOutcome::Rejected, 0)), false);
        let logged = script.logged.borrow().join("\n");
        assert!(logged.contains("user=\"alice\" service=\"sshd\""), "{logged}");
        assert!(logged.contains("result=rejected"), "{logged}");
        assert!(!logged.contains("918273"), "{logged}");
    }

    fn run_push(
        mode: Mode,
        service: &str,
        answer: Option<&str>,
        push: Option<ChallengeOutcome>,
    ) -> (PamCode, Script, Fake) {
        run_push_with(mode, service, answer, push, false)
    }

    fn run_push_with(
        mode: Mode,
        service: &str,
        answer: Option<&str>,
        push: Option<ChallengeOutcome>,
        phone: bool,
    ) -> (PamCode, Script, Fake) {
        struct Svc<'a>(Script, &'a str);
        impl PamHandler for Svc<'_> {
            fn user(&self) -> Result<String, PamCode> {
                self.0.user()
            }
            fn item(&self, item: Item) -> Option<String> {
                (item == Item::Service).then(|| self.1.to_string())
            }
            fn prompt_hidden(&self, p: &str) -> Result<Zeroizing<String>, PamCode> {
                self.0.prompt_hidden(p)
            }
            fn prompt_visible(&self, p: &str) -> Result<Zeroizing<String>, PamCode> {
                self.0.prompt_visible(p)
            }
            fn info(&self, t: &str) {
                self.0.info(t)
            }
            fn error(&self, t: &str) {
                self.0.error(t)
            }
            fn log(&self, p: Priority, t: &str) {
                self.0.log(p, t)
            }
        }
        let script = Script {
            user: "alice".into(),
            answer: answer.map(str::to_string),
            ..Script::default()
        };
        let pam = Svc(script, service);
        let mut fake =
            Fake { push, phone, ..Fake::new(Ok(true), Ok((VerifyOutcome::Accepted, 0))) };
        let args = Args { mode, ..Args::default() };
        let rc = authenticate_with(&pam, &args, &mut fake);
        (rc, pam.0, fake)
    }

    #[test]
    fn push_shows_the_number_and_succeeds_on_approval() {
        let (rc, script, _) = run_push(Mode::Push, "sudo", None, Some(ChallengeOutcome::Approved));
        assert_eq!(rc, PamCode::Success);
        assert!(script.shown.borrow()[0].contains("type 71 in mfa-approve"), "{:?}", script.shown);
    }

    #[test]
    fn a_user_with_a_phone_is_told_to_approve_on_it_with_the_number() {
        for service in ["sudo", "sshd"] {
            let approved = Some(ChallengeOutcome::Approved);
            let (rc, script, _) = run_push_with(Mode::Push, service, Some(""), approved, true);
            assert_eq!(rc, PamCode::Success, "{service}");
            let shown = script.shown.borrow().join("\n");
            assert!(shown.contains("approve on your phone by typing 71"), "{service}: {shown}");
            let (_, script, _) = run_push_with(Mode::Push, service, Some(""), approved, false);
            assert!(!script.shown.borrow().join("\n").contains("phone"), "{service}: no phone");
        }
    }

    #[test]
    fn every_other_push_outcome_fails_with_its_own_message() {
        let mut messages = Vec::new();
        for outcome in [
            ChallengeOutcome::Denied,
            ChallengeOutcome::WrongNumber,
            ChallengeOutcome::Expired,
            ChallengeOutcome::Superseded,
            ChallengeOutcome::Cancelled,
        ] {
            let (rc, script, _) = run_push(Mode::Push, "sudo", None, Some(outcome));
            assert_eq!(rc, PamCode::AuthErr, "{outcome:?}");
            messages.push(script.shown.borrow().last().cloned().unwrap_or_default());
        }
        let mut unique = messages.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), messages.len(), "{messages:?}");
    }

    #[test]
    fn over_ssh_the_number_is_in_a_prompt_and_a_typed_code_replaces_the_wait() {
        let (rc, script, fake) =
            run_push(Mode::Push, "sshd", Some(""), Some(ChallengeOutcome::Approved));
        assert_eq!(rc, PamCode::Success);
        assert!(script.shown.borrow()[0].contains("type 71 in mfa-approve"));
        assert!(script.shown.borrow()[0].ends_with("or type a code: "));
        let (rc, _, fake2) =
            run_push(Mode::Push, "sshd", Some("123456"), Some(ChallengeOutcome::Expired));
        assert_eq!(rc, PamCode::Success, "the code decided, not the expired push");
        assert!(fake2.cancelled && fake2.codes_seen == ["123456"]);
        assert!(!fake.cancelled);
    }

    #[test]
    fn auto_asks_a_code_when_no_approver_is_online() {
        let (rc, script, fake) = run_push(Mode::Auto, "sudo", Some("123456"), None);
        assert_eq!(rc, PamCode::Success);
        assert_eq!(script.shown.borrow()[0], PROMPT);
        assert_eq!(fake.codes_seen, ["123456"]);
        let (_, script, _) = run_push(Mode::Auto, "sudo", None, Some(ChallengeOutcome::Approved));
        assert!(script.shown.borrow()[0].contains("type 71"));
    }

    #[test]
    fn debug_logs_the_steps_and_still_not_the_code() {
        let script =
            Script { user: "alice".into(), answer: Some("918273".into()), ..Script::default() };
        let mut fake = Fake::new(Ok(true), Ok((VerifyOutcome::Accepted, 0)));
        let args = Args { debug: true, ..Args::default() };
        assert_eq!(authenticate_with(&script, &args, &mut fake), PamCode::Success);
        let logged = script.logged.borrow().join("\n");
        assert!(logged.contains("enrolled=Ok(true)"), "{logged}");
        assert!(!logged.contains("918273"), "{logged}");
    }

    #[test]
    fn unsafe_username_is_refused_before_the_bus() {
        let script = Script { user: "../root".into(), ..Script::default() };
        let mut fake = Fake::new(Ok(true), Ok((VerifyOutcome::Accepted, 0)));
        let rc = authenticate_with(&script, &Args::default(), &mut fake);
        assert_eq!(rc, PamCode::UserUnknown);
        assert!(fake.codes_seen.is_empty());
    }
}
