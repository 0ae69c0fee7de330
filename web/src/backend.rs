//! Where the page's work is done. On one host: mfad, over the bus
//! (`io.github.pam_mfa.Web1`), which checks every passkey signature with
//! the key it keeps. In a fleet: the database, with mfa-web's own role
//! (`[web] connection`); then the signatures are checked here, with the
//! same code (`pam_mfa_core::passkey`), and the database takes an answer
//! only from one of the user's phones whose counter advances, and keeps
//! the signature with it.

use std::collections::HashMap;
use std::sync::Arc;

use pam_mfa_client::{MfaError, WebProxy};
use pam_mfa_core::passkey::{self, Assertion, Phone, Refusal, Relying};
use pam_mfa_core::storage::StorageError;
use pam_mfa_protocol::wire::{context, ChallengeOutcome};
use pam_mfa_storage::web::{LinkRefusal, Listed, NotTaken, WebStore};

pub enum Backend {
    Mfad(WebProxy<'static>),
    Database(Fleet),
}

pub struct Fleet {
    pub store: Arc<WebStore>,
    pub relying: Relying,
    /// Seconds a new phone has to answer its test request ([push] timeout_seconds).
    pub test_seconds: u64,
}

/// Runs `work` on the database off the async threads.
async fn db<T: Send + 'static>(
    store: &Arc<WebStore>,
    work: impl FnOnce(&WebStore) -> Result<T, StorageError> + Send + 'static,
) -> Result<T, MfaError> {
    let store = Arc::clone(store);
    match tokio::task::spawn_blocking(move || work(&store)).await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "database-failed");
            Err(MfaError::Internal(format!("the database: {e}")))
        }
        Err(e) => Err(MfaError::Internal(format!("a database task failed: {e}"))),
    }
}

/// A refused passkey, logged, as the caller is told.
fn refused(user: &str, phone: Option<&Phone>, step: &str, refusal: Refusal) -> MfaError {
    MfaError::AccessDenied(passkey::refused(user, phone, step, refusal))
}

