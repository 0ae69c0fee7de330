//! Login sessions that passed pam_mfa's second factor (DESIGN.md rule 5):
//! with `approver_session = "mfa"`, only these may approve a request.
//!
//! The hand-off, in three steps, each from the PAM module as root:
//! 1. a second factor succeeds on a connection (a code, a recovery code,
//!    an approved request): mfad notes it for that connection;
//! 2. on the same connection the module asks for a token (`GrantSession`),
//!    which only that noted success buys, and puts it in the PAM
//!    environment (sshd carries it from its authentication child to the
//!    process that opens the session);
//! 3. `pam_sm_open_session` hands the token back (`OpenSession`) from the
//!    process that opens the session, after pam_loginuid gave it a new
//!    audit session: mfad reads that session from /proc (never from the
//!    caller's word) and records it; `pam_sm_close_session` ends it.
//!
//! Audit session ids are not reused until the next boot, so the records
//! are kept in the state directory with the boot's id: a restart of mfad
//! keeps them (a waiting approver still counts), a reboot drops them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

/// Seconds a success may wait for its token, and a token for its session.
pub const TOKEN_SECONDS: u64 = 120;
/// The kernel's "no audit session" id: never a session that passed.
pub const UNSET_SESSION: u32 = u32::MAX;
/// Records kept at most; the oldest go first (sessions whose close was
/// never seen, e.g. after a crash of sshd).
const MAX_SESSIONS: usize = 10_000;

/// A session that passed a second factor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Passed {
    pub user: String,
    pub since: u64,
    pub service: String,
}

#[derive(Default, Serialize, Deserialize)]
struct SessionsFile {
    boot_id: String,
    /// audit session id (as text: TOML keys are strings) -> record
    sessions: BTreeMap<String, Passed>,
}

#[derive(Default)]
struct State {
    /// (user, bus connection) -> when a second factor succeeded there
    successes: HashMap<(String, String), u64>,
    /// token -> (user, valid until)
    tokens: HashMap<String, (String, u64)>,
    passed: BTreeMap<u32, Passed>,
    /// challenge id -> (user, the requester's connection, expires at)
    requested: HashMap<String, (String, String, u64)>,
}

/// Why a session was not recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotRecorded {
    /// No second factor succeeded on this connection just before.
    NoSuccess,
    /// The token is unknown, spent, expired or another user's.
    BadToken,
    /// The caller is in no audit session (no pam_loginuid before it).
    NoSession,
}

impl std::fmt::Display for NotRecorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NotRecorded::NoSuccess => "no second factor succeeded on this connection just before",
            NotRecorded::BadToken => "the token is unknown, spent, expired or another user's",
            NotRecorded::NoSession => {
                "the caller is in no login session (pam_loginuid must come before pam_mfa)"
            }
        })
    }
}

pub struct Sessions {
    state: Mutex<State>,
    file: Option<PathBuf>,
    boot_id: String,
}

