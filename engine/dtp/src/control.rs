//! The fixed-layout bodies of DTP's small control exchanges (finish and stat), and a
//! file's mode and modification time as they travel in them. The transfer messages
//! themselves are `hawser_wire::dtp`'s.

use std::fs::{File, Metadata, Permissions};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A regular file's permission bits and modification time, given to its copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMetadata {
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// Nanoseconds since the Unix epoch (before it: negative).
    pub mtime_ns: i64,
}

impl FileMetadata {
    /// The metadata of an open file.
    pub fn of(meta: &Metadata) -> Self {
        FileMetadata {
            mode: meta.mode() & 0o7777,
            mtime_ns: meta
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec()),
        }
    }

    /// Gives `file` this mode and modification time (through its descriptor).
    pub fn apply(&self, file: &File) -> io::Result<()> {
        file.set_permissions(Permissions::from_mode(self.mode & 0o7777))?;
        let since_epoch = Duration::from_nanos(self.mtime_ns.unsigned_abs());
        let mtime = if self.mtime_ns >= 0 {
            UNIX_EPOCH.checked_add(since_epoch)
        } else {
            UNIX_EPOCH.checked_sub(since_epoch)
        }
        .unwrap_or(SystemTime::UNIX_EPOCH);
        file.set_modified(mtime)
    }

    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.mode.to_be_bytes());
        out.extend_from_slice(&self.mtime_ns.to_be_bytes());
    }

    fn read(bytes: &[u8]) -> Option<Self> {
        Some(FileMetadata {
            mode: u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) & 0o7777,
            mtime_ns: i64::from_be_bytes(bytes.get(4..12)?.try_into().ok()?),
        })
    }
}

/// The body of a finish: a push's session id, the client's digest of the file, and the
/// metadata its copy takes (optional, so a bare 20-byte finish still works).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinishRequest {
    /// The push's session.
    pub session_id: u32,
    /// The whole-file digest the client computed.
    pub digest: u128,
    /// Mode and mtime of the source file.
    pub metadata: Option<FileMetadata>,
}

impl FinishRequest {
    /// Bytes of a finish without metadata.
    pub const BARE_LEN: usize = 20;
    /// Bytes of a finish with metadata.
    pub const FULL_LEN: usize = 32;

    /// The body's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::FULL_LEN);
        out.extend_from_slice(&self.session_id.to_be_bytes());
        out.extend_from_slice(&self.digest.to_be_bytes());
        if let Some(m) = &self.metadata {
            m.put(&mut out);
        }
        out
    }

    /// Reads a body of exactly [`Self::BARE_LEN`] or [`Self::FULL_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let metadata = match bytes.len() {
            Self::BARE_LEN => None,
            Self::FULL_LEN => Some(FileMetadata::read(&bytes[20..])?),
            _ => return None,
        };
        Some(FinishRequest {
            session_id: u32::from_be_bytes(bytes[..4].try_into().ok()?),
            digest: u128::from_be_bytes(bytes[4..20].try_into().ok()?),
            metadata,
        })
    }
}

/// The answer of a stat: a regular file's size and metadata, for the quick check that
/// skips a file already in place (same size and mtime, as the TCP target's check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// Bytes.
    pub size: u64,
    /// Mode and mtime.
    pub metadata: FileMetadata,
}

impl FileStat {
    /// Bytes of the answer.
    pub const LEN: usize = 20;

    /// The answer's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.extend_from_slice(&self.size.to_be_bytes());
        self.metadata.put(&mut out);
        out
    }

    /// Reads an answer of exactly [`Self::LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::LEN {
            return None;
        }
        Some(FileStat {
            size: u64::from_be_bytes(bytes[..8].try_into().ok()?),
            metadata: FileMetadata::read(&bytes[8..])?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn finish_bodies_round_trip(id: u32, digest: u128, meta: Option<(u32, i64)>) {
            let request = FinishRequest {
                session_id: id,
                digest,
                metadata: meta.map(|(mode, mtime_ns)| FileMetadata { mode: mode & 0o7777, mtime_ns }),
            };
            prop_assert_eq!(FinishRequest::decode(&request.encode()), Some(request));
        }

        #[test]
        fn stat_answers_round_trip(size: u64, mode: u32, mtime_ns: i64) {
            let stat = FileStat { size, metadata: FileMetadata { mode: mode & 0o7777, mtime_ns } };
            prop_assert_eq!(FileStat::decode(&stat.encode()), Some(stat));
        }

        #[test]
        fn other_lengths_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assume!(bytes.len() != FinishRequest::BARE_LEN && bytes.len() != FinishRequest::FULL_LEN);
            prop_assert_eq!(FinishRequest::decode(&bytes), None);
            prop_assume!(bytes.len() != FileStat::LEN);
            prop_assert_eq!(FileStat::decode(&bytes), None);
        }
    }

    #[test]
    fn metadata_is_applied_through_the_descriptor() {
        let dir = std::env::temp_dir().join(format!("dtp-meta-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let file = File::create(&path).unwrap();
        let wanted = FileMetadata {
            mode: 0o640,
            mtime_ns: 1_234_567_890_123_456_789,
        };
        wanted.apply(&file).unwrap();
        assert_eq!(FileMetadata::of(&std::fs::metadata(&path).unwrap()), wanted);
        let before_epoch = FileMetadata {
            mode: 0o600,
            mtime_ns: -5_000_000_000,
        };
        before_epoch.apply(&file).unwrap();
        assert_eq!(
            FileMetadata::of(&std::fs::metadata(&path).unwrap()),
            before_epoch
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
