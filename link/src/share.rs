//! Share links: what a person sends so that someone else can fetch a file.
//!
//! A link is the page's address with a fragment `#<fileId>` (40 hex digits) for a public
//! file, or `#<fileId>.<key>` (the file's key, 43 base64url characters) for an encrypted one.
//! Browsers never send the fragment to a server, so the key reaches only whoever holds the
//! link.

use past_core::past::FileId;

use crate::seal::{self, FileKey, Meta, SealError};

/// A fileId and, for an encrypted file, its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareLink {
    /// The file.
    pub file: FileId,
    /// Its key (`None`: a public file).
    pub key: Option<FileKey>,
}

/// Why a link could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The fileId is not 40 hex digits.
    #[error("the link does not hold a fileId (40 hex digits)")]
    BadFileId,
    /// The key is not 43 base64url characters.
    #[error("the link's key is malformed")]
    BadKey,
}

/// Why a file's description could not be read with a link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    /// The file is encrypted and the link has no key.
    #[error("the file is encrypted: its link's key is needed")]
    KeyNeeded,
    /// The link has a key but the file is public.
    #[error("the link has a key but the file is public")]
    UnexpectedKey,
    /// The link's key does not open the sealed name.
    #[error(transparent)]
    Sealed(#[from] SealError),
}

impl ShareLink {
    /// The fragment (without `#`).
    pub fn fragment(&self) -> String {
        match &self.key {
            Some(key) => format!("{}.{}", self.file, key.to_text()),
            None => self.file.to_string(),
        }
    }

    /// The name, media type and plaintext size of the file this link names, from its
    /// verified certificate's name field and size: opened with the link's key for an
    /// encrypted file, as they are for a public one (media type unknown).
    pub fn open_meta(&self, name_field: &str, size: u64) -> Result<Meta, MetaError> {
        match (&self.key, seal::is_sealed_name(name_field)) {
            (Some(key), true) => Ok(key.open_meta(name_field)?),
            (None, true) => Err(MetaError::KeyNeeded),
            (Some(_), false) => Err(MetaError::UnexpectedKey),
            (None, false) => Ok(Meta { name: name_field.to_string(), mime: String::new(), size }),
        }
    }

    /// Reads a link: a whole address (what follows `#`), a fragment, or a bare fileId.
    pub fn parse(text: &str) -> Result<Self, LinkError> {
        let text = text.trim();
        let fragment = text.rsplit_once('#').map_or(text, |(_, f)| f);
        let (file, key) = match fragment.split_once('.') {
            Some((file, key)) => (file, Some(key)),
            None => (fragment, None),
        };
        let file = parse_file_id(file).ok_or(LinkError::BadFileId)?;
        let key = key.map(|k| FileKey::from_text(k).ok_or(LinkError::BadKey)).transpose()?;
        Ok(ShareLink { file, key })
    }
}

/// A fileId from 40 hex digits.
pub fn parse_file_id(hex: &str) -> Option<FileId> {
    if hex.len() != 40 || !hex.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 20];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(FileId(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_opens_with_the_key_a_sealed_name_needs() {
        let key = FileKey([3; 32]);
        let meta = Meta { name: "a.txt".into(), mime: "text/plain".into(), size: 5 };
        let field = key.seal_meta(&meta);
        let file = FileId([1; 20]);
        let private = ShareLink { file, key: Some(key) };
        let public = ShareLink { file, key: None };
        assert_eq!(private.open_meta(&field, 21), Ok(meta));
        assert_eq!(public.open_meta(&field, 21), Err(MetaError::KeyNeeded));
        assert_eq!(private.open_meta("a.txt", 5), Err(MetaError::UnexpectedKey));
        let other = ShareLink { file, key: Some(FileKey([4; 32])) };
        assert_eq!(other.open_meta(&field, 21), Err(MetaError::Sealed(SealError::WrongKey)));
        assert_eq!(public.open_meta("a.txt", 5).map(|m| (m.name, m.size)), Ok(("a.txt".to_string(), 5)));
    }

    #[test]
    fn links_round_trip_and_bad_ones_say_what_is_wrong() {
        let file = FileId([0xab; 20]);
        let private = ShareLink { file, key: Some(FileKey([3; 32])) };
        let address = format!("http://127.0.0.1:8080/#{}", private.fragment());
        assert_eq!(ShareLink::parse(&address), Ok(private.clone()));
        assert_eq!(ShareLink::parse(&private.fragment()), Ok(private));
        let public = ShareLink { file, key: None };
        assert_eq!(public.fragment(), "ab".repeat(20));
        assert_eq!(ShareLink::parse(&public.fragment()), Ok(public));
        assert_eq!(ShareLink::parse("http://x/#abc"), Err(LinkError::BadFileId));
        assert_eq!(ShareLink::parse(&format!("{}.nope", "ab".repeat(20))), Err(LinkError::BadKey));
        assert_eq!(ShareLink::parse(&"é".repeat(20)), Err(LinkError::BadFileId));
    }
}