impl Sessions {
    /// Sessions kept in `file` (when given) for the boot `boot_id`;
    /// records of another boot are dropped.
    pub fn load(file: Option<PathBuf>, boot_id: &str) -> Sessions {
        let mut state = State::default();
        if let Some(text) = file.as_deref().and_then(|f| std::fs::read_to_string(f).ok()) {
            match toml::from_str::<SessionsFile>(&text) {
                Ok(kept) if kept.boot_id == boot_id => {
                    state.passed = kept
                        .sessions
                        .into_iter()
                        .filter_map(|(id, p)| Some((id.parse().ok()?, p)))
                        .collect();
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sessions file unreadable: starting empty"),
            }
        }
        Sessions { state: Mutex::new(state), file, boot_id: boot_id.to_string() }
    }

    /// This boot's id, from the kernel.
    pub fn boot_id() -> String {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }

    /// Where the records live in `state_dir`.
    pub fn file_in(state_dir: &Path) -> PathBuf {
        state_dir.join("sessions.toml")
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A second factor of `user` succeeded on bus connection `connection`.
    pub fn note_success(&self, user: &str, connection: &str, now: u64) {
        let mut state = self.state();
        state.successes.retain(|_, at| *at + TOKEN_SECONDS > now);
        state.successes.insert((user.to_string(), connection.to_string()), now);
    }

    /// Challenge `id` of `user` was made by the requester on `connection`.
    pub fn requested(&self, id: &str, user: &str, connection: &str, expires_at: u64, now: u64) {
        let mut state = self.state();
        state.requested.retain(|_, (_, _, until)| *until > now);
        state
            .requested
            .insert(id.to_string(), (user.to_string(), connection.to_string(), expires_at));
    }

    /// Challenge `id` ended, as its requester on `connection` learnt: an
    /// approval is a success there, wherever it was given (here, on
    /// another host of a fleet, on a phone through the database).
    pub fn request_ended(&self, id: &str, connection: &str, approved: bool, now: u64) {
        let made = self.state().requested.remove(id);
        if let Some((user, by, _)) = made.filter(|(_, by, _)| by == connection) {
            if approved {
                self.note_success(&user, &by, now);
            }
        }
    }

    /// Trades the success noted for (`user`, `connection`) for `token`.
    pub fn grant(
        &self,
        user: &str,
        connection: &str,
        token: String,
        now: u64,
    ) -> Result<(), NotRecorded> {
        let mut state = self.state();
        let key = (user.to_string(), connection.to_string());
        match state.successes.remove(&key) {
            Some(at) if at + TOKEN_SECONDS > now => {}
            _ => return Err(NotRecorded::NoSuccess),
        }
        state.tokens.retain(|_, (_, until)| *until > now);
        state.tokens.insert(token, (user.to_string(), now + TOKEN_SECONDS));
        Ok(())
    }

    /// Records `session` as passed for `user`, spending `token`.
    pub fn record(
        &self,
        user: &str,
        token: &str,
        session: Option<u32>,
        service: &str,
        now: u64,
    ) -> Result<u32, NotRecorded> {
        let mut state = self.state();
        match state.tokens.remove(token) {
            Some((owner, until)) if owner == user && until > now => {}
            _ => return Err(NotRecorded::BadToken),
        }
        let session = session.filter(|s| *s != UNSET_SESSION).ok_or(NotRecorded::NoSession)?;
        let record = Passed { user: user.to_string(), since: now, service: service.to_string() };
        state.passed.insert(session, record);
        while state.passed.len() > MAX_SESSIONS {
            let oldest = state.passed.iter().min_by_key(|(_, p)| p.since).map(|(id, _)| *id);
            match oldest {
                Some(id) => state.passed.remove(&id),
                None => break,
            };
        }
        self.save(&state);
        Ok(session)
    }

    /// The session of `user` ended; true when it was recorded.
    pub fn close(&self, user: &str, session: Option<u32>) -> bool {
        let mut state = self.state();
        let Some(session) = session else { return false };
        if state.passed.get(&session).is_some_and(|p| p.user == user) {
            state.passed.remove(&session);
            self.save(&state);
            return true;
        }
        false
    }

    /// Whether `session` passed a second factor as `user`.
    pub fn verified(&self, user: &str, session: Option<u32>) -> bool {
        let state = self.state();
        session.and_then(|s| state.passed.get(&s)).is_some_and(|p| p.user == user)
    }

    /// Writes the records (temp file, rename); a failure is logged, the
    /// records stay in memory.
    fn save(&self, state: &State) {
        let Some(file) = &self.file else { return };
        let kept = SessionsFile {
            boot_id: self.boot_id.clone(),
            sessions: state.passed.iter().map(|(id, p)| (id.to_string(), p.clone())).collect(),
        };
        let written = toml::to_string(&kept).map_err(std::io::Error::other).and_then(|text| {
            let dir = file.parent().unwrap_or(Path::new("/"));
            let mut temp = tempfile::NamedTempFile::new_in(dir)?;
            std::io::Write::write_all(&mut temp, text.as_bytes())?;
            temp.persist(file).map_err(|e| e.error)?;
            Ok(())
        });
        if let Err(e) = written {
            tracing::error!(file = %file.display(), error = %e, "cannot save the sessions");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passed_session(s: &Sessions, user: &str, session: u32, now: u64) {
        s.note_success(user, ":1.5", now);
        s.grant(user, ":1.5", format!("t{session}"), now).unwrap();
        s.record(user, &format!("t{session}"), Some(session), "sshd", now).unwrap();
    }

    #[test]
    fn only_a_noted_success_buys_a_token_and_a_token_opens_one_session() {
        let s = Sessions::load(None, "boot");
        assert_eq!(s.grant("alice", ":1.5", "t".into(), 10), Err(NotRecorded::NoSuccess));
        s.note_success("alice", ":1.5", 10);
        assert_eq!(s.grant("alice", ":1.6", "t".into(), 10), Err(NotRecorded::NoSuccess));
        assert_eq!(s.grant("bob", ":1.5", "t".into(), 10), Err(NotRecorded::NoSuccess));
        s.grant("alice", ":1.5", "t".into(), 11).unwrap();
        assert_eq!(s.grant("alice", ":1.5", "u".into(), 11), Err(NotRecorded::NoSuccess));
        assert_eq!(s.record("bob", "t", Some(7), "sshd", 12), Err(NotRecorded::BadToken));
        assert!(!s.verified("alice", Some(7)), "a refused token is still spent");
    }

    #[test]
    fn an_approval_given_anywhere_is_a_success_of_its_requester_only() {
        let s = Sessions::load(None, "boot");
        s.requested("c1", "alice", ":1.5", 100, 10);
        s.request_ended("c1", ":1.6", true, 11);
        assert_eq!(s.grant("alice", ":1.6", "t".into(), 11), Err(NotRecorded::NoSuccess));
        s.requested("c2", "alice", ":1.5", 100, 10);
        s.request_ended("c2", ":1.5", false, 11);
        assert_eq!(s.grant("alice", ":1.5", "t".into(), 11), Err(NotRecorded::NoSuccess));
        s.requested("c3", "alice", ":1.5", 100, 10);
        s.request_ended("c3", ":1.5", true, 11);
        s.grant("alice", ":1.5", "t".into(), 11).unwrap();
        s.request_ended("c3", ":1.5", true, 12);
        assert_eq!(s.grant("alice", ":1.5", "u".into(), 12), Err(NotRecorded::NoSuccess), "once");
    }

    #[test]
    fn a_token_expires_and_an_unset_session_never_counts() {
        let s = Sessions::load(None, "boot");
        s.note_success("alice", ":1.5", 0);
        s.grant("alice", ":1.5", "t".into(), 0).unwrap();
        assert_eq!(
            s.record("alice", "t", Some(7), "sshd", TOKEN_SECONDS),
            Err(NotRecorded::BadToken)
        );
        s.note_success("alice", ":1.5", 0);
        s.grant("alice", ":1.5", "u".into(), 0).unwrap();
        assert_eq!(
            s.record("alice", "u", Some(UNSET_SESSION), "sshd", 1),
            Err(NotRecorded::NoSession)
        );
    }

    #[test]
    fn a_session_counts_for_its_user_until_closed() {
        let s = Sessions::load(None, "boot");
        passed_session(&s, "alice", 7, 1);
        assert!(s.verified("alice", Some(7)));
        assert!(!s.verified("bob", Some(7)));
        assert!(!s.verified("alice", Some(8)));
        assert!(!s.verified("alice", None));
        assert!(!s.close("bob", Some(7)), "another user cannot end it");
        assert!(s.close("alice", Some(7)));
        assert!(!s.verified("alice", Some(7)));
    }

    #[test]
    fn records_survive_a_restart_but_not_a_reboot() {
        let dir = tempfile::tempdir().unwrap();
        let file = Sessions::file_in(dir.path());
        let s = Sessions::load(Some(file.clone()), "boot-1");
        passed_session(&s, "alice", 7, 1);
        drop(s);
        assert!(Sessions::load(Some(file.clone()), "boot-1").verified("alice", Some(7)));
        assert!(!Sessions::load(Some(file), "boot-2").verified("alice", Some(7)));
    }
}
