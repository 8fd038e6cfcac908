//! File submissions: open, read and write (fixed buffers for the shard's own), sync,
//! preallocate, close.

use std::ffi::CStr;
use std::os::fd::RawFd;

use io_uring::{opcode, types};

use super::Ring;
use crate::pool::BufHandle;

impl Ring {
    /// Opens `path` (relative to the working directory); the completion's result is the fd.
    pub(in crate::shard) fn open_file(&mut self, path: &CStr, flags: i32, ud: u64) {
        let entry = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
            .flags(flags)
            .mode(0o644)
            .build()
            .user_data(ud);
        // SAFETY: the caller keeps the path in the shard's file-op table until the
        // completion; a CString's bytes do not move when the CString does.
        unsafe { self.push(entry) };
    }

    /// Reads up to `len` bytes at `offset` into `buf` from its start: a fixed-buffer read
    /// when `buf` is from this shard's (registered) pool.
    pub(in crate::shard) fn read_file(
        &mut self,
        fd: RawFd,
        offset: u64,
        buf: &BufHandle,
        len: usize,
        ud: u64,
    ) {
        let ptr = buf.as_ptr();
        let len = len.min(buf.capacity()) as u32;
        let entry = if buf.owner() == self.shard {
            opcode::ReadFixed::new(types::Fd(fd), ptr, len, buf.id())
                .offset(offset)
                .build()
        } else {
            opcode::Read::new(types::Fd(fd), ptr, len)
                .offset(offset)
                .build()
        };
        // SAFETY: the caller keeps `buf` in the shard's file-op table until the completion;
        // at most its capacity is written.
        unsafe { self.push(entry.user_data(ud)) };
    }

    /// Writes `buf`'s valid bytes at `offset` (a fixed-buffer write when `buf` is ours).
    pub(in crate::shard) fn write_file(
        &mut self,
        fd: RawFd,
        offset: u64,
        buf: &BufHandle,
        ud: u64,
    ) {
        let ptr = buf.as_ptr();
        let len = buf.len() as u32;
        let entry = if buf.owner() == self.shard {
            opcode::WriteFixed::new(types::Fd(fd), ptr, len, buf.id())
                .offset(offset)
                .build()
        } else {
            opcode::Write::new(types::Fd(fd), ptr, len)
                .offset(offset)
                .build()
        };
        // SAFETY: the caller keeps `buf` in the shard's file-op table until the completion.
        unsafe { self.push(entry.user_data(ud)) };
    }

    /// `fsync`, or `fdatasync` when `data_only`.
    pub(in crate::shard) fn fsync_file(&mut self, fd: RawFd, data_only: bool, ud: u64) {
        let flags = if data_only {
            types::FsyncFlags::DATASYNC
        } else {
            types::FsyncFlags::empty()
        };
        let entry = opcode::Fsync::new(types::Fd(fd))
            .flags(flags)
            .build()
            .user_data(ud);
        // SAFETY: references no memory.
        unsafe { self.push(entry) };
    }

    /// `fallocate(fd, mode, offset, len)`.
    pub(in crate::shard) fn fallocate_file(
        &mut self,
        fd: RawFd,
        offset: u64,
        len: u64,
        mode: i32,
        ud: u64,
    ) {
        let entry = opcode::Fallocate::new(types::Fd(fd), len)
            .offset(offset)
            .mode(mode)
            .build()
            .user_data(ud);
        // SAFETY: references no memory.
        unsafe { self.push(entry) };
    }

    /// Closes `fd`.
    pub(in crate::shard) fn close_file(&mut self, fd: RawFd, ud: u64) {
        let entry = opcode::Close::new(types::Fd(fd)).build().user_data(ud);
        // SAFETY: references no memory.
        unsafe { self.push(entry) };
    }
}
