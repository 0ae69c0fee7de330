//! mfad over the bus, for the module: one client per authentication,
//! dropped (connection, runtime and all) when `pam_sm_authenticate` returns.

use std::collections::HashMap;

use pam_mfa_client::{Client, ClientError};
use pam_mfa_config::schema::ModuleConfig;
use pam_mfa_protocol::wire::{ChallengeOutcome, VerifyOutcome};

use crate::daemon::{Daemon, DaemonError};

pub struct BusDaemon {
    client: Result<Client, String>,
}

impl BusDaemon {
    pub fn new(config: &ModuleConfig) -> BusDaemon {
        BusDaemon { client: Client::from_config(&config.bus).map_err(|e| e.to_string()) }
    }

    fn client(&mut self) -> Result<&mut Client, DaemonError> {
        self.client.as_mut().map_err(|e| DaemonError::Unavailable(e.clone()))
    }

    /// A token for the login session about to open (after a second
    /// factor): the one a successful code check brought, else (after an
    /// approval) asked for.
    pub fn grant_session(&mut self, user: &str) -> Result<String, DaemonError> {
        let client = self.client()?;
        match client.take_session_token() {
            Some(token) => Ok(token),
            None => client.grant_session(user).map_err(convert),
        }
    }

    /// The caller's login session passed: its audit session id.
    pub fn open_session(
        &mut self,
        user: &str,
        token: &str,
        context: &HashMap<String, String>,
    ) -> Result<u32, DaemonError> {
        self.client()?.open_session(user, token, context).map_err(convert)
    }

    /// The caller's login session ended; whether it had passed.
    pub fn close_session(&mut self, user: &str) -> Result<bool, DaemonError> {
        self.client()?.close_session(user).map_err(convert)
    }
}

fn convert(e: ClientError) -> DaemonError {
    use crate::daemon::PushRefusal;
    use pam_mfa_client::MfaError;
    match e {
        ClientError::Refused(MfaError::TooManyRequests { retry_after }) => {
            DaemonError::PushRefused(PushRefusal::TooMany(retry_after))
        }
        ClientError::Refused(MfaError::RequestPending) => {
            DaemonError::PushRefused(PushRefusal::Pending)
        }
        ClientError::Refused(MfaError::PushBlocked { .. }) => {
            DaemonError::PushRefused(PushRefusal::Blocked)
        }
        ClientError::Unavailable(_) => DaemonError::Unavailable(e.to_string()),
        ClientError::Refused(_) => DaemonError::Refused(e.to_string()),
    }
}

impl Daemon for BusDaemon {
    fn is_enrolled(&mut self, user: &str) -> Result<bool, DaemonError> {
        self.client()?.is_enrolled(user).map_err(convert)
    }

    fn verify_code(
        &mut self,
        user: &str,
        code: &str,
        context: &HashMap<String, String>,
    ) -> Result<(VerifyOutcome, u64), DaemonError> {
        self.client()?.verify_code(user, code, context).map_err(convert)
    }

    fn has_approver(&mut self, user: &str) -> Result<bool, DaemonError> {
        self.client()?.has_approver(user).map_err(convert)
    }

    fn has_phone(&mut self, user: &str) -> Result<bool, DaemonError> {
        self.client()?.has_phone(user).map_err(convert)
    }

    fn create_challenge(
        &mut self,
        user: &str,
        context: &HashMap<String, String>,
    ) -> Result<(String, u32, u64), DaemonError> {
        self.client()?.create_challenge(user, context).map_err(convert)
    }

    fn wait_challenge(
        &mut self,
        id: &str,
        wait: std::time::Duration,
    ) -> Result<ChallengeOutcome, DaemonError> {
        self.client()?.wait_challenge(id, wait).map_err(convert)
    }

    fn cancel_challenge(&mut self, id: &str) -> Result<(), DaemonError> {
        self.client()?.cancel_challenge(id).map_err(convert)
    }

    fn is_remembered(
        &mut self,
        user: &str,
        device: &HashMap<String, String>,
    ) -> Result<bool, DaemonError> {
        self.client()?.is_remembered(user, device).map_err(convert)
    }

    fn covered(
        &mut self,
        user: &str,
        require_groups: &[String],
        exempt_users: &[String],
        exempt_groups: &[String],
    ) -> Result<bool, DaemonError> {
        self.client()?.covered(user, require_groups, exempt_users, exempt_groups).map_err(convert)
    }
}
