//! Provider credentials sealed at rest: ChaCha20-Poly1305 with a random 96-bit nonce and a
//! context (say "tenant-7/zns/refresh_token") bound in as associated data, so a sealed value
//! copied to another place does not open there.
//!
//! Sealed form: `v1:` followed by hex of nonce (12 bytes) then ciphertext and tag.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;

const VERSION_PREFIX: &str = "v1:";
const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the key must be {KEY_BYTES} bytes written as {} hex digits", KEY_BYTES * 2)]
    Key,
    #[error("the sealed value does not start with {VERSION_PREFIX:?}")]
    Version,
    #[error("the sealed value is not well formed")]
    Malformed,
    /// Wrong key, wrong context, or altered text: AEAD cannot tell which, and neither do we.
    #[error("the sealed value does not open with this key and context")]
    Rejected,
}

/// Seals and opens secrets with one key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Sealer(<key hidden>)")
    }
}

impl Sealer {
    pub fn new(key: [u8; KEY_BYTES]) -> Self {
        Sealer {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        }
    }

    /// A key from configuration: 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(key_hex: &str) -> Result<Self, SecretError> {
        let bytes = hex::decode(key_hex.trim()).map_err(|_| SecretError::Key)?;
        let key: [u8; KEY_BYTES] = bytes.try_into().map_err(|_| SecretError::Key)?;
        Ok(Sealer::new(key))
    }

    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext,
            aad: context.as_bytes(),
        };
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            // Encryption fails only past 256 GiB of plaintext; no credential comes near.
            .expect("ChaCha20-Poly1305 seals any credential-sized input");
        let mut sealed = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        format!("{VERSION_PREFIX}{}", hex::encode(sealed))
    }

    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, SecretError> {
        let encoded = sealed
            .trim()
            .strip_prefix(VERSION_PREFIX)
            .ok_or(SecretError::Version)?;
        let bytes = hex::decode(encoded).map_err(|_| SecretError::Malformed)?;
        if bytes.len() < NONCE_BYTES + TAG_BYTES {
            return Err(SecretError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let payload = Payload {
            msg: ciphertext,
            aad: context.as_bytes(),
        };
        self.cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| SecretError::Rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn a_sealed_secret_opens_with_the_same_key_and_context() {
        let sealer = Sealer::from_hex(KEY_HEX).unwrap();
        let sealed = sealer.seal(b"refresh-token-1", "tenant-7/zns/refresh_token");
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("refresh-token-1"));
        assert_eq!(
            sealer.open(&sealed, "tenant-7/zns/refresh_token").unwrap(),
            b"refresh-token-1"
        );
        // A fresh nonce each time: the same secret never seals to the same text.
        assert_ne!(
            sealed,
            sealer.seal(b"refresh-token-1", "tenant-7/zns/refresh_token")
        );
        assert_eq!(sealer.open(&sealer.seal(b"", "c"), "c").unwrap(), b"");
    }

    #[test]
    fn a_wrong_key_or_context_does_not_open() {
        let sealer = Sealer::from_hex(KEY_HEX).unwrap();
        let sealed = sealer.seal(b"secret", "tenant-7/esms/api_key");
        let other = Sealer::new([7u8; 32]);
        assert_eq!(
            other.open(&sealed, "tenant-7/esms/api_key"),
            Err(SecretError::Rejected)
        );
        assert_eq!(
            sealer.open(&sealed, "tenant-8/esms/api_key"),
            Err(SecretError::Rejected)
        );
    }

    #[test]
    fn altered_text_does_not_open() {
        let sealer = Sealer::from_hex(KEY_HEX).unwrap();
        let sealed = sealer.seal(b"secret", "context");
        let digits: Vec<char> = sealed.chars().collect();
        for position in 3..digits.len() {
            let mut altered = digits.clone();
            altered[position] = if digits[position] == '0' { '1' } else { '0' };
            let altered: String = altered.into_iter().collect();
            assert_eq!(
                sealer.open(&altered, "context"),
                Err(SecretError::Rejected),
                "{position}"
            );
        }
        assert_eq!(
            sealer.open(&sealed[..sealed.len() - 2], "context"),
            Err(SecretError::Rejected)
        );
        assert_eq!(
            sealer.open("v1:abcd", "context"),
            Err(SecretError::Malformed)
        );
        assert_eq!(sealer.open("v1:zz", "context"), Err(SecretError::Malformed));
        assert_eq!(
            sealer.open(&sealed.replacen("v1:", "v2:", 1), "context"),
            Err(SecretError::Version)
        );
    }

    #[test]
    fn keys_from_configuration_must_be_64_hex_digits() {
        assert!(Sealer::from_hex(&format!("  {KEY_HEX}\n")).is_ok());
        assert_eq!(
            Sealer::from_hex(&KEY_HEX[2..]).unwrap_err(),
            SecretError::Key
        );
        assert_eq!(Sealer::from_hex("not hex").unwrap_err(), SecretError::Key);
        assert!(!format!("{:?}", Sealer::new([1u8; 32])).contains("01"));
    }
}
