//! The otpauth Key URI (the text inside the setup QR code), with every
//! parameter spelled out so that apps need not guess defaults.

use crate::totp::Params;

/// Lower-case hex of `bytes` (ids, tokens, salts, hashes).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 4648 base32, upper case, without padding (what authenticator apps read).
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer = 0u16;
    let mut bits = 0u8;
    for &b in bytes {
        buffer = (buffer << 8) | u16::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[usize::from((buffer >> bits) & 31)]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[usize::from((buffer << (5 - bits)) & 31)]));
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=…&algorithm=…&digits=…&period=…`
pub fn otpauth(issuer: &str, account: &str, secret: &str, params: Params) -> String {
    format!(
        "otpauth://totp/{issuer_enc}:{account}?secret={secret}&issuer={issuer_enc}&algorithm={algorithm}&digits={digits}&period={period}",
        issuer_enc = encode(issuer),
        account = encode(account),
        algorithm = params.algorithm.as_str(),
        digits = params.digits,
        period = params.period,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc4648_vectors() {
        for (input, output) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(input.as_bytes()), output, "{input:?}");
        }
    }

    #[test]
    fn base32_round_trips_through_totp_rs() {
        let bytes: Vec<u8> = (0u8..20).collect();
        let decoded = totp_rs::Secret::try_from_base32(base32(&bytes)).unwrap();
        assert_eq!(decoded.as_ref(), bytes.as_slice());
    }

    #[test]
    fn issuer_and_account_are_encoded() {
        assert_eq!(encode("My Org:x@h"), "My%20Org%3Ax%40h");
    }
}
