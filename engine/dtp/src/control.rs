//! The bodies of DTP's small control exchanges (finish, stat and list), and a
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

/// One regular file of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// Its path relative to the pull's destination (as the TCP job names it).
    pub rel: Vec<u8>,
    /// Bytes.
    pub size: u64,
    /// Mode and mtime.
    pub metadata: FileMetadata,
}

/// The answer of a list: whether the source is a directory, and its regular files of at
/// least the size asked (a pull of a tree moves them over DTP).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileListing {
    /// The source is a directory (a tree), not one file.
    pub is_dir: bool,
    /// The files.
    pub files: Vec<ListedFile>,
}

/// Longest path of a listed file.
pub const MAX_LISTED_PATH: usize = 4096;
/// Bytes of a listed file besides its path.
const LISTED_FIXED: usize = 2 + 8 + 4 + 8;

impl FileListing {
    /// The answer's bytes: the directory flag (u8), the count (u32), then per file its
    /// path's length (u16) and bytes, size (u64), mode (u32) and mtime (i64).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            5 + self
                .files
                .iter()
                .map(|f| LISTED_FIXED + f.rel.len())
                .sum::<usize>(),
        );
        out.push(u8::from(self.is_dir));
        out.extend_from_slice(&(self.files.len() as u32).to_be_bytes());
        for f in &self.files {
            out.extend_from_slice(&(f.rel.len() as u16).to_be_bytes());
            out.extend_from_slice(&f.rel);
            out.extend_from_slice(&f.size.to_be_bytes());
            f.metadata.put(&mut out);
        }
        out
    }

    /// Reads an answer; the count is checked against the bytes before anything is
    /// allocated, and every path is at most [`MAX_LISTED_PATH`] bytes.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let is_dir = match *bytes.first()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        let count = u32::from_be_bytes(bytes.get(1..5)?.try_into().ok()?) as usize;
        let mut rest = &bytes[5..];
        if count > rest.len() / LISTED_FIXED {
            return None;
        }
        let mut files = Vec::with_capacity(count);
        for _ in 0..count {
            let len = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
            if len > MAX_LISTED_PATH {
                return None;
            }
            let rel = rest.get(2..2 + len)?.to_vec();
            let fixed = rest.get(2 + len..LISTED_FIXED + len)?;
            files.push(ListedFile {
                rel,
                size: u64::from_be_bytes(fixed[..8].try_into().ok()?),
                metadata: FileMetadata::read(&fixed[8..])?,
            });
            rest = &rest[LISTED_FIXED + len..];
        }
        rest.is_empty().then_some(FileListing { is_dir, files })
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
        fn listings_round_trip(
            is_dir: bool,
            files in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..64), any::<u64>(), any::<u32>(), any::<i64>()),
                0..16,
            ),
        ) {
            let listing = FileListing {
                is_dir,
                files: files
                    .into_iter()
                    .map(|(rel, size, mode, mtime_ns)| ListedFile {
                        rel,
                        size,
                        metadata: FileMetadata { mode: mode & 0o7777, mtime_ns },
                    })
                    .collect(),
            };
            let bytes = listing.encode();
            prop_assert_eq!(FileListing::decode(&bytes), Some(listing));
            // Cut short or with a byte more, it is refused.
            if !bytes.is_empty() {
                prop_assert_eq!(FileListing::decode(&bytes[..bytes.len() - 1]), None);
            }
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert_eq!(FileListing::decode(&longer), None);
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
