//! `ManifestBatch`: many entries of the source tree in one message, so small files never
//! cost a round trip each.

use crate::reader::Reader;
use bytes::BufMut;

use super::{MessageKind, Need, ProtoError, expect_end, expect_tag, put_u16_bytes, read_u128};

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed; its target travels as-is).
    Symlink,
}

impl EntryKind {
    fn to_wire(self) -> u8 {
        match self {
            Self::File => 0,
            Self::Dir => 1,
            Self::Symlink => 2,
        }
    }

    fn from_wire(value: u8) -> Result<Self, ProtoError> {
        Ok(match value {
            0 => Self::File,
            1 => Self::Dir,
            2 => Self::Symlink,
            other => {
                return Err(ProtoError::BadValue {
                    field: "kind",
                    value: u32::from(other),
                });
            }
        })
    }
}

/// A run of data in a (possibly sparse) file; everything outside the extents is a hole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Extent {
    /// First byte.
    pub offset: u64,
    /// Length in bytes (never 0).
    pub len: u64,
}

impl Extent {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.len)
    }
}

/// One entry of the source tree.
///
/// `tag-less` layout, in a batch: `file_id u32, kind u8, flags u8, mode u32, mtime_ns i64,
/// size u64, path (u16 + bytes)`, then `symlink target (u16 + bytes)` for a symlink,
/// `extent count u32 + (offset u64, len u64)…` if flag SPARSE, `xxh3-128` if flag HASH,
/// `inline data (u32 + bytes)` if flag INLINE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry<'a> {
    /// The source's id for this entry, unique within the job; blocks and commits name it.
    pub file_id: u32,
    /// Path relative to the job's destination, components separated by `/`.
    pub path: &'a [u8],
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// File size (0 for directories and symlinks).
    pub size: u64,
    /// A symlink's target, as stored (empty for other kinds).
    pub symlink_target: &'a [u8],
    /// Data extents of a sparse file; `None` means all of `0..size` is data.
    pub extents: Option<Vec<Extent>>,
    /// Whole-file xxh3-128 of the content (holes read as zeros), when known.
    pub content_hash: Option<u128>,
    /// The whole content of a small file, sent with its entry.
    pub inline: Option<&'a [u8]>,
}

const HASH: u8 = 1 << 0;
const INLINE: u8 = 1 << 1;
const SPARSE: u8 = 1 << 2;
const KNOWN: u8 = HASH | INLINE | SPARSE;

impl<'a> ManifestEntry<'a> {
    /// The data extents: the sparse map, or the whole file.
    pub fn data_extents(&self) -> Vec<Extent> {
        match &self.extents {
            Some(extents) => extents.clone(),
            None if self.size > 0 => vec![Extent {
                offset: 0,
                len: self.size,
            }],
            None => Vec::new(),
        }
    }

    fn encode(&self, out: &mut impl BufMut) -> Result<(), ProtoError> {
        let flags = if self.content_hash.is_some() { HASH } else { 0 }
            | if self.inline.is_some() { INLINE } else { 0 }
            | if self.extents.is_some() { SPARSE } else { 0 };
        out.put_u32(self.file_id);
        out.put_u8(self.kind.to_wire());
        out.put_u8(flags);
        out.put_u32(self.mode);
        out.put_i64(self.mtime_ns);
        out.put_u64(self.size);
        put_u16_bytes(out, self.path)?;
        if self.kind == EntryKind::Symlink {
            put_u16_bytes(out, self.symlink_target)?;
        }
        if let Some(extents) = &self.extents {
            out.put_u32(u32::try_from(extents.len()).map_err(|_| ProtoError::TooLong)?);
            for extent in extents {
                out.put_u64(extent.offset);
                out.put_u64(extent.len);
            }
        }
        if let Some(hash) = self.content_hash {
            out.put_u128(hash);
        }
        if let Some(data) = self.inline {
            out.put_u32(u32::try_from(data.len()).map_err(|_| ProtoError::TooLong)?);
            out.put_slice(data);
        }
        Ok(())
    }

