//! Data extents of sparse files (`SEEK_DATA`/`SEEK_HOLE`), the pieces a file is sent in,
//! and the whole-file content hash.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

use hawser_wire::xxh3::{Hasher64, Hasher128};
use rustix::fs::SeekFrom;

use super::proto::Extent;

/// The data extents of `file`, or `None` when all of `0..size` is data (the common case,
/// decided from `st_blocks` without any seek).
pub(crate) fn data_extents(file: &File, size: u64) -> io::Result<Option<Vec<Extent>>> {
    if size == 0 || file.metadata()?.blocks().saturating_mul(512) >= size {
        return Ok(None);
    }
    let mut extents = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let data = match rustix::fs::seek(file, SeekFrom::Data(pos)) {
            Ok(data) => data,
            // ENXIO: no data after `pos`, the rest is a hole.
            Err(rustix::io::Errno::NXIO) => break,
            // The filesystem cannot tell: treat the file as dense.
            Err(rustix::io::Errno::INVAL) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if data >= size {
            break;
        }
        let hole = rustix::fs::seek(file, SeekFrom::Hole(data))?.min(size);
        extents.push(Extent {
            offset: data,
            len: hole - data,
        });
        pos = hole;
    }
    if extents.len() == 1
        && extents[0]
            == (Extent {
                offset: 0,
                len: size,
            })
    {
        return Ok(None);
    }
    Ok(Some(extents))
}

/// One message's worth of a file: a part of a data extent within one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) offset: u64,
    pub(crate) len: u32,
}

impl Piece {
    /// The block (of `block_size` bytes, counted from offset 0) the piece lies in.
    pub(crate) fn block_index(&self, block_size: u32) -> u32 {
        u32::try_from(self.offset / u64::from(block_size)).unwrap_or(u32::MAX)
    }
}

/// How many pieces [`pieces`] would return, computed without building them, so that a
/// manifest entry from the network cannot make the target allocate per claimed byte.
pub(crate) fn piece_count(extents: &[Extent], block_size: u32) -> u64 {
    let block = u64::from(block_size);
    extents
        .iter()
        .filter(|e| e.len > 0)
        .map(|e| (e.end() - 1) / block - e.offset / block + 1)
        .sum()
}

/// Splits data extents at block boundaries; both sides compute the same pieces from the
/// manifest, so a piece is named by its offset alone.
pub(crate) fn pieces(extents: &[Extent], block_size: u32) -> Vec<Piece> {
    let block = u64::from(block_size);
    let mut out = Vec::new();
    for extent in extents {
        let mut offset = extent.offset;
        let end = extent.end();
        while offset < end {
            let block_end = (offset / block + 1).saturating_mul(block);
            let piece_end = block_end.min(end);
            out.push(Piece {
                offset,
                // A piece never exceeds one block, and blocks are at most 64 MiB.
                len: u32::try_from(piece_end - offset).unwrap_or(u32::MAX),
            });
            offset = piece_end;
        }
    }
    out
}

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// Feeds `len` zero bytes (a hole) to `hasher`.
pub(crate) fn hash_zeros(hasher: &mut Hasher128, mut len: u64) {
    while len > 0 {
        let n = len.min(ZEROS.len() as u64) as usize;
        hasher.update(&ZEROS[..n]);
        len -= n as u64;
    }
}

/// xxh3-128 of a file's content, holes read as zeros, reading only its data extents.
/// Bytes read and hashed at a time by [`read_digested`]: small enough to stay in the L2
/// cache between the read's copy and the hash passes over it, so each byte comes from
/// memory once instead of once per pass.
pub(crate) const HASH_CHUNK: usize = 256 * 1024;

