//! mfad over the bus, for the module: one client per authentication,
//! dropped (connection, runtime and all) when `pam_sm_authenticate` returns.

use std::collections::HashMap;

use pam_mfa_config::client::{Client, ClientError};
use pam_mfa_config::schema::Config;
use pam_mfa_config::wire::VerifyOutcome;

use crate::authenticate::{Daemon, DaemonError};

pub struct BusDaemon {
    client: Result<Client, String>,
}

impl BusDaemon {
    pub fn new(config: &Config) -> BusDaemon {
        BusDaemon {
            client: Client::from_config(config).map_err(|e| e.to_string()),
        }
    }

    fn client(&mut self) -> Result<&mut Client, DaemonError> {
        self.client
            .as_mut()
            .map_err(|e| DaemonError::Unavailable(e.clone()))
    }
}

fn convert(e: ClientError) -> DaemonError {
    match e {
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
        self.client()?
            .verify_code(user, code, context)
            .map_err(convert)
    }
}
