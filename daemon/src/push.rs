//! Which approver connections are online, for whom, and whether their
//! login session may approve: what the D-Bus transport knows of approvers
//! (phones are reached through the web approver, which is told too). The
//! challenges themselves are the store's
//! ([`pam_mfa_core::storage::Storage`]).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

#[derive(Default)]
pub struct Approvers {
    /// approver connection (unique name) -> (user it approves for, whether
    /// its session may approve under `approver_session`)
    online: Mutex<HashMap<String, (String, bool)>>,
    /// connections of the web approver (mfa-web), told of every user's requests
    web: Mutex<std::collections::HashSet<String>>,
}

impl Approvers {
    fn online(&self) -> MutexGuard<'_, HashMap<String, (String, bool)>> {
        self.online.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `connection` approves for `user`; `can_approve` when its session may
    /// (an agent in a session that passed no second factor is only told).
    pub fn register(&self, connection: &str, user: &str, can_approve: bool) {
        self.online().insert(connection.to_string(), (user.to_string(), can_approve));
    }

    /// The connections of `user`'s approvers, all told of each request.
    pub fn of(&self, user: &str) -> Vec<String> {
        let online = self.online();
        online.iter().filter(|(_, (u, _))| u == user).map(|(c, _)| c.clone()).collect()
    }

    /// Whether an approver of `user` that may approve is online: what
    /// mode=auto pushes for (else it asks for a code, rather than wait for
    /// an approval nobody online can give).
    pub fn any_can_approve(&self, user: &str) -> bool {
        self.online().values().any(|(u, can)| u == user && *can)
    }

    /// `connection` is the web approver: it hears of every request.
    pub fn register_web(&self, connection: &str) {
        self.web_online().insert(connection.to_string());
    }

    /// The web approver's connections.
    pub fn web(&self) -> Vec<String> {
        self.web_online().iter().cloned().collect()
    }

    fn web_online(&self) -> MutexGuard<'_, std::collections::HashSet<String>> {
        self.web.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection left the bus: it is no longer an approver.
    pub fn forget(&self, connection: &str) {
        self.online().remove(connection);
        self.web_online().remove(connection);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_approver_that_may_not_approve_is_told_but_does_not_count() {
        let approvers = Approvers::default();
        approvers.register(":1.8", "alice", false);
        assert!(!approvers.any_can_approve("alice"));
        assert_eq!(approvers.of("alice"), vec![":1.8".to_string()], "but it is told");
        approvers.register(":1.9", "alice", true);
        assert!(approvers.any_can_approve("alice"));
        assert!(!approvers.any_can_approve("bob"));
        approvers.forget(":1.9");
        assert!(!approvers.any_can_approve("alice"));
    }
}
