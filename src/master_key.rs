//! The master key encrypts every private signing key at rest with AES-256-GCM (an AEAD), so a
//! copy of the database alone never reveals a key. The key id is the associated data: a sealed
//! key cannot be moved to another row and still open.

use crate::config::{MASTER_KEY_LEN, MasterKeySource, parse_master_key};
use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox};
use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use zeroize::Zeroizing;

/// Format tag of a sealed blob: `1` = AES-256-GCM, then nonce, then ciphertext and tag.
const SEALED_V1: u8 = 1;

/// The key-encryption key.
pub struct MasterKey {
    aead: RandomizedNonceKey,
    /// For keys derived from the master key ([`MasterKey::derive`]).
    derivation: aws_lc_rs::hmac::Key,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("invalid MASTER_KEY_FILE {path}: {reason}")]
    File { path: String, reason: String },
    /// Like ssh with a private key: a key file others may read is refused, not used.
    #[error("master key file {path} is accessible by group or others (mode {mode:04o}); run: chmod 600 {path}")]
    TooOpen { path: String, mode: u32 },
    #[error(
        "the master key does not open the stored private key {kid}: wrong MASTER_KEY / MASTER_KEY_FILE, or the row was tampered with"
    )]
    WrongKey { kid: String },
    #[error("could not encrypt a private key")]
    Seal,
}

