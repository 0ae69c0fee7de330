//! The web approver's side of a fleet's database (`storage/sql/004-web.sql`):
//! mfa-web's role calls the functions made for it, and of the hosts' only
//! those that read (a user's pending requests, phones' public keys). It
//! answers a request only with one of the user's phones, whose counter
//! advances in the same transaction, and the signature it checked is kept
//! there with the answer. Requests made and ended anywhere in the fleet
//! reach the pages through LISTEN/NOTIFY.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pam_mfa_core::challenge::Context;
use pam_mfa_core::passkey::{Assertion, Phone};
use pam_mfa_protocol::wire::ChallengeOutcome;
use postgres::Row;
use tokio::sync::broadcast;

use crate::postgres::{spawn_listener, Pool, Settings, ENDED, MADE};
use pam_mfa_core::storage::StorageError;

/// A request as the page lists it: id, what it asks, seconds left.
pub type Listed = (String, Context, u64);

/// The user an add-phone link is for, and the passkeys that user has.
pub type LinkFor = (String, Vec<Vec<u8>>);

/// A request ended by the phone: how, and what it asked.
pub type Denied = (ChallengeOutcome, Context);

/// Why the database did not take a phone's answer or denial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotTaken {
    /// No such pending request of this user.
    Unknown,
    /// It ended already, with this outcome.
    Ended(ChallengeOutcome),
    /// Not a phone of this user that may answer it.
    UnknownPhone,
    /// The passkey's counter did not advance: a replayed signature.
    CounterWentBack,
}

/// Why a link did not register a phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRefusal {
    /// Used, expired or never made.
    BadLink,
    /// That passkey is some user's phone already.
    Registered,
    /// The user has as many phones as allowed.
    TooMany,
}

/// mfa-web's connection to a fleet's database.
pub struct WebStore {
    pool: Arc<Pool>,
    changed: broadcast::Sender<String>,
    stop: Arc<AtomicBool>,
}

impl Drop for WebStore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn outcome(word: &str) -> Option<ChallengeOutcome> {
    ChallengeOutcome::ALL.into_iter().find(|o| o.as_str() == word)
}

