//! Recovery codes: shown once, stored only as salted SHA-256 hashes, each
//! accepted once at the code prompt. A generated code carries 80 bits, so a
//! fast hash is safe; codes imported from google-authenticator (8 digits)
//! carry only 26 bits and are as strong as the file they came from.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::random::Random;
use crate::totp::constant_time_eq;
use crate::uri::base32;

/// How many codes a new set has.
pub const COUNT: usize = 10;
/// Random bytes per code: 80 bits, 16 base32 characters.
const CODE_BYTES: usize = 10;

/// A new set of codes, formatted `ABCD-EFGH-JKLM-NPQR`.
pub fn generate(random: &dyn Random) -> std::io::Result<Vec<Zeroizing<String>>> {
    (0..COUNT)
        .map(|_| {
            let mut bytes = Zeroizing::new([0u8; CODE_BYTES]);
            random.fill(bytes.as_mut())?;
            let plain = Zeroizing::new(base32(bytes.as_ref()));
            let groups: Vec<&str> = (0..4).filter_map(|i| plain.get(i * 4..i * 4 + 4)).collect();
            Ok(Zeroizing::new(groups.join("-")))
        })
        .collect()
}

/// The canonical form of what a user typed, if it can be a recovery code:
/// 16 base32 characters (dashes, spaces and case ignored), or 8 digits
/// (an imported google-authenticator scratch code).
pub fn normalize(input: &str) -> Option<Zeroizing<String>> {
    let canonical: Zeroizing<String> = Zeroizing::new(
        input.chars().filter(|c| *c != '-' && *c != ' ').map(|c| c.to_ascii_uppercase()).collect(),
    );
    let base32 = canonical.len() == 16
        && canonical.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b));
    let scratch = canonical.len() == 8 && canonical.bytes().all(|b| b.is_ascii_digit());
    (base32 || scratch).then_some(canonical)
}

/// Hex SHA-256 of salt and canonical code.
pub fn hash(salt: &str, canonical: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update(b":");
    hasher.update(canonical.as_bytes());
    crate::uri::hex(&hasher.finalize())
}

/// Index of the stored hash that `input` matches; every hash is compared.
pub fn find(hashes: &[String], salt: &str, input: &str) -> Option<usize> {
    let canonical = normalize(input)?;
    let wanted = hash(salt, &canonical);
    let mut found = None;
    for (i, stored) in hashes.iter().enumerate() {
        if constant_time_eq(stored.as_bytes(), wanted.as_bytes()) {
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::tests::TestRandom;

    #[test]
    fn generated_codes_are_distinct_and_well_formed() {
        let codes = generate(&TestRandom::default()).unwrap();
        assert_eq!(codes.len(), COUNT);
        for code in &codes {
            assert_eq!(code.len(), 19, "{}", code.as_str());
            assert!(normalize(code).is_some());
        }
        let mut unique: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
        unique.dedup();
        assert_eq!(unique.len(), COUNT);
    }

    #[test]
    fn a_code_is_found_however_it_is_typed() {
        let salt = "s";
        let hashes = vec![hash(salt, "ABCDEFGHJKLMNPQR"), hash(salt, "12345678")];
        assert_eq!(find(&hashes, salt, "abcd-efgh-jklm-npqr"), Some(0));
        assert_eq!(find(&hashes, salt, "ABCD EFGH JKLM NPQR"), Some(0));
        assert_eq!(find(&hashes, salt, "12345678"), Some(1));
        assert_eq!(find(&hashes, salt, "ABCD-EFGH-JKLM-NPQS"), None);
        assert_eq!(find(&hashes, "other salt", "12345678"), None);
    }

    #[test]
    fn things_that_cannot_be_recovery_codes_are_not() {
        for input in ["", "123456", "ABCD-EFGH", "ABCD-EFGH-JKLM-NPQ1", "1234567a"] {
            assert!(normalize(input).is_none(), "{input:?}");
        }
    }
}
