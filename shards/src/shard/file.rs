//! File operations through a shard's ring: open, read and write (fixed buffers when the
//! buffer is the shard's own), sync, preallocate, close. Each operation waits in an op table
//! with whatever it references until its completion reaches the handler's `on_file`.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::path::Path;

use super::Core;
use super::op::{OpKind, user_data};
use crate::pool::BufHandle;
use crate::sys;

/// A finished file operation.
#[derive(Debug)]
pub struct FileDone {
    /// The token given when the operation was started.
    pub token: u64,
    /// Bytes transferred, the new fd for an open, or 0.
    pub result: io::Result<u32>,
    /// The buffer of a read or write, handed back.
    pub buf: Option<BufHandle>,
}

/// How to open a file through the ring.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// Open for writing (reading is always allowed).
    pub write: bool,
    /// Create if missing (mode 0644).
    pub create: bool,
    /// Truncate to zero length.
    pub truncate: bool,
    /// `O_DIRECT`: bypass the page cache; offsets, lengths and buffers must be aligned to
    /// the device block size (pool buffers are page aligned).
    pub direct: bool,
}

impl OpenOptions {
    fn flags(&self) -> i32 {
        let mut flags = libc::O_CLOEXEC
            | if self.write {
                libc::O_RDWR
            } else {
                libc::O_RDONLY
            };
        if self.create {
            flags |= libc::O_CREAT;
        }
        if self.truncate {
            flags |= libc::O_TRUNC;
        }
        if self.direct {
            flags |= libc::O_DIRECT;
        }
        flags
    }
}

/// An operation in flight and what it references.
pub(super) struct FileOp {
    token: u64,
    /// The path of an open.
    path: Option<CString>,
    /// The buffer of a read or write.
    buf: Option<BufHandle>,
    /// A read: the buffer's length becomes the bytes read.
    is_read: bool,
}

impl Core {
    pub(super) fn open_file(
        &mut self,
        path: &Path,
        options: OpenOptions,
        token: u64,
    ) -> io::Result<()> {
        let path = sys::cstring(path)?;
        let index = self.hold_file_op(token, Some(path), None, false);
        let path = held(&self.files, index)
            .path
            .as_deref()
            .expect("an open holds its path");
        let ud = user_data(OpKind::File, 0, index);
        self.ring.open_file(path, options.flags(), ud);
        Ok(())
    }

    pub(super) fn read_file(
        &mut self,
        fd: RawFd,
        offset: u64,
        mut buf: BufHandle,
        len: usize,
        token: u64,
    ) {
        buf.set_len(0);
        let index = self.hold_file_op(token, None, Some(buf), true);
        let buf = held(&self.files, index)
            .buf
            .as_ref()
            .expect("a read or write holds its buffer");
        let ud = user_data(OpKind::File, 0, index);
        self.ring.read_file(fd, offset, buf, len, ud);
    }

    pub(super) fn write_file(&mut self, fd: RawFd, offset: u64, buf: BufHandle, token: u64) {
        let index = self.hold_file_op(token, None, Some(buf), false);
        let buf = held(&self.files, index)
            .buf
            .as_ref()
            .expect("a read or write holds its buffer");
        let ud = user_data(OpKind::File, 0, index);
        self.ring.write_file(fd, offset, buf, ud);
    }

    pub(super) fn fsync_file(&mut self, fd: RawFd, data_only: bool, token: u64) {
        let index = self.hold_file_op(token, None, None, false);
        let ud = user_data(OpKind::File, 0, index);
        self.ring.fsync_file(fd, data_only, ud);
    }

    pub(super) fn fallocate_file(
        &mut self,
        fd: RawFd,
        offset: u64,
        len: u64,
        mode: i32,
        token: u64,
    ) {
        let index = self.hold_file_op(token, None, None, false);
        let ud = user_data(OpKind::File, 0, index);
        self.ring.fallocate_file(fd, offset, len, mode, ud);
    }

    pub(super) fn close_file(&mut self, fd: RawFd, token: u64) {
        let index = self.hold_file_op(token, None, None, false);
        let ud = user_data(OpKind::File, 0, index);
        self.ring.close_file(fd, ud);
    }

    /// Stores an operation in the op table, where it stays until its completion. Returns
    /// its index.
    fn hold_file_op(
        &mut self,
        token: u64,
        path: Option<CString>,
        buf: Option<BufHandle>,
        is_read: bool,
    ) -> u32 {
        let op = FileOp {
            token,
            path,
            buf,
            is_read,
        };
        match self.free_files.pop() {
            Some(i) => {
                self.files[i as usize] = Some(op);
                i
            }
            None => {
                self.files.push(Some(op));
                (self.files.len() - 1) as u32
            }
        }
    }

    pub(super) fn on_file(&mut self, index: u32, res: i32) {
        let Some(op) = self.files.get_mut(index as usize).and_then(|o| o.take()) else {
            return;
        };
        self.free_files.push(index);
        self.stats.file_ops += 1;
        let mut buf = op.buf;
        let result = if res < 0 {
            Err(io::Error::from_raw_os_error(-res))
        } else {
            if let (true, Some(b)) = (op.is_read, buf.as_mut()) {
                b.set_len(res as usize);
            }
            Ok(res as u32)
        };
        self.with_handler(|h, ctx| {
            h.on_file(
                ctx,
                FileDone {
                    token: op.token,
                    result,
                    buf,
                },
            )
        });
    }
}

/// Operation `index` of the op table (a field borrow, so the ring stays free to submit).
fn held(files: &[Option<FileOp>], index: u32) -> &FileOp {
    files[index as usize].as_ref().expect("just stored")
}
