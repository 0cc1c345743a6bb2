//! The node's identity: an Ed25519 secret key in a file only its owner may read.
//!
//! The file holds the 32-byte seed as 64 hex digits (or as 32 raw bytes). It is created with
//! mode 0600 when missing; an existing file that its group or others may read or write is
//! refused rather than used, since whoever reads it can act as the node (sign its receipts,
//! reclaim its files).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use past_signaling_proto::{from_hex, to_hex};

/// The key file's name in a store directory.
pub const KEY_FILE: &str = "node.key";

/// Why the key file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file exists but cannot be read.
    #[error("cannot read the key file {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Others may read or write it.
    #[error(
        "the key file {path} is accessible to other users (mode {mode:o}); make it private with `chmod 600 {path}`"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// It holds neither 32 bytes nor 64 hex digits.
    #[error("the key file {path} holds neither 32 bytes nor 64 hex digits")]
    Malformed {
        /// The file.
        path: PathBuf,
    },
    /// A new key file could not be written.
    #[error("cannot create the key file {path}: {source}")]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Reads the key in `path`, or writes a fresh one there (mode 0600) if there is none.
pub fn load_or_create(path: &Path) -> Result<SigningKey, KeyFileError> {
    match std::fs::metadata(path) {
        Ok(metadata) => {
            check_private(path, &metadata)?;
            let unreadable = |source| KeyFileError::Unreadable { path: path.to_path_buf(), source };
            let bytes = std::fs::read(path).map_err(unreadable)?;
            let seed: Option<[u8; 32]> = match bytes.len() {
                32 => bytes.as_slice().try_into().ok(),
                _ => std::str::from_utf8(&bytes).ok().and_then(|text| from_hex::<32>(text.trim())),
            };
            let seed = seed.ok_or_else(|| KeyFileError::Malformed { path: path.to_path_buf() })?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(source) => Err(KeyFileError::Unreadable { path: path.to_path_buf(), source }),
    }
}

#[cfg(unix)]
fn check_private(path: &Path, metadata: &std::fs::Metadata) -> Result<(), KeyFileError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = metadata.permissions().mode() & 0o777;
    if !metadata.is_file() {
        let source = std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file");
        return Err(KeyFileError::Unreadable { path: path.to_path_buf(), source });
    }
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Exposed { path: path.to_path_buf(), mode });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path, _: &std::fs::Metadata) -> Result<(), KeyFileError> {
    Ok(())
}

fn create(path: &Path) -> Result<SigningKey, KeyFileError> {
    let seed = rand::random::<[u8; 32]>();
    let failed = |source| KeyFileError::Create { path: path.to_path_buf(), source };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(failed)?;
    file.write_all(to_hex(&seed).as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    Ok(SigningKey::from_bytes(&seed))
}
