//! RFC 6238 time-based codes, and the replay rule: a pure function of the
//! secret, the code, the time and the last accepted step.

use pam_mfa_config::schema::Algorithm;

/// How codes of one enrollment are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub algorithm: Algorithm,
    pub digits: u8,
    pub period: u64,
}

/// The verdict on one code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Right, and newer than the last accepted step: accept and remember `step`.
    Accepted { step: u64 },
    /// Right, but for a step at or before the last accepted one.
    Replayed,
    /// Wrong.
    Rejected,
}

fn generator(secret: &[u8], params: Params) -> totp_rs::Totp {
    let algorithm = match params.algorithm {
        Algorithm::Sha1 => totp_rs::Algorithm::SHA1,
        Algorithm::Sha256 => totp_rs::Algorithm::SHA256,
        Algorithm::Sha512 => totp_rs::Algorithm::SHA512,
    };
    // The parameters come from the validated config or store (digits 6..=8,
    // period >= 1), which is all `generate` needs not to panic.
    totp_rs::Builder::new()
        .with_algorithm(algorithm)
        .with_digits(params.digits)
        .with_step_duration(params.period.max(1))
        .with_secret(secret.to_vec())
        .build_noncompliant()
}

/// The code for the time step that contains `unix_time`.
pub fn code_at(secret: &[u8], params: Params, unix_time: u64) -> String {
    generator(secret, params).generate(unix_time).to_string()
}

/// Checks `code` against the steps `now ± skew`. Every step is computed and
/// compared in constant time, so the time taken does not say which matched.
pub fn check(
    secret: &[u8],
    params: Params,
    code: &str,
    now: u64,
    skew: u64,
    last_step: Option<u64>,
) -> Check {
    if code.len() != usize::from(params.digits) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Check::Rejected;
    }
    let totp = generator(secret, params);
    let period = params.period.max(1);
    let current = now / period;
    let mut matched: Option<u64> = None;
    for step in current.saturating_sub(skew)..=current.saturating_add(skew) {
        let expected = totp.generate(step.saturating_mul(period)).to_string();
        if constant_time_eq(expected.as_bytes(), code.as_bytes()) {
            matched = Some(step);
        }
    }
    match (matched, last_step) {
        (None, _) => Check::Rejected,
        (Some(step), Some(last)) if step <= last => Check::Replayed,
        (Some(step), _) => Check::Accepted { step },
    }
}

/// Compares two byte strings without an early exit on the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 Appendix B: the seeds are the ASCII digits "1234567890"
    // repeated to the hash's block size of key: 20, 32 and 64 bytes.
    fn seed(len: usize) -> Vec<u8> {
        b"1234567890".iter().copied().cycle().take(len).collect()
    }

    const VECTORS: [(u64, &str, &str, &str); 6] = [
        (59, "94287082", "46119246", "90693936"),
        (1111111109, "07081804", "68084774", "25091201"),
        (1111111111, "14050471", "67062674", "99943326"),
        (1234567890, "89005924", "91819424", "93441116"),
        (2000000000, "69279037", "90698825", "38618901"),
        (20000000000, "65353130", "77737706", "47863826"),
    ];

    fn params(algorithm: Algorithm) -> Params {
        Params { algorithm, digits: 8, period: 30 }
    }

    #[test]
    fn rfc6238_appendix_b_sha1() {
        for (t, code, _, _) in VECTORS {
            assert_eq!(code_at(&seed(20), params(Algorithm::Sha1), t), code, "T={t}");
        }
    }

    #[test]
    fn rfc6238_appendix_b_sha256() {
        for (t, _, code, _) in VECTORS {
            assert_eq!(code_at(&seed(32), params(Algorithm::Sha256), t), code, "T={t}");
        }
    }

    #[test]
    fn rfc6238_appendix_b_sha512() {
        for (t, _, _, code) in VECTORS {
            assert_eq!(code_at(&seed(64), params(Algorithm::Sha512), t), code, "T={t}");
        }
    }

    #[test]
    fn code_of_now_is_accepted_and_names_its_step() {
        let p = Params { algorithm: Algorithm::Sha1, digits: 6, period: 30 };
        let code = code_at(&seed(20), p, 1_000_000);
        assert_eq!(
            check(&seed(20), p, &code, 1_000_000, 1, None),
            Check::Accepted { step: 1_000_000 / 30 }
        );
    }

    #[test]
    fn code_within_skew_is_accepted_and_outside_refused() {
        let p = Params { algorithm: Algorithm::Sha1, digits: 6, period: 30 };
        let now = 1_000_020;
        let prev = code_at(&seed(20), p, now - 30);
        let old = code_at(&seed(20), p, now - 60);
        assert!(matches!(check(&seed(20), p, &prev, now, 1, None), Check::Accepted { .. }));
        assert_eq!(check(&seed(20), p, &old, now, 1, None), Check::Rejected);
        assert_eq!(check(&seed(20), p, &prev, now, 0, None), Check::Rejected);
    }

    #[test]
    fn replayed_code_is_refused() {
        let p = Params { algorithm: Algorithm::Sha1, digits: 6, period: 30 };
        let now = 1_000_020;
        let code = code_at(&seed(20), p, now);
        let Check::Accepted { step } = check(&seed(20), p, &code, now, 1, None) else {
            panic!("first use refused");
        };
        assert_eq!(check(&seed(20), p, &code, now, 1, Some(step)), Check::Replayed);
        // An older code than the last accepted one is a replay too.
        let prev = code_at(&seed(20), p, now - 30);
        assert_eq!(check(&seed(20), p, &prev, now, 1, Some(step)), Check::Replayed);
    }

    #[test]
    fn malformed_codes_are_rejected() {
        let p = Params { algorithm: Algorithm::Sha1, digits: 6, period: 30 };
        for code in ["", "12345", "1234567", "12a456", " 123456", "١٢٣٤٥٦"] {
            assert_eq!(check(&seed(20), p, code, 0, 1, None), Check::Rejected, "{code:?}");
        }
    }
}
