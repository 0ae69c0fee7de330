//! Reads a `~/.google_authenticator` file (google-authenticator-libpam), so
//! users keep their app entry when moving to pam-mfa.
//!
//! ```text
//! JBSWY3DPEHPK3PXP            the secret, base32
//! " RATE_LIMIT 3 30 …         at most 3 logins per 30 seconds
//! " WINDOW_SIZE 17            codes accepted around now
//! " DISALLOW_REUSE …
//! " TOTP_AUTH                 time-based (HOTP_COUNTER means counter-based)
//! " STEP_SIZE 30              optional
//! 12345678                    scratch codes, one per line
//! ```

use zeroize::Zeroizing;

/// Largest file accepted (real ones are a few hundred bytes).
pub const MAX_LEN: usize = 16 * 1024;

/// What the import keeps of the file.
#[derive(Debug, PartialEq, Eq)]
pub struct GoogleAuthenticator {
    pub secret: Zeroizing<Vec<u8>>,
    /// Steps either side of now, from WINDOW_SIZE.
    pub skew: Option<u64>,
    /// (attempts, seconds) from RATE_LIMIT.
    pub rate_limit: Option<(u64, u64)>,
    pub period: u64,
    /// The newest time step google-authenticator recorded as used
    /// (DISALLOW_REUSE): it and older steps stay refused here.
    pub last_used_step: Option<u64>,
    pub scratch_codes: Vec<Zeroizing<String>>,
}

fn number(
    word: Option<&str>,
    what: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, String> {
    let value: u64 = word
        .ok_or(format!("{what} has no value"))?
        .parse()
        .map_err(|_| format!("{what} is not a number"))?;
    if !range.contains(&value) {
        return Err(format!("{what} {value} is outside {}..{}", range.start(), range.end()));
    }
    Ok(value)
}

/// Parses the file's text; errors say which line is wrong (never echoing
/// a secret or code).
pub fn parse(text: &str) -> Result<GoogleAuthenticator, String> {
    if text.len() > MAX_LEN {
        return Err(format!("the file is larger than {MAX_LEN} bytes"));
    }
    let mut lines = text.lines();
    let first = lines.next().map(str::trim).unwrap_or_default();
    let secret = totp_rs::Secret::try_from_base32(first.to_ascii_uppercase())
        .map_err(|_| "line 1 is not a base32 secret".to_string())?;
    let secret = Zeroizing::new(secret.as_ref().to_vec());
    if secret.len() < 10 || secret.len() > 64 {
        return Err("line 1: the secret must be 80 to 512 bits".into());
    }
    let mut parsed = GoogleAuthenticator {
        secret,
        skew: None,
        rate_limit: None,
        period: 30,
        last_used_step: None,
        scratch_codes: Vec::new(),
    };
    let mut totp = false;
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(option) = line.strip_prefix('"') {
            let mut words = option.split_whitespace();
            match words.next() {
                Some("TOTP_AUTH") => totp = true,
                Some("HOTP_COUNTER") => {
                    return Err(format!("line {n}: counter-based (HOTP) secrets are not supported"))
                }
                Some("WINDOW_SIZE") => {
                    let size = number(words.next(), &format!("line {n}: WINDOW_SIZE"), 1..=21)?;
                    parsed.skew = Some((size - 1) / 2);
                }
                Some("RATE_LIMIT") => {
                    let attempts = number(words.next(), &format!("line {n}: RATE_LIMIT"), 1..=100)?;
                    let seconds =
                        number(words.next(), &format!("line {n}: RATE_LIMIT"), 1..=86_400)?;
                    parsed.rate_limit = Some((attempts, seconds));
                }
                Some("STEP_SIZE") => {
                    parsed.period =
                        number(words.next(), &format!("line {n}: STEP_SIZE"), 15..=300)?;
                }
                Some("DISALLOW_REUSE") => {
                    for word in words {
                        let step: u64 = word
                            .parse()
                            .map_err(|_| format!("line {n}: DISALLOW_REUSE is not a number"))?;
                        parsed.last_used_step = parsed.last_used_step.max(Some(step));
                    }
                }
                // Options with no meaning here (RESETTING_TIME_SKEW, …).
                _ => {}
            }
        } else if line.len() == 8 && line.bytes().all(|b| b.is_ascii_digit()) {
            if parsed.scratch_codes.len() >= 100 {
                return Err("more than 100 scratch codes".into());
            }
            parsed.scratch_codes.push(Zeroizing::new(line.to_string()));
        } else {
            return Err(format!("line {n} is neither an option nor an 8-digit scratch code"));
        }
    }
    if !totp {
        return Err(
            "the file has no \" TOTP_AUTH line: only time-based secrets can be imported".into()
        );
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n\" RATE_LIMIT 3 30 1700000000\n\" WINDOW_SIZE 17\n\" DISALLOW_REUSE 56666666\n\" TOTP_AUTH\n12345678\n87654321\n";

    #[test]
    fn a_typical_file_is_read() {
        let ga = parse(FILE).unwrap();
        assert_eq!(ga.secret.len(), 20);
        assert_eq!(ga.skew, Some(8));
        assert_eq!(ga.rate_limit, Some((3, 30)));
        assert_eq!(ga.period, 30);
        assert_eq!(ga.last_used_step, Some(56666666));
        let codes: Vec<&str> = ga.scratch_codes.iter().map(|c| c.as_str()).collect();
        assert_eq!(codes, ["12345678", "87654321"]);
    }

    #[test]
    fn bad_files_are_refused_with_the_line() {
        assert!(parse("").unwrap_err().contains("line 1"));
        assert!(parse("not base32!\n\" TOTP_AUTH\n").unwrap_err().contains("line 1"));
        assert!(parse("JBSWY3DPEHPK3PXPJBSWY3DP\n\" HOTP_COUNTER 1\n")
            .unwrap_err()
            .contains("HOTP"));
        assert!(parse("JBSWY3DPEHPK3PXPJBSWY3DP\n").unwrap_err().contains("TOTP_AUTH"));
        let err = parse("JBSWY3DPEHPK3PXPJBSWY3DP\n\" TOTP_AUTH\nhello\n").unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        assert!(parse("JBSWY3DPEHPK3PXPJBSWY3DP\n\" WINDOW_SIZE 99\n\" TOTP_AUTH\n").is_err());
        assert!(parse(&"A".repeat(MAX_LEN + 1)).is_err());
    }
}
