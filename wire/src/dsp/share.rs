//! Owned fields for a decoded frame: slices of the buffer it was decoded from become
//! [`Bytes`] sharing that buffer (see [`Frame::to_shared`](super::Frame::to_shared)).

use bytes::Bytes;

/// Turns borrowed fields into owned ones: a slice of the input becomes a [`Bytes`]
/// sharing the input's storage; anything else (a body the decoder decompressed into its
/// scratch buffer, a text) is copied.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Share<'i>(pub(crate) &'i Bytes);

impl Share<'_> {
    pub(crate) fn bytes(self, field: &[u8]) -> Bytes {
        if field.is_empty() {
            return Bytes::new();
        }
        let base = self.0.as_ptr() as usize;
        let start = field.as_ptr() as usize;
        match start.checked_sub(base) {
            Some(offset) if offset + field.len() <= self.0.len() => {
                self.0.slice(offset..offset + field.len())
            }
            _ => Bytes::copy_from_slice(field),
        }
    }

    pub(crate) fn text(self, field: &str) -> String {
        field.to_owned()
    }
}