fn hash(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn bad_link() -> MfaError {
    MfaError::InvalidArgument(
        "this link cannot be used: it was used already, it expired, or it was never made".into(),
    )
}

fn not_taken(user: &str, phone: &Phone, step: &str, why: NotTaken) -> MfaError {
    match why {
        NotTaken::Unknown => MfaError::NoSuchChallenge,
        NotTaken::Ended(outcome) => MfaError::ChallengeEnded { outcome: outcome.into() },
        NotTaken::UnknownPhone => refused(user, Some(phone), step, Refusal::UnknownPhone),
        NotTaken::CounterWentBack => refused(user, Some(phone), step, Refusal::CounterWentBack),
    }
}

impl Backend {
    /// The user an add-phone link is for, and the passkeys that user has.
    pub async fn check_link(&self, token: &str) -> Result<(String, Vec<Vec<u8>>), MfaError> {
        match self {
            Backend::Mfad(mfad) => mfad.check_link(token).await,
            Backend::Database(fleet) => {
                let hash = hash(token);
                db(&fleet.store, move |s| s.link_user(&hash)).await?.ok_or_else(bad_link)
            }
        }
    }

    /// A phone registered through a link: (user, its test request, seconds).
    pub async fn add_phone(
        &self,
        token: &str,
        credential_id: &[u8],
        public_key: &[u8],
        name: &str,
    ) -> Result<(String, String, u64), MfaError> {
        let fleet = match self {
            Backend::Mfad(mfad) => {
                return mfad.add_phone(token, credential_id, public_key, name).await
            }
            Backend::Database(fleet) => fleet,
        };
        passkey::bounded("the credential id", credential_id, passkey::MAX_CREDENTIAL_ID)
            .map_err(MfaError::InvalidArgument)?;
        if public_key.len() != 65 || public_key[0] != 4 {
            return Err(MfaError::InvalidArgument(
                "the public key must be a P-256 point, SEC1 uncompressed (65 bytes)".into(),
            ));
        }
        let phone = Phone {
            credential_id: credential_id.to_vec(),
            public_key: public_key.to_vec(),
            name: passkey::phone_name(name),
            added_at: 0,
            sign_count: 0,
            last_used: 0,
        };
        let (hash, seconds, label) = (hash(token), fleet.test_seconds, phone.name.clone());
        let registered = db(&fleet.store, move |s| s.link_phone(&hash, &phone, seconds)).await?;
        match registered {
            Ok((user, id, seconds)) => {
                tracing::info!(user = %user, phone = %label, challenge = %id, "phone-registered-awaiting-test");
                Ok((user, id, seconds))
            }
            Err(LinkRefusal::BadLink) => Err(bad_link()),
            Err(LinkRefusal::Registered) => {
                Err(MfaError::InvalidArgument("this passkey is registered already".into()))
            }
            Err(LinkRefusal::TooMany) => Err(MfaError::InvalidArgument(format!(
                "this user has {} phones already: remove one first (mfa-enroll --remove-phone)",
                passkey::MAX_PHONES
            ))),
        }
    }

    /// A phone's passkey signed `challenge` to sign in: (user, phone name).
    pub async fn sign_in(
        &self,
        challenge: &[u8],
        signed: &Assertion,
    ) -> Result<(String, String), MfaError> {
        let fleet = match self {
            Backend::Mfad(mfad) => {
                let a = signed;
                return mfad
                    .sign_in(
                        challenge,
                        &a.credential_id,
                        &a.authenticator_data,
                        &a.client_data_json,
                        &a.signature,
                    )
                    .await;
            }
            Backend::Database(fleet) => fleet,
        };
        let id = signed.credential_id.clone();
        let found = db(&fleet.store, move |s| {
            let Some(user) = s.phone_owner(&id)? else { return Ok(None) };
            let phone = s.phones(&user)?.into_iter().find(|p| p.credential_id == id);
            Ok(phone.map(|p| (user, p)))
        })
        .await?;
        let Some((user, phone)) = found else {
            return Err(refused("", None, "sign-in", Refusal::UnknownPhone));
        };
        let counter = passkey::verify(&phone, signed, challenge, &fleet.relying)
            .map_err(|r| refused(&user, Some(&phone), "sign-in", r))?;
        let (who, id) = (user.clone(), phone.credential_id.clone());
        if !db(&fleet.store, move |s| s.phone_used(&who, &id, counter)).await? {
            return Err(refused(&user, Some(&phone), "sign-in", Refusal::CounterWentBack));
        }
        tracing::info!(user = %user, phone = %phone.name, "phone-signed-in");
        Ok((user, phone.name))
    }

    /// The pending requests of `user`.
    pub async fn pending(&self, user: &str) -> Result<Vec<Listed>, MfaError> {
        match self {
            Backend::Mfad(mfad) => mfad.pending(user).await,
            Backend::Database(fleet) => {
                let user = user.to_string();
                db(&fleet.store, move |s| s.pending(&user)).await
            }
        }
    }

    /// Approves request `id` of `user` with `number`, signed by the phone
    /// over this request and this number; returns the outcome.
    #[allow(clippy::too_many_arguments)]
    pub async fn approve(
        &self,
        user: &str,
        id: &str,
        number: u32,
        signed: &Assertion,
    ) -> Result<u32, MfaError> {
        let fleet = match self {
            Backend::Mfad(mfad) => {
                let a = signed;
                return mfad
                    .approve(
                        user,
                        id,
                        number,
                        &a.credential_id,
                        &a.authenticator_data,
                        &a.client_data_json,
                        &a.signature,
                    )
                    .await;
            }
            Backend::Database(fleet) => fleet,
        };
        let (who, wanted, cred) = (user.to_string(), id.to_string(), signed.credential_id.clone());
        let (asks, phone) = db(&fleet.store, move |s| {
            let asks = s.pending(&who)?.into_iter().find(|(c, _, _)| *c == wanted);
            let phone = s.answering_phone(&who, &cred, &wanted)?;
            Ok((asks.map(|(_, asks, _)| asks), phone))
        })
        .await?;
        let asks: HashMap<String, String> = asks.ok_or(MfaError::NoSuchChallenge)?;
        let (phone, active) =
            phone.ok_or_else(|| refused(user, None, "approve", Refusal::UnknownPhone))?;
        let challenge = passkey::approval_challenge(id, &asks, number);
        let counter = passkey::verify(&phone, signed, &challenge, &fleet.relying)
            .map_err(|r| refused(user, Some(&phone), "approve", r))?;
        let (who, wanted, evidence) = (user.to_string(), id.to_string(), signed.clone());
        let answered = db(&fleet.store, move |s| {
            s.answer(&wanted, &who, number, counter, &challenge, &evidence)
        })
        .await?;
        let (outcome, test) = answered.map_err(|why| not_taken(user, &phone, "approve", why))?;
        if !active && outcome == ChallengeOutcome::Approved {
            tracing::info!(user = %user, phone = %phone.name, "phone-added");
        }
        tracing::info!(
            user = %user,
            service = ?asks.get(context::SERVICE).cloned().unwrap_or_default(),
            challenge = %id,
            test,
            result = outcome.as_str(),
            phone = %phone.name,
            "challenge-ended-by-phone"
        );
        Ok(outcome.into())
    }

    /// The phone's "Deny".
    pub async fn deny(&self, user: &str, id: &str) -> Result<u32, MfaError> {
        match self {
            Backend::Mfad(mfad) => mfad.deny(user, id).await,
            Backend::Database(fleet) => ended(fleet, user, id, false).await,
        }
    }

    /// "This was not me": denies, and blocks the user's push requests.
    pub async fn report(&self, user: &str, id: &str) -> Result<u32, MfaError> {
        match self {
            Backend::Mfad(mfad) => mfad.report(user, id).await,
            Backend::Database(fleet) => ended(fleet, user, id, true).await,
        }
    }
}

async fn ended(fleet: &Fleet, user: &str, id: &str, report: bool) -> Result<u32, MfaError> {
    let (who, wanted) = (user.to_string(), id.to_string());
    let denied = db(&fleet.store, move |s| s.deny(&wanted, &who, report)).await?;
    let (outcome, asks) = match denied {
        Ok(done) => done,
        Err(NotTaken::Ended(outcome)) => {
            return Err(MfaError::ChallengeEnded { outcome: outcome.into() })
        }
        Err(_) => return Err(MfaError::NoSuchChallenge),
    };
    if report {
        let field = |key: &str| asks.get(key).cloned().unwrap_or_default();
        tracing::warn!(
            user = %user,
            service = ?field(context::SERVICE),
            host = ?field(context::HOST),
            rhost = ?field(context::RHOST),
            tty = ?field(context::TTY),
            command = ?field(context::COMMAND),
            challenge = %id,
            reported_by = "phone",
            "suspicious-request-reported"
        );
        tracing::warn!(user = %user, "push-blocked");
    } else {
        tracing::info!(user = %user, challenge = %id, result = outcome.as_str(), by = "phone", "challenge-ended");
    }
    Ok(outcome.into())
}
