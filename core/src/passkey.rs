//! Phones as approvers: a phone holds a passkey (a P-256 key made on the
//! phone, WebAuthn), and everything it signs is checked here, in mfad,
//! against the public key kept at registration. The web approver relays
//! assertions and holds no key.
//!
//! An approval is signed over the request it approves: the WebAuthn
//! challenge of the approve step is [`approval_challenge`] of the request
//! (its id, user, host, service, remote host, terminal, command) and the
//! number typed. The same signature cannot approve another request, nor
//! the same one with another number, and it stays as evidence.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use pam_mfa_protocol::wire::context;
use sha2::{Digest, Sha256};

use crate::challenge::Context;

/// A registered phone: its passkey's credential id and public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone {
    pub credential_id: Vec<u8>,
    /// The passkey's public key: a P-256 point, SEC1 uncompressed (65 bytes).
    pub public_key: Vec<u8>,
    /// The name the user gave it.
    pub name: String,
    pub added_at: u64,
    /// The authenticator's signature counter last seen (0: it keeps none).
    pub sign_count: u32,
    pub last_used: u64,
}

/// Where assertions must come from: the web approver's origin
/// (`https://host[:port]`) and its relying-party id (the host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relying {
    pub origin: String,
    pub rp_id: String,
}

/// What a phone sent back from `navigator.credentials.get()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    pub credential_id: Vec<u8>,
    pub authenticator_data: Vec<u8>,
    pub client_data_json: Vec<u8>,
    /// ECDSA, DER.
    pub signature: Vec<u8>,
}

/// A phone's approval as the store kept it: the phone's key, its
/// signature, and the request's number and context, to be checked again
/// by the host that made the request (`approval_challenge`, `verify`).
#[derive(Debug, Clone)]
pub struct Evidence {
    /// Without a counter: the store has checked that one already.
    pub phone: Phone,
    pub assertion: Assertion,
    pub number: u32,
    pub context: Context,
}

/// Phones a user may have at once.
pub const MAX_PHONES: usize = 10;
/// Longest passkey credential id WebAuthn allows.
pub const MAX_CREDENTIAL_ID: usize = 1023;
/// Bounds of what a phone sends back (authenticator data with extensions,
/// client data JSON, a DER signature).
pub const MAX_ASSERTION_PART: usize = 4096;
/// Longest phone name kept.
pub const MAX_PHONE_NAME: usize = 64;

/// Says which part is empty or too long: `Err("the credential id must be 1 to 1023 bytes")`.
pub fn bounded(what: &str, value: &[u8], max: usize) -> Result<(), String> {
    if value.is_empty() || value.len() > max {
        return Err(format!("{what} must be 1 to {max} bytes"));
    }
    Ok(())
}

impl Assertion {
    /// An assertion as received, each part within its bounds.
    pub fn new(
        credential_id: Vec<u8>,
        authenticator_data: Vec<u8>,
        client_data_json: Vec<u8>,
        signature: Vec<u8>,
    ) -> Result<Assertion, String> {
        bounded("the credential id", &credential_id, MAX_CREDENTIAL_ID)?;
        for (what, part) in [
            ("the authenticator data", &authenticator_data),
            ("the client data", &client_data_json),
            ("the signature", &signature),
        ] {
            bounded(what, part, MAX_ASSERTION_PART)?;
        }
        Ok(Assertion { credential_id, authenticator_data, client_data_json, signature })
    }
}

/// A phone's name as kept: printable, short, never empty.
pub fn phone_name(name: &str) -> String {
    let clean: String =
        name.chars().filter(|c| !c.is_control()).take(MAX_PHONE_NAME).collect::<String>();
    let clean = clean.trim();
    if clean.is_empty() {
        "phone".into()
    } else {
        clean.into()
    }
}

/// A refused passkey, logged (who, which phone, at which step, why);
/// returns what to tell the caller.
pub fn refused(user: &str, phone: Option<&Phone>, step: &str, refusal: Refusal) -> String {
    tracing::warn!(
        user = %user,
        phone = ?phone.map(|p| p.name.as_str()).unwrap_or(""),
        step,
        reason = refusal.as_str(),
        "passkey-refused"
    );
    format!("the passkey was not accepted: {}", refusal.as_str())
}

