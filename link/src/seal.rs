//! The encryption of a file before it leaves its owner (format version 1).
//!
//! A file is cut into chunks of [`PLAIN_CHUNK`] bytes (the last one shorter; an empty file
//! is one empty chunk). Chunk `i` is sealed with AES-256-GCM under the file's key with the
//! 96-bit nonce `0^64 ‖ be32(i)` and no associated data, giving `len + 16` bytes: a sealed
//! chunk is exactly one PAST chunk ([`CHUNK_SIZE`] bytes, the last one shorter), so storing
//! nodes hash and serve ciphertext chunk by chunk and a reader opens each chunk as it
//! arrives, in any order. The key is 32 random bytes drawn for each file, never reused.
//!
//! The file's name, media type and plaintext size ([`Meta`]) are encoded with postcard,
//! sealed under the same key with the nonce `1^96` (no chunk uses it), and written in the
//! certificate's name field as `e1.` followed by the base64url (no padding) of the sealed
//! bytes; the field holds at most [`MAX_NAME_BYTES`], so a long name is shortened (its end
//! kept, so its extension survives). A public file's name field is its plain name.
//!
//! What storing nodes and the signaling server see of an encrypted file: its size rounded
//! up by 16 bytes per chunk, its owner's key, the creation date and k; never a byte of the
//! content or the name. The certificate signs the ciphertext's hashes, so a storing node
//! checks what it stores without the key. See `docs/encryption.md`.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use past_core::past::{CHUNK_SIZE, MAX_NAME_BYTES};
use serde::{Deserialize, Serialize};

/// Bytes the AES-GCM tag adds to each chunk.
pub const TAG: usize = 16;

/// Plaintext bytes per chunk.
pub const PLAIN_CHUNK: usize = CHUNK_SIZE - TAG;

/// The prefix of a sealed name field.
const SEALED_NAME: &str = "e1.";

/// The nonce of the metadata.
const META_NONCE: [u8; 12] = [0xff; 12];

/// Longest media type kept.
const MAX_TYPE: usize = 100;

/// A file's key: 32 bytes, random for each file.
#[derive(Clone, PartialEq, Eq)]
pub struct FileKey(pub [u8; 32]);

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileKey(..)")
    }
}

/// Why a chunk or a name could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The tag did not verify: a wrong key, or altered bytes.
    #[error("the key does not open this file (wrong key, or the data was altered)")]
    WrongKey,
    /// The name field is not a sealed name of this format.
    #[error("the file's name is not encrypted in a format this node knows")]
    NotSealed,
    /// The sizes do not fit the format.
    #[error("the sizes do not fit the encryption format")]
    BadSize,
}

/// What a sealed name field holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The file's name.
    pub name: String,
    /// Its media type (`""` when unknown).
    pub mime: String,
    /// Its size before encryption.
    pub size: u64,
}

/// Chunks of a file of `plain` bytes.
pub fn chunks(plain: u64) -> u64 {
    plain.div_ceil(PLAIN_CHUNK as u64).max(1)
}

/// The size of a file of `plain` bytes once sealed.
pub fn sealed_size(plain: u64) -> u64 {
    plain + TAG as u64 * chunks(plain)
}

/// The plaintext size of a sealed file of `sealed` bytes, if the size fits the format.
pub fn plain_size(sealed: u64) -> Result<u64, SealError> {
    let n = sealed.div_ceil(CHUNK_SIZE as u64).max(1);
    let plain = sealed.checked_sub(TAG as u64 * n).ok_or(SealError::BadSize)?;
    if sealed_size(plain) == sealed { Ok(plain) } else { Err(SealError::BadSize) }
}

fn chunk_nonce(index: u32) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[8..].copy_from_slice(&index.to_be_bytes());
    nonce
}

impl FileKey {
    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.0.into())
    }

    /// Seals chunk `index` (at most [`PLAIN_CHUNK`] bytes).
    pub fn seal_chunk(&self, index: u32, plain: &[u8]) -> Vec<u8> {
        // Encryption with a valid key and nonce fails only for inputs above 2^36 bytes.
        self.cipher().encrypt(Nonce::from_slice(&chunk_nonce(index)), plain).unwrap_or_default()
    }

    /// Opens sealed chunk `index`.
    pub fn open_chunk(&self, index: u32, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        self.cipher().decrypt(Nonce::from_slice(&chunk_nonce(index)), sealed).map_err(|_| SealError::WrongKey)
    }

    /// The certificate name field for `meta` (the name shortened to fit).
    pub fn seal_meta(&self, meta: &Meta) -> String {
        let mut meta = Meta { mime: truncate_start(&meta.mime, MAX_TYPE, false), ..meta.clone() };
        loop {
            let plain = postcard::to_allocvec(&meta).unwrap_or_default();
            let sealed = self.cipher().encrypt(Nonce::from_slice(&META_NONCE), plain.as_slice()).unwrap_or_default();
            let field = format!("{SEALED_NAME}{}", URL_SAFE_NO_PAD.encode(sealed));
            if field.len() <= MAX_NAME_BYTES || meta.name.is_empty() {
                return field;
            }
            let over = (field.len() - MAX_NAME_BYTES) * 3 / 4 + 1;
            meta.name = truncate_start(&meta.name, meta.name.len().saturating_sub(over), true);
        }
    }

    /// Opens a certificate name field.
    pub fn open_meta(&self, field: &str) -> Result<Meta, SealError> {
        let encoded = field.strip_prefix(SEALED_NAME).ok_or(SealError::NotSealed)?;
        let sealed = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| SealError::NotSealed)?;
        let plain = self
            .cipher()
            .decrypt(Nonce::from_slice(&META_NONCE), sealed.as_slice())
            .map_err(|_| SealError::WrongKey)?;
        postcard::from_bytes(&plain).map_err(|_| SealError::NotSealed)
    }

    /// The key as base64url (43 characters), as share links carry it.
    pub fn to_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// A key from [`FileKey::to_text`].
    pub fn from_text(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        Some(FileKey(bytes.try_into().ok()?))
    }
}