    fn decode(r: &mut Reader<'a>) -> Result<Self, ProtoError> {
        let file_id = r.u32().need()?;
        let kind = EntryKind::from_wire(r.u8().need()?)?;
        let flags = r.u8().need()?;
        if flags & !KNOWN != 0 {
            return Err(ProtoError::ReservedBits {
                field: "entry flags",
                bits: u32::from(flags & !KNOWN),
            });
        }
        let mode = r.u32().need()?;
        let mtime_ns = r.u64().need()? as i64;
        let size = r.u64().need()?;
        let path = r.u16_bytes().need()?;
        let symlink_target = if kind == EntryKind::Symlink {
            r.u16_bytes().need()?
        } else {
            &[]
        };
        let extents = if flags & SPARSE != 0 {
            let count = r.u32().need()?;
            if u64::from(count) * 16 > r.left() as u64 {
                return Err(ProtoError::CountTooLarge(count));
            }
            let mut extents = Vec::with_capacity(count as usize);
            let mut previous_end = 0u64;
            for _ in 0..count {
                let offset = r.u64().need()?;
                let len = r.u64().need()?;
                let end = offset.checked_add(len).ok_or(ProtoError::BadExtents)?;
                let starts_after = extents.is_empty() || offset > previous_end;
                if len == 0 || !starts_after || end > size {
                    return Err(ProtoError::BadExtents);
                }
                previous_end = end;
                extents.push(Extent { offset, len });
            }
            Some(extents)
        } else {
            None
        };
        let content_hash = if flags & HASH != 0 {
            Some(read_u128(r)?)
        } else {
            None
        };
        let inline = if flags & INLINE != 0 {
            Some(r.u32_bytes().need()?)
        } else {
            None
        };
        let entry = ManifestEntry {
            file_id,
            path,
            kind,
            mode,
            mtime_ns,
            size,
            symlink_target,
            extents,
            content_hash,
            inline,
        };
        entry.check_consistent()?;
        Ok(entry)
    }

    fn check_consistent(&self) -> Result<(), ProtoError> {
        let fail = |why| Err(ProtoError::InconsistentEntry(why));
        match self.kind {
            EntryKind::File => {
                if let Some(data) = self.inline
                    && data.len() as u64 != self.size
                {
                    return fail("inline data length differs from the size");
                }
            }
            EntryKind::Dir | EntryKind::Symlink => {
                if self.size != 0 || self.extents.is_some() || self.inline.is_some() {
                    return fail("only files have a size, extents or data");
                }
                if self.content_hash.is_some() {
                    return fail("only files have a content hash");
                }
                if self.kind == EntryKind::Symlink && self.symlink_target.is_empty() {
                    return fail("symlink without a target");
                }
            }
        }
        Ok(())
    }
}

/// Many entries: `tag, count u32, entry…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestBatch<'a> {
    /// The entries, in the source's walk order (a directory before its contents).
    pub entries: Vec<ManifestEntry<'a>>,
}

impl<'a> ManifestBatch<'a> {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), ProtoError> {
        encode_header(out, self.entries.len())?;
        for entry in &self.entries {
            entry.encode(out)?;
        }
        Ok(())
    }

    /// Decodes a whole message.
    pub fn decode(body: &'a [u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        expect_tag(&mut r, MessageKind::Manifest)?;
        let count = r.u32().need()?;
        // An entry takes at least 28 bytes: refuse counts the input cannot hold before
        // reserving memory for them.
        if u64::from(count) * 28 > r.left() as u64 {
            return Err(ProtoError::CountTooLarge(count));
        }
        let mut entries = Vec::with_capacity(count as usize);
        for _ in 0..count {
            entries.push(ManifestEntry::decode(&mut r)?);
        }
        expect_end(&r)?;
        Ok(ManifestBatch { entries })
    }
}

fn encode_header(out: &mut impl BufMut, count: usize) -> Result<(), ProtoError> {
    out.put_u8(MessageKind::Manifest.tag());
    out.put_u32(u32::try_from(count).map_err(|_| ProtoError::TooLong)?);
    Ok(())
}

/// Encodes entries one at a time into a buffer that already holds nothing; the source
/// uses it to fill a batch up to a byte budget without building a `Vec` of entries.
#[derive(Debug)]
pub struct BatchWriter {
    buf: bytes::BytesMut,
    count: u32,
}