/// Why an assertion was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a passkey of this user (or no such passkey).
    UnknownPhone,
    /// The client data or authenticator data does not parse.
    Malformed,
    /// Not a `webauthn.get` ceremony.
    WrongType,
    /// Signed over another challenge (another request, number or sign-in).
    WrongChallenge,
    /// Made on another web origin, or inside a frame of one.
    WrongOrigin,
    /// The authenticator's relying party is not ours.
    WrongRpId,
    /// The user was not present (no touch, no gesture).
    NoPresence,
    /// The authenticator did not verify the user (PIN, biometrics).
    NoVerification,
    BadSignature,
    /// The signature counter did not advance: a copied key, or a replay.
    CounterWentBack,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownPhone => "unknown-phone",
            Refusal::Malformed => "malformed",
            Refusal::WrongType => "wrong-type",
            Refusal::WrongChallenge => "wrong-challenge",
            Refusal::WrongOrigin => "wrong-origin",
            Refusal::WrongRpId => "wrong-rp-id",
            Refusal::NoPresence => "no-user-presence",
            Refusal::NoVerification => "no-user-verification",
            Refusal::BadSignature => "bad-signature",
            Refusal::CounterWentBack => "counter-went-back",
        }
    }
}

/// Authenticator data flags (WebAuthn §6.1).
const USER_PRESENT: u8 = 0x01;
const USER_VERIFIED: u8 = 0x04;
/// rpIdHash (32) + flags (1) + signCount (4).
const AUTH_DATA_MIN: usize = 37;

/// The WebAuthn challenge that approves request `id` (with `context`, as
/// mfad keeps it) by typing `number`: a SHA-256 over every field, each
/// with its length, so no two requests share one.
pub fn approval_challenge(id: &str, context: &Context, number: u32) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"pam-mfa approval v1");
    let field = |key: &str| context.get(key).map(String::as_str).unwrap_or("");
    let number = number.to_string();
    for value in [
        id,
        field(context::USER),
        field(context::HOST),
        field(context::SERVICE),
        field(context::RHOST),
        field(context::TTY),
        field(context::COMMAND),
        number.as_str(),
    ] {
        hash.update(u32::try_from(value.len()).unwrap_or(u32::MAX).to_be_bytes());
        hash.update(value.as_bytes());
    }
    hash.finalize().into()
}

/// Checks that `phone` signed `expected_challenge` on our origin with the
/// user present and verified. Returns the authenticator's new counter.
pub fn verify(
    phone: &Phone,
    assertion: &Assertion,
    expected_challenge: &[u8],
    relying: &Relying,
) -> Result<u32, Refusal> {
    if assertion.credential_id != phone.credential_id {
        return Err(Refusal::UnknownPhone);
    }
    check_client_data(&assertion.client_data_json, expected_challenge, relying)?;
    let data = &assertion.authenticator_data;
    if data.len() < AUTH_DATA_MIN {
        return Err(Refusal::Malformed);
    }
    if data[..32] != Sha256::digest(relying.rp_id.as_bytes())[..] {
        return Err(Refusal::WrongRpId);
    }
    let flags = data[32];
    if flags & USER_PRESENT == 0 {
        return Err(Refusal::NoPresence);
    }
    if flags & USER_VERIFIED == 0 {
        return Err(Refusal::NoVerification);
    }
    let mut signed = data.clone();
    signed.extend_from_slice(&Sha256::digest(&assertion.client_data_json));
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_ASN1,
        &phone.public_key,
    );
    key.verify(&signed, &assertion.signature).map_err(|_| Refusal::BadSignature)?;
    let counter = u32::from_be_bytes([data[33], data[34], data[35], data[36]]);
    if !counter_advances(phone.sign_count, counter) {
        return Err(Refusal::CounterWentBack);
    }
    Ok(counter)
}

/// A counter of 0 both times is a passkey that keeps none (synced
/// passkeys); otherwise it must grow (WebAuthn §6.1.1).
pub fn counter_advances(last: u32, now: u32) -> bool {
    (last == 0 && now == 0) || now > last
}