/// The certificate's name field and size of the file `meta` describes: its sealed name and
/// sealed size under `key`, or its plain name and size for a public file (`None`).
pub fn certificate_fields(key: Option<&FileKey>, meta: &Meta) -> (String, u64) {
    match key {
        Some(key) => (key.seal_meta(meta), sealed_size(meta.size)),
        None => (meta.name.clone(), meta.size),
    }
}

/// Whether a certificate name field is a sealed name.
pub fn is_sealed_name(field: &str) -> bool {
    field.starts_with(SEALED_NAME)
}

/// `text` cut to at most `max` bytes on a character boundary; `keep_end`: drop from the
/// start (keeping an extension) rather than from the end.
fn truncate_start(text: &str, max: usize, keep_end: bool) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    if keep_end {
        let mut start = text.len() - max;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text[start..].to_string()
    } else {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text[..end].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: FileKey = FileKey([7; 32]);

    #[test]
    fn chunks_open_in_any_order_and_only_with_their_key_and_index() {
        let a = KEY.seal_chunk(0, b"first");
        let b = KEY.seal_chunk(1, b"first");
        assert_ne!(a, b, "the nonce depends on the chunk index");
        assert_eq!(a.len(), 5 + TAG);
        assert_eq!(KEY.open_chunk(1, &b).unwrap(), b"first");
        assert_eq!(KEY.open_chunk(0, &a).unwrap(), b"first");
        assert_eq!(KEY.open_chunk(1, &a), Err(SealError::WrongKey));
        assert_eq!(FileKey([8; 32]).open_chunk(0, &a), Err(SealError::WrongKey));
        let mut altered = a.clone();
        altered[0] ^= 1;
        assert_eq!(KEY.open_chunk(0, &altered), Err(SealError::WrongKey));
    }

    #[test]
    fn a_known_vector_fixes_the_format() {
        // Key 7^32, chunk 2, "PAST", as Node.js (OpenSSL) and Python's `cryptography` seal it.
        let sealed = KEY.seal_chunk(2, b"PAST");
        assert_eq!(hex(&sealed), "a12ae777ad080e3156d4d4bd31f1b57bb79c7937");
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sealed_chunks_are_past_chunks() {
        for plain in [0u64, 1, PLAIN_CHUNK as u64 - 1, PLAIN_CHUNK as u64, PLAIN_CHUNK as u64 + 1, 5 << 20] {
            let sealed = sealed_size(plain);
            assert_eq!(u64::from(past_core::past::chunk_count(sealed)), chunks(plain), "plain {plain}");
            assert_eq!(plain_size(sealed), Ok(plain));
        }
        assert_eq!(plain_size(3), Err(SealError::BadSize));
    }

    #[test]
    fn names_are_sealed_within_the_field_and_keep_their_extension() {
        let meta = Meta { name: "holiday.jpg".into(), mime: "image/jpeg".into(), size: 1234 };
        let field = KEY.seal_meta(&meta);
        assert!(field.len() <= MAX_NAME_BYTES && !field.contains("holiday"));
        assert_eq!(KEY.open_meta(&field), Ok(meta));
        assert_eq!(FileKey([1; 32]).open_meta(&field), Err(SealError::WrongKey));
        assert_eq!(KEY.open_meta("holiday.jpg"), Err(SealError::NotSealed));

        let long = Meta { name: format!("{}.pdf", "é".repeat(300)), mime: "application/pdf".into(), size: 1 };
        let field = KEY.seal_meta(&long);
        assert!(field.len() <= MAX_NAME_BYTES);
        let opened = KEY.open_meta(&field).unwrap();
        assert!(opened.name.ends_with("é.pdf") && opened.name.len() < long.name.len());
    }

    #[test]
    fn certificate_fields_seal_only_with_a_key() {
        let meta = Meta { name: "a.txt".into(), mime: String::new(), size: 70_000 };
        assert_eq!(certificate_fields(None, &meta), ("a.txt".to_string(), 70_000));
        let (field, size) = certificate_fields(Some(&KEY), &meta);
        assert_eq!((KEY.open_meta(&field), size), (Ok(meta), 70_000 + 2 * TAG as u64));
    }

    #[test]
    fn keys_travel_as_text() {
        let text = KEY.to_text();
        assert_eq!(text.len(), 43);
        assert_eq!(FileKey::from_text(&text), Some(KEY));
        assert_eq!(FileKey::from_text("short"), None);
    }
}
