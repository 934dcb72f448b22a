//! Expiring, HMAC-signed URLs for the folder backend: `/files/{key}?expires=UNIX&sig=HEX` to
//! download, and `/files/{key}?expires=UNIX&size=N&sig=HEX` to upload exactly `N` bytes with a
//! PUT. The web tier serves `/files/...` only when the signature matches and the time has not
//! passed; the two kinds sign different messages, so a download link never allows an upload.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::BlobKey;

type HmacSha256 = Hmac<Sha256>;

/// Signs and verifies file URLs with a secret key.
#[derive(Clone)]
pub struct UrlSigner {
    secret: Vec<u8>,
    /// Prefix of every URL, e.g. `http://127.0.0.1:8000/files`.
    base_url: String,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSigner").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

impl UrlSigner {
    pub fn new(secret: impl Into<Vec<u8>>, base_url: impl Into<String>) -> Self {
        UrlSigner { secret: secret.into(), base_url: base_url.into().trim_end_matches('/').to_owned() }
    }

    /// A URL for `key` valid until `now + expires_in`.
    pub fn sign(&self, key: &BlobKey, expires_in: Duration, now: SystemTime) -> String {
        let expires = unix(now) + expires_in.as_secs();
        format!("{}/{}?expires={expires}&sig={}", self.base_url, key, hex::encode(self.mac(&message(key, expires))))
    }

    /// A URL that lets one PUT of exactly `size` bytes store `key` until `now + expires_in`.
    pub fn sign_put(&self, key: &BlobKey, size: u64, expires_in: Duration, now: SystemTime) -> String {
        let expires = unix(now) + expires_in.as_secs();
        let sig = hex::encode(self.mac(&put_message(key, expires, size)));
        format!("{}/{}?expires={expires}&size={size}&sig={sig}", self.base_url, key)
    }

    /// Whether a download of `key` with these query values may be served at `now`.
    pub fn verify(&self, key: &BlobKey, expires: u64, sig_hex: &str, now: SystemTime) -> bool {
        self.verify_message(&message(key, expires), expires, sig_hex, now)
    }

    /// Whether an upload of `size` bytes to `key` with these query values may be accepted at `now`.
    pub fn verify_put(&self, key: &BlobKey, expires: u64, size: u64, sig_hex: &str, now: SystemTime) -> bool {
        self.verify_message(&put_message(key, expires, size), expires, sig_hex, now)
    }

    fn verify_message(&self, message: &str, expires: u64, sig_hex: &str, now: SystemTime) -> bool {
        let Ok(sig) = hex::decode(sig_hex) else { return false };
        let mut mac = self.new_mac();
        mac.update(message.as_bytes());
        // Constant-time comparison; the time check comes after so both paths cost the same.
        mac.verify_slice(&sig).is_ok() && unix(now) < expires
    }

    fn mac(&self, message: &str) -> Vec<u8> {
        let mut mac = self.new_mac();
        mac.update(message.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    fn new_mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.secret).expect("HMAC takes keys of any length")
    }
}

fn message(key: &BlobKey, expires: u64) -> String {
    format!("{key}\n{expires}")
}

fn put_message(key: &BlobKey, expires: u64, size: u64) -> String {
    format!("PUT\n{key}\n{expires}\n{size}")
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(url: &str) -> (u64, String) {
        let q = url.split_once('?').unwrap().1;
        let mut expires = 0;
        let mut sig = String::new();
        for pair in q.split('&') {
            match pair.split_once('=').unwrap() {
                ("expires", v) => expires = v.parse().unwrap(),
                ("sig", v) => sig = v.to_owned(),
                _ => {}
            }
        }
        (expires, sig)
    }

    #[test]
    fn an_upload_link_allows_its_size_only_and_is_not_a_download_link() {
        let signer = UrlSigner::new("secret", "http://127.0.0.1:8000/files");
        let key = BlobKey::new("uploads/a.mp4").unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let url = signer.sign_put(&key, 1234, Duration::from_secs(60), now);
        assert!(url.starts_with("http://127.0.0.1:8000/files/uploads/a.mp4?expires=1000060&size=1234&sig="), "{url}");
        let (expires, sig) = query(&url);
        assert!(signer.verify_put(&key, expires, 1234, &sig, now));
        assert!(!signer.verify_put(&key, expires, 1235, &sig, now), "another size");
        assert!(!signer.verify_put(&key, expires, 1234, &sig, now + Duration::from_secs(60)), "expired");
        assert!(!signer.verify(&key, expires, &sig, now), "an upload link is not a download link");
        let download = signer.sign(&key, Duration::from_secs(60), now);
        let (expires, sig) = query(&download);
        assert!(!signer.verify_put(&key, expires, 0, &sig, now), "a download link is not an upload link");
    }

    #[test]
    fn a_signed_url_verifies_until_it_expires() {
        let signer = UrlSigner::new("secret", "http://127.0.0.1:8000/files/");
        let key = BlobKey::new("processed/a.mp4").unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let url = signer.sign(&key, Duration::from_secs(60), now);
        assert!(url.starts_with("http://127.0.0.1:8000/files/processed/a.mp4?expires=1000060&sig="), "{url}");
        let (expires, sig) = query(&url);
        // The clock is injected: these are instants, not measured durations.
        let last_valid_second = now + Duration::from_secs(59);
        let expiry = now + Duration::from_secs(60);
        assert!(signer.verify(&key, expires, &sig, last_valid_second));
        assert!(!signer.verify(&key, expires, &sig, expiry), "expired");
        assert!(!signer.verify(&key, expires + 3600, &sig, now), "a later expiry is not signed");
        assert!(!signer.verify(&BlobKey::new("processed/b.mp4").unwrap(), expires, &sig, now), "another key");
        assert!(!UrlSigner::new("other", "x").verify(&key, expires, &sig, now), "another secret");
        assert!(!signer.verify(&key, expires, "zz", now), "garbage");
    }
}
