//! The server's user database entry: what SCRAM-SHA-256 (RFC 5802, RFC 7677) keeps of a
//! password — salt, iteration count, StoredKey and ServerKey — and never the password.
//!
//! `StoredKey = SHA-256(HMAC(SaltedPassword, "Client Key"))` lets the server check a
//! client's proof without being able to make one; `ServerKey = HMAC(SaltedPassword,
//! "Server Key")` lets it prove itself to the client. The password's bytes are used as
//! they are (no SASLprep, as the SCRAM client of `rsasl` does): passwords are compared as
//! bytes.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The iteration count `hawser passwd` uses unless told otherwise (RFC 7677 asks for at
/// least 4096).
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// Iteration counts a server accepts from its database: below the RFC's minimum a stolen
/// database is too cheap to attack; far above it each login costs the server seconds.
pub const ITERATIONS: std::ops::RangeInclusive<u32> = 4096..=10_000_000;
/// Length of the salt `hawser passwd` draws.
pub const SALT_LEN: usize = 16;

/// One identity's SCRAM-SHA-256 credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramEntry {
    /// The salt of the password hash.
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// `SHA-256(ClientKey)`.
    pub stored_key: [u8; 32],
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: [u8; 32],
}

impl fmt::Debug for ScramEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys are secrets of a kind (they stand in for the password on this server).
        f.debug_struct("ScramEntry")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// `SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iterations)`.
pub(crate) fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0; 32];
    pbkdf2::pbkdf2::<HmacSha256>(password, salt, iterations, &mut out)
        .expect("HMAC takes keys of any length");
    out
}

fn hmac(key: &[u8], text: &[u8]) -> [u8; 32] {
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(text);
    m.finalize().into_bytes().into()
}

/// Why a database entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// A field is missing or not base64 of the right length.
    #[error("{0}")]
    Field(String),
    /// The iteration count is outside [`ITERATIONS`].
    #[error(
        "iterations = {0} is outside 4096..=10000000 (RFC 7677 asks for at least 4096; make \
         a new entry with `hawser passwd`)"
    )]
    Iterations(u32),
}

impl ScramEntry {
    /// The entry of `password` under `salt` and `iterations` (costs `iterations` HMACs).
    pub fn derive(password: &[u8], salt: &[u8], iterations: u32) -> ScramEntry {
        let salted = salted_password(password, salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        ScramEntry {
            salt: salt.to_vec(),
            iterations,
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        }
    }

    /// Whether `password` is this entry's, in constant time over the keys (PLAIN's check:
    /// the same derivation a SCRAM client makes).
    pub fn verify_password(&self, password: &[u8]) -> bool {
        let salted = salted_password(password, &self.salt, self.iterations);
        let stored: [u8; 32] = Sha256::digest(hmac(&salted, b"Client Key")).into();
        stored.ct_eq(&self.stored_key).into()
    }

    /// An entry from its stored form (base64 fields), checking lengths and the iteration
    /// count.
    pub fn from_fields(
        salt: &str,
        iterations: u32,
        stored_key: &str,
        server_key: &str,
    ) -> Result<ScramEntry, EntryError> {
        if !ITERATIONS.contains(&iterations) {
            return Err(EntryError::Iterations(iterations));
        }
        let decode = |name: &str, text: &str| {
            BASE64
                .decode(text)
                .map_err(|_| EntryError::Field(format!("{name} is not base64")))
        };
        let key = |name: &str, text: &str| -> Result<[u8; 32], EntryError> {
            decode(name, text)?
                .try_into()
                .map_err(|_| EntryError::Field(format!("{name} must be 32 bytes (base64)")))
        };
        let salt = decode("salt", salt)?;
        if salt.is_empty() || salt.len() > 64 {
            return Err(EntryError::Field("salt must be 1 to 64 bytes".into()));
        }
        Ok(ScramEntry {
            salt,
            iterations,
            stored_key: key("stored_key", stored_key)?,
            server_key: key("server_key", server_key)?,
        })
    }

    /// The entry as a TOML table of the server's `[users]` (what `hawser passwd` prints).
    pub fn to_toml(&self, identity: &str) -> String {
        format!(
            "[users.{}]\nmechanism = \"SCRAM-SHA-256\"\nsalt = \"{}\"\niterations = {}\n\
             stored_key = \"{}\"\nserver_key = \"{}\"\n",
            toml_key(identity),
            BASE64.encode(&self.salt),
            self.iterations,
            BASE64.encode(self.stored_key),
            BASE64.encode(self.server_key),
        )
    }
}

/// `identity` as a TOML key: bare when it can be, quoted otherwise.
fn toml_key(identity: &str) -> String {
    let bare = !identity.is_empty()
        && identity
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if bare {
        return identity.to_owned();
    }
    let mut quoted = String::from("\"");
    for c in identity.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3's example: user "user", password "pencil", salt
    /// "W22ZaJ0SNY7soEsUEjb6gQ==", 4096 iterations.
    #[test]
    fn derives_the_keys_of_rfc_7677() {
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let entry = ScramEntry::derive(b"pencil", &salt, 4096);
        // ServerSignature of the RFC's exchange, recomputed from our ServerKey.
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
            s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
            c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let signature = hmac(&entry.server_key, auth_message.as_bytes());
        assert_eq!(
            BASE64.encode(signature),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        assert!(entry.verify_password(b"pencil"));
        assert!(!entry.verify_password(b"pencil "));
    }

    #[test]
    fn stored_form_round_trips_and_is_checked() {
        let entry = ScramEntry::derive(b"pw", b"0123456789abcdef", 4096);
        let text = entry.to_toml("backup-1");
        assert!(text.starts_with("[users.backup-1]\n"), "{text}");
        let field = |name: &str| {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{name} = ")))
                .unwrap();
            line.split_once(" = ")
                .unwrap()
                .1
                .trim_matches('"')
                .to_owned()
        };
        let back = ScramEntry::from_fields(
            &field("salt"),
            field("iterations").parse().unwrap(),
            &field("stored_key"),
            &field("server_key"),
        )
        .unwrap();
        assert_eq!(back, entry);
        assert_eq!(
            ScramEntry::from_fields(&field("salt"), 100, &field("stored_key"), "x"),
            Err(EntryError::Iterations(100))
        );
        assert!(ScramEntry::from_fields("!!", 4096, &field("stored_key"), "x").is_err());
        assert!(
            ScramEntry::from_fields(&field("salt"), 4096, "AAAA", &field("server_key")).is_err()
        );
        assert_eq!(toml_key("a b\"c"), "\"a b\\\"c\"");
    }
}
