//! `ManifestAnswer`: the target's verdict on each entry of a batch.

use crate::reader::Reader;
use bytes::BufMut;

use super::{MessageKind, Need, ProtoError, expect_end, expect_tag, put_u16_bytes};

/// Why the target refused an entry. The refusal travels back per entry, so one bad path
/// does not stop the rest of the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum RefusalKind {
    /// The path starts with `/`.
    #[error("absolute path")]
    AbsolutePath,
    /// The path has a `..` component.
    #[error("path climbs out with '..'")]
    ParentComponent,
    /// A directory on the way to the entry is a symlink on the target, so writing would
    /// go wherever it points (possibly out of the root).
    #[error("path goes through a symlink")]
    SymlinkEscape,
    /// Empty path or component, `.`, a NUL byte, or a name the target reserves.
    #[error("invalid path")]
    InvalidPath,
    /// The target could not write the entry.
    #[error("I/O error on the target")]
    Io,
    /// Inline data that does not match its content hash.
    #[error("inline data does not match its hash")]
    ContentMismatch,
    /// A file of more pieces than the target tracks (see `MAX_PIECES`): use a larger
    /// block size.
    #[error("file has too many blocks for the target")]
    TooManyBlocks,
    /// The job named this path before (in this batch or an earlier one): only its first
    /// entry counts, so that one name never stands for two kinds of entry.
    #[error("path named twice in the job")]
    DuplicatePath,
}

impl RefusalKind {
    pub(crate) fn to_wire(self) -> u8 {
        match self {
            Self::AbsolutePath => 1,
            Self::ParentComponent => 2,
            Self::SymlinkEscape => 3,
            Self::InvalidPath => 4,
            Self::Io => 5,
            Self::ContentMismatch => 6,
            Self::TooManyBlocks => 7,
            Self::DuplicatePath => 8,
        }
    }

    pub(crate) fn from_wire(value: u8) -> Result<Self, ProtoError> {
        Ok(match value {
            1 => Self::AbsolutePath,
            2 => Self::ParentComponent,
            3 => Self::SymlinkEscape,
            4 => Self::InvalidPath,
            5 => Self::Io,
            6 => Self::ContentMismatch,
            7 => Self::TooManyBlocks,
            8 => Self::DuplicatePath,
            other => {
                return Err(ProtoError::BadValue {
                    field: "refusal",
                    value: u32::from(other),
                });
            }
        })
    }
}

/// What the target wants for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Already identical (metadata brought in line if needed): send nothing.
    UpToDate,
    /// Created or written from the manifest alone (directory, symlink, inline file).
    Done,
    /// Send every data block, then commit.
    NeedAll,
    /// Send these blocks (indexes, strictly ascending), then commit: the others are
    /// complete and verified from an interrupted run.
    NeedBlocks(Vec<u32>),
    /// Refused; nothing was written.
    Refused {
        /// Why, as a type.
        kind: RefusalKind,
        /// Details for the operator.
        detail: &'a [u8],
    },
}

/// One entry's answer: `file_id u32, verdict u8` then, for NeedBlocks `count u32 +
/// index u32…`, for Refused `kind u8 + detail (u16 + bytes)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerEntry<'a> {
    /// The entry's id from the manifest.
    pub file_id: u32,
    /// The verdict.
    pub verdict: Verdict<'a>,
}

/// The answer to one [`ManifestBatch`](super::ManifestBatch): `tag, count u32, answer…`,
/// in the batch's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestAnswer<'a> {
    /// One per entry of the batch.
    pub entries: Vec<AnswerEntry<'a>>,
}