fn check_client_data(json: &[u8], challenge: &[u8], relying: &Relying) -> Result<(), Refusal> {
    let data: serde_json::Value = serde_json::from_slice(json).map_err(|_| Refusal::Malformed)?;
    let text = |key: &str| data.get(key).and_then(serde_json::Value::as_str);
    if text("type") != Some("webauthn.get") {
        return Err(Refusal::WrongType);
    }
    let signed = text("challenge").ok_or(Refusal::Malformed)?;
    if signed != URL_SAFE_NO_PAD.encode(challenge) {
        return Err(Refusal::WrongChallenge);
    }
    let cross_origin = data.get("crossOrigin").and_then(serde_json::Value::as_bool);
    if text("origin") != Some(relying.origin.as_str())
        || cross_origin == Some(true)
        || data.get("topOrigin").is_some()
    {
        return Err(Refusal::WrongOrigin);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_names_are_kept_printable_and_short() {
        assert_eq!(phone_name("  Pixel\n 8\u{7} "), "Pixel 8");
        assert_eq!(phone_name("\n"), "phone");
        assert_eq!(phone_name(&"x".repeat(100)).len(), MAX_PHONE_NAME);
    }
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

    struct Authenticator {
        key: EcdsaKeyPair,
        rng: SystemRandom,
    }

    fn relying() -> Relying {
        Relying { origin: "https://approver.test:8443".into(), rp_id: "approver.test".into() }
    }

    impl Authenticator {
        fn new() -> Authenticator {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
            let key =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            Authenticator { key, rng }
        }

        fn phone(&self) -> Phone {
            Phone {
                credential_id: vec![1, 2, 3],
                public_key: self.key.public_key().as_ref().to_vec(),
                name: "phone".into(),
                added_at: 0,
                sign_count: 0,
                last_used: 0,
            }
        }

        fn sign(&self, client_data: &str, rp_id: &str, flags: u8, counter: u32) -> Assertion {
            let mut data = Sha256::digest(rp_id.as_bytes()).to_vec();
            data.push(flags);
            data.extend_from_slice(&counter.to_be_bytes());
            let mut signed = data.clone();
            signed.extend_from_slice(&Sha256::digest(client_data.as_bytes()));
            let signature = self.key.sign(&self.rng, &signed).unwrap();
            Assertion {
                credential_id: vec![1, 2, 3],
                authenticator_data: data,
                client_data_json: client_data.as_bytes().to_vec(),
                signature: signature.as_ref().to_vec(),
            }
        }
    }

    fn client_data(kind: &str, challenge: &[u8], origin: &str) -> String {
        format!(
            r#"{{"type":"{kind}","challenge":"{}","origin":"{origin}","crossOrigin":false}}"#,
            URL_SAFE_NO_PAD.encode(challenge)
        )
    }

    fn request() -> Context {
        [
            (context::USER, "alice"),
            (context::HOST, "web1"),
            (context::SERVICE, "sudo"),
            (context::RHOST, "192.0.2.7"),
            (context::TTY, "/dev/pts/3"),
            (context::COMMAND, "/usr/bin/id"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    const GOOD: u8 = USER_PRESENT | USER_VERIFIED;

    #[test]
    fn an_approval_signed_over_its_request_is_taken() {
        let a = Authenticator::new();
        let challenge = approval_challenge("c1", &request(), 71);
        let signed = a.sign(
            &client_data("webauthn.get", &challenge, &relying().origin),
            "approver.test",
            GOOD,
            5,
        );
        assert_eq!(verify(&a.phone(), &signed, &challenge, &relying()), Ok(5));
    }

    #[test]
    fn the_challenge_binds_every_field_and_the_number() {
        let base = approval_challenge("c1", &request(), 71);
        assert_ne!(base, approval_challenge("c2", &request(), 71), "id");
        assert_ne!(base, approval_challenge("c1", &request(), 17), "number");
        for key in [
            context::USER,
            context::HOST,
            context::SERVICE,
            context::RHOST,
            context::TTY,
            context::COMMAND,
        ] {
            let mut other = request();
            other.insert(key.to_string(), "x".into());
            assert_ne!(base, approval_challenge("c1", &other, 71), "{key}");
        }
        // Lengths keep fields apart: moving a byte between two is another request.
        let mut shifted = request();
        shifted.insert(context::HOST.into(), "web".into());
        shifted.insert(context::SERVICE.into(), "1sudo".into());
        assert_ne!(base, approval_challenge("c1", &shifted, 71));
    }

    #[test]
    fn an_approval_of_another_request_or_number_is_refused() {
        let a = Authenticator::new();
        let signed_for = approval_challenge("c1", &request(), 71);
        let signed = a.sign(
            &client_data("webauthn.get", &signed_for, &relying().origin),
            "approver.test",
            GOOD,
            1,
        );
        for other in
            [approval_challenge("c2", &request(), 71), approval_challenge("c1", &request(), 72)]
        {
            assert_eq!(
                verify(&a.phone(), &signed, &other, &relying()),
                Err(Refusal::WrongChallenge)
            );
        }
    }

    #[test]
    fn each_broken_part_is_refused_for_its_own_reason() {
        let a = Authenticator::new();
        let c = approval_challenge("c1", &request(), 71);
        let origin = relying().origin;
        let good = client_data("webauthn.get", &c, &origin);
        let cases = [
            (
                a.sign(&client_data("webauthn.create", &c, &origin), "approver.test", GOOD, 1),
                Refusal::WrongType,
            ),
            (
                a.sign(
                    &client_data("webauthn.get", &c, "https://evil.test"),
                    "approver.test",
                    GOOD,
                    1,
                ),
                Refusal::WrongOrigin,
            ),
            (a.sign(&good, "evil.test", GOOD, 1), Refusal::WrongRpId),
            (a.sign(&good, "approver.test", USER_VERIFIED, 1), Refusal::NoPresence),
            (a.sign(&good, "approver.test", USER_PRESENT, 1), Refusal::NoVerification),
            (a.sign("not json", "approver.test", GOOD, 1), Refusal::Malformed),
        ];
        for (assertion, refusal) in cases {
            assert_eq!(verify(&a.phone(), &assertion, &c, &relying()), Err(refusal));
        }
        let framed = good.replace("\"crossOrigin\":false", "\"crossOrigin\":true");
        let framed = a.sign(&framed, "approver.test", GOOD, 1);
        assert_eq!(verify(&a.phone(), &framed, &c, &relying()), Err(Refusal::WrongOrigin));
    }

    #[test]
    fn a_signature_by_another_key_or_over_changed_data_is_refused() {
        let (a, b) = (Authenticator::new(), Authenticator::new());
        let c = approval_challenge("c1", &request(), 71);
        let by_b =
            b.sign(&client_data("webauthn.get", &c, &relying().origin), "approver.test", GOOD, 1);
        assert_eq!(verify(&a.phone(), &by_b, &c, &relying()), Err(Refusal::BadSignature));
        let mut changed =
            a.sign(&client_data("webauthn.get", &c, &relying().origin), "approver.test", GOOD, 1);
        changed.authenticator_data[36] = 9;
        assert_eq!(verify(&a.phone(), &changed, &c, &relying()), Err(Refusal::BadSignature));
        let mut truncated = changed.clone();
        truncated.authenticator_data.truncate(36);
        assert_eq!(verify(&a.phone(), &truncated, &c, &relying()), Err(Refusal::Malformed));
        let mut other_id = by_b;
        other_id.credential_id = vec![9];
        assert_eq!(verify(&a.phone(), &other_id, &c, &relying()), Err(Refusal::UnknownPhone));
    }

    #[test]
    fn a_counter_that_does_not_advance_is_refused() {
        let a = Authenticator::new();
        let c = approval_challenge("c1", &request(), 71);
        let signed =
            a.sign(&client_data("webauthn.get", &c, &relying().origin), "approver.test", GOOD, 4);
        let seen = Phone { sign_count: 4, ..a.phone() };
        assert_eq!(verify(&seen, &signed, &c, &relying()), Err(Refusal::CounterWentBack));
        assert!(counter_advances(0, 0), "a passkey that keeps no counter");
        assert!(counter_advances(4, 5));
        assert!(!counter_advances(5, 0));
    }
}