fn seconds(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl WebStore {
    /// The store on the database of `settings`; a thread LISTENs for
    /// requests made and ended, and says whose they are on [`changes`].
    pub fn open(settings: Settings) -> WebStore {
        let pool = Pool::new(settings);
        let stop = Arc::new(AtomicBool::new(false));
        let (changed, _) = broadcast::channel(256);
        let tell = changed.clone();
        let spawned = spawn_listener(&pool, &stop, move |client, notices, _| {
            for (channel, id) in notices {
                if channel != ENDED && channel != MADE {
                    continue;
                }
                // Whose, read from the table: a NOTIFY anyone may send
                // names an id, never a user.
                let row = client.query_opt("SELECT mfa.request_user($1)", &[&id])?;
                if let Some(Some(user)) =
                    row.map(|r| r.try_get::<_, Option<String>>(0)).transpose()?
                {
                    let _ = tell.send(user);
                }
            }
            Ok(())
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the request listener: pages list on reload only");
        }
        WebStore { pool, changed, stop }
    }

    /// The users whose requests were made or ended, as they are.
    pub fn changes(&self) -> broadcast::Receiver<String> {
        self.changed.subscribe()
    }

    /// Connects once and says whether this role may do a web approver's work.
    pub fn probe(&self) -> Result<(), StorageError> {
        self.pool.run(|c| c.query("SELECT mfa.request_user('')", &[]).map(|_| ()))
    }

    fn field<'a, T: postgres::types::FromSql<'a>>(
        &self,
        row: &'a Row,
        i: usize,
    ) -> Result<T, StorageError> {
        row.try_get(i).map_err(|e| self.pool.corrupt(format!("column {i}: {e}")))
    }

    fn outcome_of(&self, word: Option<String>) -> Result<ChallengeOutcome, StorageError> {
        let word = word.unwrap_or_default();
        outcome(&word).ok_or_else(|| self.pool.corrupt(format!("outcome {word:?}")))
    }

    fn context_of(&self, row: &Row, i: usize) -> Result<Context, StorageError> {
        let value: serde_json::Value = self.field(row, i)?;
        serde_json::from_value(value).map_err(|e| self.pool.corrupt(format!("context: {e}")))
    }

    /// The user of an open, unused link (by its token's SHA-256), and the
    /// passkeys that user has.
    pub fn link_user(&self, token_hash: &[u8; 32]) -> Result<Option<LinkFor>, StorageError> {
        let hash = token_hash.as_slice();
        let row = self.pool.run(|c| c.query_opt("SELECT * FROM mfa.link_user($1)", &[&hash]))?;
        row.map(|row| Ok((self.field(&row, 0)?, self.field(&row, 1)?))).transpose()
    }

    /// Registers a new phone through a link: it waits for its test
    /// request, made by the database; (user, request id, seconds).
    pub fn link_phone(
        &self,
        token_hash: &[u8; 32],
        phone: &Phone,
        seconds_to_answer: u64,
    ) -> Result<Result<(String, String, u64), LinkRefusal>, StorageError> {
        let (hash, ttl) = (token_hash.as_slice(), i64::try_from(seconds_to_answer).unwrap_or(60));
        let row = self.pool.run(|c| {
            c.query_one(
                "SELECT * FROM mfa.link_phone($1, $2, $3, $4, $5)",
                &[&hash, &phone.credential_id, &phone.public_key, &phone.name, &ttl],
            )
        })?;
        let refusal: Option<String> = self.field(&row, 0)?;
        Ok(match refusal.as_deref() {
            None => Ok((self.field(&row, 1)?, self.field(&row, 2)?, seconds(self.field(&row, 3)?))),
            Some("registered") => Err(LinkRefusal::Registered),
            Some("too-many") => Err(LinkRefusal::TooMany),
            Some(_) => Err(LinkRefusal::BadLink),
        })
    }

    /// The user a passkey belongs to.
    pub fn phone_owner(&self, credential_id: &[u8]) -> Result<Option<String>, StorageError> {
        self.pool.run(|c| c.value("SELECT mfa.phone_owner($1)", &[&credential_id]))
    }

    pub fn phones(&self, user: &str) -> Result<Vec<Phone>, StorageError> {
        crate::postgres::phones(&self.pool, user)
    }

    /// Keeps a sign-in's counter; `false` when it did not advance.
    pub fn phone_used(
        &self,
        user: &str,
        credential_id: &[u8],
        counter: u32,
    ) -> Result<bool, StorageError> {
        let counter = i64::from(counter);
        self.pool.run(|c| {
            c.value("SELECT mfa.phone_used($1, $2, $3)", &[&user, &credential_id, &counter])
        })
    }

    /// The phone of `user` that may answer `request`: an active one, or
    /// the new phone this request is the test of (then `false`).
    pub fn answering_phone(
        &self,
        user: &str,
        credential_id: &[u8],
        request: &str,
    ) -> Result<Option<(Phone, bool)>, StorageError> {
        let row = self.pool.run(|c| {
            c.query_opt(
                "SELECT * FROM mfa.answering_phone($1, $2, $3)",
                &[&user, &credential_id, &request],
            )
        })?;
        let Some(row) = row else { return Ok(None) };
        let phone = Phone {
            credential_id: credential_id.to_vec(),
            public_key: self.field(&row, 0)?,
            name: self.field(&row, 1)?,
            added_at: seconds(self.field(&row, 2)?),
            sign_count: u32::try_from(self.field::<i64>(&row, 3)?).unwrap_or(u32::MAX),
            last_used: seconds(self.field(&row, 4)?),
        };
        Ok(Some((phone, self.field(&row, 5)?)))
    }

    /// The pending requests of `user`.
    pub fn pending(&self, user: &str) -> Result<Vec<Listed>, StorageError> {
        let rows =
            self.pool.run(|c| c.query("SELECT * FROM mfa.pending_challenges($1)", &[&user]))?;
        rows.iter()
            .map(|row| {
                Ok((self.field(row, 0)?, self.context_of(row, 1)?, seconds(self.field(row, 2)?)))
            })
            .collect()
    }

    /// A phone's answer, its signature `signed` over `challenge` checked
    /// by the caller: the outcome, and whether it was a phone's test.
    pub fn answer(
        &self,
        request: &str,
        user: &str,
        number: u32,
        counter: u32,
        challenge: &[u8],
        signed: &Assertion,
    ) -> Result<Result<(ChallengeOutcome, bool), NotTaken>, StorageError> {
        let (number, counter) = (i32::try_from(number).unwrap_or(-1), i64::from(counter));
        let row = self.pool.run(|c| {
            c.query_one(
                "SELECT * FROM mfa.phone_answer($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &request,
                    &user,
                    &number,
                    &signed.credential_id,
                    &counter,
                    &challenge,
                    &signed.authenticator_data,
                    &signed.client_data_json,
                    &signed.signature,
                ],
            )
        })?;
        let refusal: Option<String> = self.field(&row, 0)?;
        let ended = self.field::<Option<String>>(&row, 1)?;
        Ok(match refusal.as_deref() {
            None => Ok((self.outcome_of(ended)?, self.field(&row, 2)?)),
            Some("ended") => Err(NotTaken::Ended(self.outcome_of(ended)?)),
            Some("unknown-phone") => Err(NotTaken::UnknownPhone),
            Some("counter-went-back") => Err(NotTaken::CounterWentBack),
            Some(_) => Err(NotTaken::Unknown),
        })
    }

    /// The phone's "Deny" (or with `report`, "This was not me", which also
    /// blocks the user's push requests): the outcome and what it asked.
    pub fn deny(
        &self,
        request: &str,
        user: &str,
        report: bool,
    ) -> Result<Result<Denied, NotTaken>, StorageError> {
        let row = self.pool.run(|c| {
            c.query_one("SELECT * FROM mfa.phone_deny($1, $2, $3)", &[&request, &user, &report])
        })?;
        let refusal: Option<String> = self.field(&row, 0)?;
        let ended = self.field::<Option<String>>(&row, 1)?;
        Ok(match refusal.as_deref() {
            None => Ok((self.outcome_of(ended)?, self.context_of(&row, 2)?)),
            Some("ended") => Err(NotTaken::Ended(self.outcome_of(ended)?)),
            Some(_) => Err(NotTaken::Unknown),
        })
    }
}