impl<'a> ManifestAnswer<'a> {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), ProtoError> {
        out.put_u8(MessageKind::ManifestAnswer.tag());
        out.put_u32(u32::try_from(self.entries.len()).map_err(|_| ProtoError::TooLong)?);
        for entry in &self.entries {
            out.put_u32(entry.file_id);
            match &entry.verdict {
                Verdict::UpToDate => out.put_u8(0),
                Verdict::Done => out.put_u8(1),
                Verdict::NeedAll => out.put_u8(2),
                Verdict::NeedBlocks(blocks) => {
                    out.put_u8(3);
                    out.put_u32(u32::try_from(blocks.len()).map_err(|_| ProtoError::TooLong)?);
                    for block in blocks {
                        out.put_u32(*block);
                    }
                }
                Verdict::Refused { kind, detail } => {
                    out.put_u8(4);
                    out.put_u8(kind.to_wire());
                    put_u16_bytes(out, detail)?;
                }
            }
        }
        Ok(())
    }

    /// Decodes a whole message.
    pub fn decode(body: &'a [u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        expect_tag(&mut r, MessageKind::ManifestAnswer)?;
        let count = r.u32().need()?;
        if u64::from(count) * 5 > r.left() as u64 {
            return Err(ProtoError::CountTooLarge(count));
        }
        let mut entries = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let file_id = r.u32().need()?;
            let verdict = match r.u8().need()? {
                0 => Verdict::UpToDate,
                1 => Verdict::Done,
                2 => Verdict::NeedAll,
                3 => {
                    let n = r.u32().need()?;
                    if u64::from(n) * 4 > r.left() as u64 {
                        return Err(ProtoError::CountTooLarge(n));
                    }
                    let mut blocks = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        let index = r.u32().need()?;
                        if blocks.last().is_some_and(|&last| index <= last) {
                            return Err(ProtoError::BadBlockList);
                        }
                        blocks.push(index);
                    }
                    Verdict::NeedBlocks(blocks)
                }
                4 => Verdict::Refused {
                    kind: RefusalKind::from_wire(r.u8().need()?)?,
                    detail: r.u16_bytes().need()?,
                },
                other => {
                    return Err(ProtoError::BadValue {
                        field: "verdict",
                        value: u32::from(other),
                    });
                }
            };
            entries.push(AnswerEntry { file_id, verdict });
        }
        expect_end(&r)?;
        Ok(ManifestAnswer { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::{btree_set, vec};
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum OwnedVerdict {
        Plain(u8),
        Blocks(Vec<u32>),
        Refused(u8, Vec<u8>),
    }

    fn verdict() -> impl Strategy<Value = OwnedVerdict> {
        prop_oneof![
            (0u8..3).prop_map(OwnedVerdict::Plain),
            btree_set(any::<u32>(), 0..20)
                .prop_map(|s| OwnedVerdict::Blocks(s.into_iter().collect())),
            (1u8..=8, vec(any::<u8>(), 0..50)).prop_map(|(k, d)| OwnedVerdict::Refused(k, d)),
        ]
    }

    proptest! {
        #[test]
        fn answer_round_trips(entries in vec((any::<u32>(), verdict()), 0..30)) {
            let answer = ManifestAnswer {
                entries: entries
                    .iter()
                    .map(|(file_id, v)| AnswerEntry {
                        file_id: *file_id,
                        verdict: match v {
                            OwnedVerdict::Plain(0) => Verdict::UpToDate,
                            OwnedVerdict::Plain(1) => Verdict::Done,
                            OwnedVerdict::Plain(_) => Verdict::NeedAll,
                            OwnedVerdict::Blocks(b) => Verdict::NeedBlocks(b.clone()),
                            OwnedVerdict::Refused(k, d) => Verdict::Refused {
                                kind: RefusalKind::from_wire(*k).unwrap(),
                                detail: d,
                            },
                        },
                    })
                    .collect(),
            };
            let mut buf = Vec::new();
            answer.encode(&mut buf).unwrap();
            prop_assert_eq!(ManifestAnswer::decode(&buf), Ok(answer));
            prop_assert!(ManifestAnswer::decode(&buf[..buf.len() - 1]).is_err());
        }
    }

    #[test]
    fn block_lists_must_ascend() {
        let mut buf = vec![0x82, 0, 0, 0, 1, 0, 0, 0, 9, 3, 0, 0, 0, 2];
        buf.extend_from_slice(&5u32.to_be_bytes());
        buf.extend_from_slice(&5u32.to_be_bytes());
        assert_eq!(ManifestAnswer::decode(&buf), Err(ProtoError::BadBlockList));
    }
}