/// Fills `buf` from `file` at `offset` and returns the xxh3-64 of `buf` (a block's
/// digest), hashing each chunk right after it is read (one pass over memory for the read
/// and the hash).
pub(crate) fn read_digested(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<u64> {
    let mut block_hasher = Hasher64::new();
    read_in_chunks(file, offset, buf, |chunk| block_hasher.update(chunk))?;
    Ok(block_hasher.digest())
}

/// Fills `buf` from `file` at `offset` in cache-sized chunks, handing each to `consume`
/// right after it is read (while it is still in the cache).
pub(crate) fn read_in_chunks(
    file: &File,
    offset: u64,
    buf: &mut [u8],
    mut consume: impl FnMut(&[u8]),
) -> io::Result<()> {
    let mut at = offset;
    for chunk in buf.chunks_mut(HASH_CHUNK) {
        file.read_exact_at(chunk, at)?;
        consume(chunk);
        at += chunk.len() as u64;
    }
    Ok(())
}

pub(crate) fn hash_file(file: &File, size: u64) -> io::Result<u128> {
    let extents = data_extents(file, size)?.unwrap_or_else(|| {
        if size > 0 {
            vec![Extent {
                offset: 0,
                len: size,
            }]
        } else {
            Vec::new()
        }
    });
    let mut hasher = Hasher128::new();
    let mut buf = vec![0u8; 4 * HASH_CHUNK];
    let mut pos = 0;
    for extent in &extents {
        hash_zeros(&mut hasher, extent.offset - pos);
        let mut offset = extent.offset;
        while offset < extent.end() {
            let n = (extent.end() - offset).min(buf.len() as u64) as usize;
            read_in_chunks(file, offset, &mut buf[..n], |chunk| hasher.update(chunk))?;
            offset += n as u64;
        }
        pos = extent.end();
    }
    hash_zeros(&mut hasher, size.saturating_sub(pos));
    Ok(hasher.digest128())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_digested_matches_the_one_shot_hash() {
        let path = std::env::temp_dir().join(format!("hawser-read-hashed-{}", std::process::id()));
        let data: Vec<u8> = (0..HASH_CHUNK * 2 + 1234)
            .map(|i| (i * 7 + i / 3) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        let mut buf = vec![0u8; data.len() - 5];
        let digest = read_digested(&file, 5, &mut buf).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(buf, data[5..]);
        assert_eq!(digest, hawser_wire::xxh3::hash64(&data[5..]));
    }

    #[test]
    fn pieces_split_at_block_boundaries() {
        let extents = [
            Extent { offset: 0, len: 10 },
            Extent {
                offset: 14,
                len: 20,
            },
        ];
        let got = pieces(&extents, 8);
        let want: Vec<(u64, u32)> = vec![(0, 8), (8, 2), (14, 2), (16, 8), (24, 8), (32, 2)];
        assert_eq!(
            got.iter().map(|p| (p.offset, p.len)).collect::<Vec<_>>(),
            want
        );
        assert_eq!(got[2].block_index(8), 1);
        assert_eq!(piece_count(&extents, 8), got.len() as u64);
        assert_eq!(
            piece_count(
                &[Extent {
                    offset: 0,
                    len: u64::MAX / 2
                }],
                4096
            ),
            (u64::MAX / 2 - 1) / 4096 + 1
        );
    }

    #[test]
    fn sparse_file_extents_and_hash() {
        let path = std::env::temp_dir().join(format!("hawser-sparse-{}", std::process::id()));
        let file = File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let size = 64 << 20;
        file.set_len(size).unwrap();
        file.write_all_at(&[7u8; 4096], 16 << 20).unwrap();
        let extents = data_extents(&file, size).unwrap().expect("sparse");
        assert!(
            extents
                .iter()
                .all(|e| e.offset <= 16 << 20 && e.end() >= (16 << 20) + 4096)
        );
        let mut dense = vec![0u8; size as usize];
        dense[16 << 20..(16 << 20) + 4096].fill(7);
        assert_eq!(
            hash_file(&file, size).unwrap(),
            hawser_wire::xxh3::hash128(&dense)
        );
        std::fs::remove_file(&path).unwrap();
    }
}
