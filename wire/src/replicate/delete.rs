//! `Delete`: remove the target entries under the destination that no manifest entry of
//! this job named; `DeleteList` says which went (or would go, in a dry run).

use crate::reader::Reader;
use bytes::BufMut;

use super::{MessageKind, Need, ProtoError, expect_end, expect_tag, put_u16_bytes};

/// `tag, max_listed u32`: how many deleted paths the answer may list (the count is
/// always complete).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteRequest {
    /// Upper bound on the paths listed in the answer, to bound its size.
    pub max_listed: u32,
}

impl DeleteRequest {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(MessageKind::Delete.tag());
        out.put_u32(self.max_listed);
    }

    /// Decodes a whole message.
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        expect_tag(&mut r, MessageKind::Delete)?;
        let max_listed = r.u32().need()?;
        expect_end(&r)?;
        Ok(DeleteRequest { max_listed })
    }
}

/// `tag, total u64, count u32, path (u16 + bytes)…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteList<'a> {
    /// Entries removed (a removed directory counts once, its contents with it).
    pub total: u64,
    /// The first of them, relative to the destination.
    pub paths: Vec<&'a [u8]>,
}

impl<'a> DeleteList<'a> {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), ProtoError> {
        out.put_u8(MessageKind::DeleteList.tag());
        out.put_u64(self.total);
        out.put_u32(u32::try_from(self.paths.len()).map_err(|_| ProtoError::TooLong)?);
        for path in &self.paths {
            put_u16_bytes(out, path)?;
        }
        Ok(())
    }

    /// Decodes a whole message.
    pub fn decode(body: &'a [u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        expect_tag(&mut r, MessageKind::DeleteList)?;
        let total = r.u64().need()?;
        let count = r.u32().need()?;
        if u64::from(count) * 2 > r.left() as u64 {
            return Err(ProtoError::CountTooLarge(count));
        }
        let mut paths = Vec::with_capacity(count as usize);
        for _ in 0..count {
            paths.push(r.u16_bytes().need()?);
        }
        expect_end(&r)?;
        Ok(DeleteList { total, paths })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn delete_round_trips(max_listed: u32, total: u64,
                              paths in vec(vec(any::<u8>(), 0..40), 0..20)) {
            let request = DeleteRequest { max_listed };
            let mut buf = Vec::new();
            request.encode(&mut buf);
            prop_assert_eq!(DeleteRequest::decode(&buf), Ok(request));

            let list = DeleteList { total, paths: paths.iter().map(Vec::as_slice).collect() };
            let mut buf = Vec::new();
            list.encode(&mut buf).unwrap();
            prop_assert_eq!(DeleteList::decode(&buf), Ok(list));
        }
    }
}