impl MasterKey {
    pub fn from_bytes(bytes: &[u8; MASTER_KEY_LEN]) -> Self {
        let aead = RandomizedNonceKey::new(&AES_256_GCM, bytes).expect("AES-256-GCM accepts a 32-byte key");
        let derivation = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, bytes);
        Self { aead, derivation }
    }

    /// A 32-byte key for `purpose`, derived from the master key (HMAC-SHA256): the same on every
    /// instance that shares the master key, and useless for anything else.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let tag = aws_lc_rs::hmac::sign(&self.derivation, purpose.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(&tag.as_ref()[..32]);
        key
    }

    /// Loads the key the settings name. A missing key file is created (mode 0600) only while
    /// no private key is stored (`stored_keys == 0`): with keys stored, a new master key could
    /// never open them, and a stray new file would only confuse a restore from backup.
    pub fn load(source: &MasterKeySource, stored_keys: usize) -> Result<Self, MasterKeyError> {
        match source {
            MasterKeySource::Inline(key) => Ok(Self::from_bytes(key.expose_secret())),
            MasterKeySource::File(path) if path.exists() => Self::read_file(path),
            MasterKeySource::File(path) if stored_keys == 0 => Self::create_file(path),
            MasterKeySource::File(path) => Err(MasterKeyError::File {
                path: path.display().to_string(),
                reason: format!("missing, but {stored_keys} private key(s) sealed under it are stored; restore it"),
            }),
        }
    }

    /// Reads an existing key file, refusing one whose mode lets group or others at it (any of
    /// the 077 bits, as ssh does): the mode is read from the opened file, so it is the mode of
    /// the very file read.
    fn read_file(path: &Path) -> Result<Self, MasterKeyError> {
        let file_error = |reason: String| MasterKeyError::File { path: path.display().to_string(), reason };
        let mut file = fs::File::open(path).map_err(|e| file_error(e.to_string()))?;
        let mode = file.metadata().map_err(|e| file_error(e.to_string()))?.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(MasterKeyError::TooOpen { path: path.display().to_string(), mode });
        }
        let mut encoded = Zeroizing::new(String::new());
        file.read_to_string(&mut encoded).map_err(|e| file_error(e.to_string()))?;
        let key = parse_master_key(&encoded).map_err(file_error)?;
        Ok(Self::from_bytes(key.expose_secret()))
    }

    fn create_file(path: &Path) -> Result<Self, MasterKeyError> {
        let file_error = |reason: String| MasterKeyError::File { path: path.display().to_string(), reason };
        let mut key = SecretBox::new(Box::new([0u8; MASTER_KEY_LEN]));
        aws_lc_rs::rand::fill(&mut key.expose_secret_mut()[..]).map_err(|_| file_error("no randomness".into()))?;
        let encoded = Zeroizing::new(BASE64.encode(key.expose_secret()));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| file_error(e.to_string()))?;
        file.write_all(encoded.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(|e| file_error(e.to_string()))?;
        log::warn!(
            "created a new master key in {} (mode 0600); back it up: without it the key ring cannot be opened",
            path.display()
        );
        Ok(Self::from_bytes(key.expose_secret()))
    }

    /// Encrypts `plaintext`, bound to `kid`.
    pub fn seal(&self, kid: &str, plaintext: &[u8]) -> Result<Vec<u8>, MasterKeyError> {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .aead
            .seal_in_place_append_tag(Aad::from(kid.as_bytes()), &mut in_out)
            .map_err(|_| MasterKeyError::Seal)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        sealed.push(SEALED_V1);
        sealed.extend_from_slice(nonce.as_ref());
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// Decrypts a blob made by [`MasterKey::seal`] for the same `kid`.
    pub fn open(&self, kid: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, MasterKeyError> {
        let wrong_key = || MasterKeyError::WrongKey { kid: kid.to_string() };
        let (&version, rest) = sealed.split_first().ok_or_else(wrong_key)?;
        if version != SEALED_V1 || rest.len() < NONCE_LEN {
            return Err(wrong_key());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong_key())?;
        let mut in_out = Zeroizing::new(ciphertext.to_vec());
        let plaintext_len =
            self.aead.open_in_place(nonce, Aad::from(kid.as_bytes()), &mut in_out).map_err(|_| wrong_key())?.len();
        in_out.truncate(plaintext_len);
        Ok(in_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_open_only_with_the_same_key_and_kid() {
        let key = MasterKey::from_bytes(&[7; 32]);
        let sealed = key.seal("kid-1", b"private key bytes").expect("seal");
        assert!(!sealed.windows(17).any(|w| w == b"private key bytes"));
        assert_eq!(&key.open("kid-1", &sealed).expect("open")[..], b"private key bytes");
        assert!(matches!(key.open("kid-2", &sealed), Err(MasterKeyError::WrongKey { .. })));
        assert!(MasterKey::from_bytes(&[8; 32]).open("kid-1", &sealed).is_err());
        assert!(key.open("kid-1", &sealed[..10]).is_err());
        assert!(key.open("kid-1", &[]).is_err());
    }

    #[test]
    fn a_missing_key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("master.key");
        let source = MasterKeySource::File(path.clone());
        let created = MasterKey::load(&source, 0).expect("create");
        assert_eq!(fs::metadata(&path).expect("file").permissions().mode() & 0o777, 0o600);
        let sealed = created.seal("k", b"secret").expect("seal");
        let reloaded = MasterKey::load(&source, 1).expect("read");
        assert_eq!(&reloaded.open("k", &sealed).expect("open")[..], b"secret");
    }

    #[test]
    fn a_missing_key_file_is_not_recreated_while_keys_sealed_under_it_are_stored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("master.key");
        let error = MasterKey::load(&MasterKeySource::File(path.clone()), 2).expect_err("missing");
        assert!(error.to_string().contains("MASTER_KEY_FILE"), "{error}");
        assert!(!path.exists(), "no stray key file");
    }

    #[test]
    fn a_key_file_open_to_group_or_others_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("master.key");
        let source = MasterKeySource::File(path.clone());
        MasterKey::load(&source, 0).expect("create");
        for mode in [0o640, 0o644, 0o604, 0o620, 0o602, 0o660, 0o666] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
            let error = MasterKey::load(&source, 1).expect_err("too open");
            let shown = path.display();
            assert_eq!(
                error.to_string(),
                format!(
                    "master key file {shown} is accessible by group or others (mode {mode:04o}); run: chmod 600 {shown}"
                )
            );
            assert_eq!(fs::metadata(&path).expect("file").permissions().mode() & 0o777, mode, "left as it was");
        }
        for mode in [0o600, 0o400] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
            MasterKey::load(&source, 1).expect("a private key file is read");
        }
    }

    #[test]
    fn a_corrupt_key_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("master.key");
        fs::write(&path, "not base64!").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        let error = MasterKey::load(&MasterKeySource::File(path), 0).expect_err("corrupt");
        assert!(error.to_string().contains("MASTER_KEY_FILE"));
    }
}