impl BatchWriter {
    /// A writer with room for `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        let mut buf = bytes::BytesMut::with_capacity(capacity);
        // The count is patched in by `finish`.
        let _ = encode_header(&mut buf, 0);
        BatchWriter { buf, count: 0 }
    }

    /// Appends an entry.
    pub fn push(&mut self, entry: &ManifestEntry<'_>) -> Result<(), ProtoError> {
        entry.encode(&mut self.buf)?;
        self.count += 1;
        Ok(())
    }

    /// Bytes written so far.
    pub fn encoded_len(&self) -> usize {
        self.buf.len()
    }

    /// Entries written so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn finish(mut self) -> bytes::Bytes {
        self.buf[1..5].copy_from_slice(&self.count.to_be_bytes());
        self.buf.freeze()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// Owned form of an entry, for strategies.
    #[derive(Debug, Clone)]
    pub(crate) struct OwnedEntry {
        pub(crate) file_id: u32,
        pub(crate) path: Vec<u8>,
        pub(crate) kind: EntryKind,
        pub(crate) mode: u32,
        pub(crate) mtime_ns: i64,
        pub(crate) size: u64,
        pub(crate) target: Vec<u8>,
        pub(crate) extents: Option<Vec<Extent>>,
        pub(crate) hash: Option<u128>,
        pub(crate) inline: Option<Vec<u8>>,
    }

    impl OwnedEntry {
        pub(crate) fn borrow(&self) -> ManifestEntry<'_> {
            ManifestEntry {
                file_id: self.file_id,
                path: &self.path,
                kind: self.kind,
                mode: self.mode,
                mtime_ns: self.mtime_ns,
                size: self.size,
                symlink_target: &self.target,
                extents: self.extents.clone(),
                content_hash: self.hash,
                inline: self.inline.as_deref(),
            }
        }
    }

    pub(crate) fn entry() -> impl Strategy<Value = OwnedEntry> {
        let file = (
            vec(1u64..1000, 0..6),
            any::<bool>(),
            proptest::option::of(any::<u128>()),
            proptest::option::of(vec(any::<u8>(), 0..100)),
        )
            .prop_map(|(gaps, sparse, hash, inline)| {
                if let Some(data) = inline {
                    return (data.len() as u64, None, hash, Some(data));
                }
                // Alternate hole and data lengths to build canonical extents.
                let mut extents = Vec::new();
                let mut pos = 0;
                for pair in gaps.chunks(2) {
                    pos += pair[0];
                    if let Some(&len) = pair.get(1) {
                        extents.push(Extent { offset: pos, len });
                        pos += len;
                    }
                }
                (pos + 7, sparse.then_some(extents), hash, None)
            });
        (
            any::<u32>(),
            vec(any::<u8>(), 0..64),
            0u8..3,
            any::<u32>(),
            any::<i64>(),
            vec(any::<u8>(), 1..64),
            file,
        )
            .prop_map(|(file_id, path, kind, mode, mtime_ns, target, file)| {
                let kind = EntryKind::from_wire(kind).unwrap();
                let mut entry = OwnedEntry {
                    file_id,
                    path,
                    kind,
                    mode,
                    mtime_ns,
                    size: 0,
                    target: Vec::new(),
                    extents: None,
                    hash: None,
                    inline: None,
                };
                match kind {
                    EntryKind::File => {
                        (entry.size, entry.extents, entry.hash, entry.inline) = file;
                    }
                    EntryKind::Symlink => entry.target = target,
                    EntryKind::Dir => {}
                }
                entry
            })
    }

    proptest! {
        #[test]
        fn batch_round_trips(entries in vec(entry(), 0..20)) {
            let batch = ManifestBatch { entries: entries.iter().map(OwnedEntry::borrow).collect() };
            let mut buf = Vec::new();
            batch.encode(&mut buf).unwrap();
            prop_assert_eq!(ManifestBatch::decode(&buf), Ok(batch.clone()));

            let mut writer = BatchWriter::new(64);
            for entry in &batch.entries {
                writer.push(entry).unwrap();
            }
            prop_assert_eq!(&writer.finish()[..], &buf[..]);
            if !buf.is_empty() {
                prop_assert!(ManifestBatch::decode(&buf[..buf.len() - 1]).is_err());
            }
        }
    }

    #[test]
    fn rejects_overlapping_extents_and_bad_inline() {
        let owned = OwnedEntry {
            file_id: 1,
            path: b"f".to_vec(),
            kind: EntryKind::File,
            mode: 0o644,
            mtime_ns: 0,
            size: 100,
            target: Vec::new(),
            extents: Some(vec![
                Extent { offset: 0, len: 10 },
                Extent { offset: 5, len: 10 },
            ]),
            hash: None,
            inline: None,
        };
        let mut buf = Vec::new();
        ManifestBatch {
            entries: vec![owned.borrow()],
        }
        .encode(&mut buf)
        .unwrap();
        assert_eq!(ManifestBatch::decode(&buf), Err(ProtoError::BadExtents));

        let mut beyond = owned.clone();
        beyond.extents = Some(vec![Extent {
            offset: 90,
            len: 11,
        }]);
        buf.clear();
        ManifestBatch {
            entries: vec![beyond.borrow()],
        }
        .encode(&mut buf)
        .unwrap();
        assert_eq!(ManifestBatch::decode(&buf), Err(ProtoError::BadExtents));

        let mut inline = owned;
        inline.extents = None;
        inline.inline = Some(vec![1, 2, 3]);
        buf.clear();
        ManifestBatch {
            entries: vec![inline.borrow()],
        }
        .encode(&mut buf)
        .unwrap();
        assert!(matches!(
            ManifestBatch::decode(&buf),
            Err(ProtoError::InconsistentEntry(_))
        ));
    }

    #[test]
    fn refuses_a_count_the_input_cannot_hold() {
        let buf = [0x02, 0xFF, 0xFF, 0xFF, 0xFF];
        assert_eq!(
            ManifestBatch::decode(&buf),
            Err(ProtoError::CountTooLarge(u32::MAX))
        );
    }
}
