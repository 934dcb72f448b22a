//! Keys derived from `ANB_SECRET_KEY`: one for the API's tokens, one for the folder backend's
//! file links, each from HKDF-SHA256 with its own label. A key that leaks from one use (a file
//! link's signature is in every URL handed out) says nothing about the other, and the secret
//! itself is never used as a key.

use hkdf::Hkdf;
use sha2::Sha256;

/// The shortest `ANB_SECRET_KEY` accepted: HS256 wants at least 256 bits of key material.
pub const MIN_SECRET_BYTES: usize = 32;

const TOKEN_LABEL: &[u8] = b"anb-video/v1/api-tokens";
const LINK_LABEL: &[u8] = b"anb-video/v1/file-links";

fn derive(secret: &[u8], label: &[u8]) -> Vec<u8> {
    let mut key = vec![0u8; 32];
    Hkdf::<Sha256>::new(None, secret).expand(label, &mut key).expect("32 bytes is a valid HKDF-SHA256 length");
    key
}

/// The key that signs and checks the API's bearer tokens.
pub fn token_key(secret: &str) -> Vec<u8> {
    derive(secret.as_bytes(), TOKEN_LABEL)
}

/// The key that signs and checks the folder backend's `/files` links.
pub fn link_key(secret: &str) -> Vec<u8> {
    derive(secret.as_bytes(), LINK_LABEL)
}

/// Why a secret is not good enough, if it is not.
pub fn check_secret(secret: &str) -> Result<(), String> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!("ANB_SECRET_KEY: must be at least {MIN_SECRET_BYTES} bytes (it is {})", secret.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_keys_differ_from_each_other_and_from_the_secret() {
        let secret = "a-secret-of-at-least-thirty-two-bytes";
        let (tokens, links) = (token_key(secret), link_key(secret));
        assert_ne!(tokens, links);
        assert_ne!(tokens, secret.as_bytes());
        assert_eq!(tokens, token_key(secret), "deterministic: every task derives the same");
        assert_ne!(tokens, token_key("another-secret-of-thirty-two-bytes!!"));
        assert!(check_secret("short").is_err());
        assert!(check_secret(secret).is_ok());
    }
}
