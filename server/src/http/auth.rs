//! Who may write: shared tokens and HMAC-SHA256 signatures, both compared
//! in constant time so that a sender cannot guess them byte by byte.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Whether `presented` is `expected`, in time independent of where they
/// differ (and of their lengths: their digests are compared).
pub fn same_token(presented: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(presented.as_bytes()), Sha256::digest(expected.as_bytes()));
    a.as_slice().ct_eq(b.as_slice()).into()
}

/// Whether `hex_signature` is the HMAC-SHA256 of `body` with `secret`.
pub fn signed_with(secret: &str, body: &[u8], hex_signature: &str) -> bool {
    let Ok(signature) = hex::decode(hex_signature.trim()) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let h = header?.trim();
    let (scheme, token) = h.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(same_token("s3cret", "s3cret"));
        assert!(!same_token("s3cre", "s3cret"));
        assert!(!same_token("", "s3cret"));
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn signatures() {
        // RFC 4231 test case 2.
        let mac = sign("Jefe", b"what do ya want for nothing?");
        assert_eq!(mac, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(signed_with("Jefe", b"what do ya want for nothing?", &mac));
        assert!(signed_with("Jefe", b"what do ya want for nothing?", &mac.to_uppercase()));
        assert!(!signed_with("Jefe", b"what do ya want for nothing!", &mac));
        assert!(!signed_with("jefe", b"what do ya want for nothing?", &mac));
        assert!(!signed_with("Jefe", b"what do ya want for nothing?", "zz"));
        assert!(!signed_with("Jefe", b"what do ya want for nothing?", ""));
    }
}
