//! Thin, checked wrappers over the few system calls the shards make outside the ring:
//! socket setup, eventfd doorbells, resource limits, and what the shared-memory rendezvous
//! needs (memfds and their seals, descriptors passed over Unix sockets, peer credentials,
//! blocking socket calls with timeouts for the helper threads). All raw `libc` use lives
//! here, except mapping the shared memory, which `shm::mapping` keeps to itself.

use std::ffi::CString;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A socket address in the kernel's layout, kept by value so that a pointer to it can be
/// handed to an io_uring `connect` and stay valid as long as the owner keeps it.
#[derive(Clone, Copy)]
pub(crate) struct RawSockAddr {
    pub(crate) storage: libc::sockaddr_storage,
    pub(crate) len: libc::socklen_t,
}

impl std::fmt::Debug for RawSockAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSockAddr")
            .field("len", &self.len)
            .finish()
    }
}

impl RawSockAddr {
    pub(crate) fn zeroed() -> Self {
        // SAFETY: sockaddr_storage is plain old data; all-zero is a valid (AF_UNSPEC) value.
        let storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        RawSockAddr { storage, len: 0 }
    }

    pub(crate) fn from_inet(addr: SocketAddr) -> Self {
        let mut raw = Self::zeroed();
        match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in.
                unsafe {
                    std::ptr::write(&mut raw.storage as *mut _ as *mut libc::sockaddr_in, sin)
                };
                raw.len = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in6.
                unsafe {
                    std::ptr::write(&mut raw.storage as *mut _ as *mut libc::sockaddr_in6, sin6)
                };
                raw.len = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        raw
    }

    pub(crate) fn from_unix(path: &Path) -> io::Result<Self> {
        let mut raw = Self::zeroed();
        let bytes = path.as_os_str().as_bytes();
        // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_un.
        let sun = unsafe { &mut *(&mut raw.storage as *mut _ as *mut libc::sockaddr_un) };
        if bytes.len() >= sun.sun_path.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "unix socket path too long",
            ));
        }
        sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (dst, src) in sun.sun_path.iter_mut().zip(bytes) {
            *dst = *src as libc::c_char;
        }
        raw.len = (mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
        Ok(raw)
    }

    pub(crate) fn as_ptr(&self) -> *const libc::sockaddr {
        &self.storage as *const _ as *const libc::sockaddr
    }

    pub(crate) fn to_inet(self) -> Option<SocketAddr> {
        match libc::c_int::from(self.storage.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a sockaddr_in.
                let sin = unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_in) };
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says the storage holds a sockaddr_in6.
                let sin6 = unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_in6) };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

fn domain_of(addr: &SocketAddr) -> libc::c_int {
    if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    }
}

/// A stream socket for `addr`'s family, close-on-exec. Blocking mode: io_uring drives it.
pub(crate) fn tcp_socket(addr: &SocketAddr) -> io::Result<RawFd> {
    // SAFETY: plain system call with constant arguments.
    cvt(unsafe { libc::socket(domain_of(addr), libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })
}

/// A Unix stream socket, close-on-exec.
pub(crate) fn unix_socket() -> io::Result<RawFd> {
    // SAFETY: plain system call with constant arguments.
    cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })
}

pub(crate) fn set_int_opt(
    fd: RawFd,
    level: libc::c_int,
    opt: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` lives across the call and its size is passed along.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            &value as *const _ as *const libc::c_void,
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

pub(crate) fn set_bytes_opt(
    fd: RawFd,
    level: libc::c_int,
    opt: libc::c_int,
    value: &[u8],
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(value.len())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `value` is a live slice of `len` bytes for the duration of the call; the
    // kernel only reads it.
    cvt(unsafe { libc::setsockopt(fd, level, opt, value.as_ptr().cast(), len) }).map(drop)
}

pub(crate) fn bind(fd: RawFd, addr: &RawSockAddr) -> io::Result<()> {
    // SAFETY: `addr` points to `addr.len` valid bytes for the duration of the call.
    cvt(unsafe { libc::bind(fd, addr.as_ptr(), addr.len) }).map(drop)
}

pub(crate) fn listen(fd: RawFd, backlog: i32) -> io::Result<()> {
    // SAFETY: plain system call on an fd we own.
    cvt(unsafe { libc::listen(fd, backlog) }).map(drop)
}

/// The address of the peer of a connected socket.
pub(crate) fn peer_addr(fd: RawFd) -> io::Result<SocketAddr> {
    socket_name(fd, libc::getpeername)
}

/// The local address of a socket.
pub(crate) fn local_addr(fd: RawFd) -> io::Result<SocketAddr> {
    socket_name(fd, libc::getsockname)
}

/// An inet address `getname` (`getsockname` or `getpeername`) reads for `fd`.
fn socket_name(
    fd: RawFd,
    getname: unsafe extern "C" fn(
        libc::c_int,
        *mut libc::sockaddr,
        *mut libc::socklen_t,
    ) -> libc::c_int,
) -> io::Result<SocketAddr> {
    let mut raw = RawSockAddr::zeroed();
    raw.len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage and len describe a writable buffer of the right size, as both
    // getsockname and getpeername require.
    cvt(unsafe {
        getname(
            fd,
            &mut raw.storage as *mut _ as *mut libc::sockaddr,
            &mut raw.len,
        )
    })?;
    raw.to_inet()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an inet socket"))
}

/// `shutdown(2)`: makes pending ring operations on the socket complete.
pub(crate) fn shutdown(fd: RawFd) {
    // SAFETY: plain system call; an error (not connected) is harmless here.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

/// Reads what `fd` has received into `buf` without consuming it, never blocking.
pub(crate) fn recv_peek(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes for the duration of the call.
    let n = unsafe {
        libc::recv(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

pub(crate) fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and no ring operation refers to it any more.
    unsafe { libc::close(fd) };
}

/// A non-blocking eventfd used as a shard's doorbell.
pub(crate) fn eventfd() -> io::Result<RawFd> {
    // SAFETY: plain system call with constant arguments.
    cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })
}

/// Rings a doorbell: adds one to the eventfd counter.
pub(crate) fn eventfd_ring(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64; EAGAIN (counter saturated) still leaves it readable.
    unsafe { libc::write(fd, &one as *const u64 as *const libc::c_void, 8) };
}

/// Soft `RLIMIT_MEMLOCK` in bytes (`u64::MAX` when unlimited).
pub(crate) fn memlock_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid out-parameter.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return u64::MAX;
    }
    if lim.rlim_cur == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        lim.rlim_cur
    }
}

/// Whether this process may lock memory beyond the limit (CAP_IPC_LOCK, bit 14 of CapEff).
pub(crate) fn has_cap_ipc_lock() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 14) != 0)
}

pub(crate) fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Gives the memory the allocator holds free back to the system (glibc keeps freed
/// heap pages mapped: after a burst of connections a server's RSS would stay at its peak).
/// Walks every arena: call it from a thread with nothing better to do.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only inspects and trims the allocator's own free lists; it is
    // thread-safe and takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Size of a transparent huge page on x86-64 and arm64 with 4 KiB pages.
pub(crate) const HUGE_PAGE: usize = 2 << 20;

/// Asks the kernel to back the huge-page-aligned part of the `len` bytes at `start` with
/// transparent huge pages (`madvise(MADV_HUGEPAGE)`), before they are first touched. A
/// large receive buffer then takes a few 2 MiB pages instead of thousands of 4 KiB ones:
/// pinning it for an `O_DIRECT` write and copying into it cost less. Best effort: with
/// THP off, or on a range that is not mapped, nothing changes.
pub fn prefer_huge_pages(start: *const u8, len: usize) {
    let first = (start as usize).next_multiple_of(HUGE_PAGE);
    let end = (start as usize).saturating_add(len) / HUGE_PAGE * HUGE_PAGE;
    if end <= first {
        return;
    }
    // SAFETY: MADV_HUGEPAGE changes only how later faults in the range are served (and
    // lets khugepaged merge its pages): never its contents or what is mapped there. A
    // range that is not mapped fails with ENOMEM, which is ignored.
    unsafe {
        libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
    }
}

/// Memory the allocator may keep free at the top of each heap for reuse (see
/// [`reuse_freed_memory`]).
const REUSED_FREE_MEMORY: usize = 64 << 20;
/// Allocations at least this large get mappings of their own, returned when freed.
const OWN_MAPPING_MIN: usize = 32 << 20;

/// Lets the allocator reuse the memory of freed frames instead of returning it at once.
/// glibc's defaults map an 8 MiB block's storage afresh or trim it off the heap as soon
/// as it is freed, so every received block faults in and zeroes new pages. With these
/// limits a freed block's pages serve the next one; allocations of [`OWN_MAPPING_MIN`]
/// and more still get mappings of their own, at most [`REUSED_FREE_MEMORY`] stays free
/// per heap, and [`release_free_memory`] still returns all of it when a server is idle.
pub fn reuse_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets two of the allocator's thresholds; it takes no pointers
    // and is called before the threads that allocate are started.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, OWN_MAPPING_MIN as libc::c_int);
        libc::mallopt(libc::M_TRIM_THRESHOLD, REUSED_FREE_MEMORY as libc::c_int);
    }
}

/// Number of open file descriptors of this process (entries of `/proc/self/fd`, minus the
/// one used to list it).
pub fn open_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count().saturating_sub(1))
        .unwrap_or(0)
}

/// A datagram socket for `addr`'s family, close-on-exec.
pub(crate) fn udp_socket(addr: &SocketAddr) -> io::Result<RawFd> {
    // SAFETY: plain system call with constant arguments.
    cvt(unsafe { libc::socket(domain_of(addr), libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })
}

pub(crate) const SOL_UDP: libc::c_int = 17;
pub(crate) const UDP_SEGMENT: libc::c_int = 103;
pub(crate) const UDP_GRO: libc::c_int = 104;
const CMSG_HEADER: usize = std::mem::size_of::<libc::cmsghdr>();

/// Writes a `UDP_SEGMENT` control message (GSO: the kernel splits the payload into
/// `segment`-byte datagrams) into `control`; returns the control length to pass.
pub(crate) fn write_udp_segment_cmsg(control: &mut [u64; 4], segment: u16) -> usize {
    let mut bytes = [0u8; 32];
    let cmsg_len = CMSG_HEADER + 2;
    bytes[..8].copy_from_slice(&(cmsg_len as u64).to_ne_bytes());
    bytes[8..12].copy_from_slice(&SOL_UDP.to_ne_bytes());
    bytes[12..16].copy_from_slice(&UDP_SEGMENT.to_ne_bytes());
    bytes[16..18].copy_from_slice(&segment.to_ne_bytes());
    for (word, chunk) in control.iter_mut().zip(bytes.chunks_exact(8)) {
        *word = u64::from_ne_bytes(chunk.try_into().expect("8 bytes"));
    }
    cmsg_len.next_multiple_of(8)
}

/// The segment size of a `UDP_GRO` control message, if `control` holds one.
pub(crate) fn parse_udp_gro_cmsg(control: &[u8]) -> Option<u16> {
    let mut offset = 0;
    while offset + CMSG_HEADER <= control.len() {
        let len = u64::from_ne_bytes(control[offset..offset + 8].try_into().ok()?) as usize;
        let level = i32::from_ne_bytes(control[offset + 8..offset + 12].try_into().ok()?);
        let kind = i32::from_ne_bytes(control[offset + 12..offset + 16].try_into().ok()?);
        if len < CMSG_HEADER || offset + len > control.len() {
            return None;
        }
        if level == SOL_UDP && kind == UDP_GRO && len >= CMSG_HEADER + 4 {
            let data = &control[offset + CMSG_HEADER..offset + CMSG_HEADER + 4];
            return u16::try_from(i32::from_ne_bytes(data.try_into().ok()?)).ok();
        }
        offset += len.next_multiple_of(8);
    }
    None
}

/// Reads a socket address the kernel wrote (a recvmsg name field).
pub(crate) fn sockaddr_from_bytes(name: &[u8]) -> Option<SocketAddr> {
    let mut raw = RawSockAddr::zeroed();
    let n = name.len().min(mem::size_of::<libc::sockaddr_storage>());
    // SAFETY: copies at most size_of(sockaddr_storage) bytes into the storage, which is
    // plain old data for any byte pattern.
    unsafe {
        std::ptr::copy_nonoverlapping(name.as_ptr(), &mut raw.storage as *mut _ as *mut u8, n);
    }
    raw.len = n as libc::socklen_t;
    raw.to_inet()
}

/// Takes ownership of a freshly accepted descriptor so that it is closed if dropped.
pub(crate) fn owned_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by accept and nothing else owns it.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

// ---- shared-memory links: memfds, descriptor passing, credentials -------------------

/// A new anonymous memory file, close-on-exec and open to seals; never executable where
/// the kernel can say so (`MFD_NOEXEC_SEAL`, Linux 6.3: required when
/// `vm.memfd_noexec` is 2, and it keeps the kernel from warning).
pub(crate) fn memfd_create(name: &std::ffi::CStr) -> io::Result<OwnedFd> {
    let create = |flags: libc::c_uint| {
        // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
        cvt(unsafe { libc::memfd_create(name.as_ptr(), flags) })
    };
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    let fd = match create(flags | libc::MFD_NOEXEC_SEAL) {
        // An older kernel does not know the flag.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => create(flags)?,
        other => other?,
    };
    Ok(owned_fd(fd))
}

/// Sets a file's size.
pub(crate) fn ftruncate(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    let len =
        libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: plain system call on a descriptor the caller keeps open.
    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), len) }).map(drop)
}

/// Allocates the first `len` bytes of a file (no hole left to fault in later).
pub(crate) fn fallocate(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    let len =
        libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: plain system call on a descriptor the caller keeps open.
    cvt(unsafe { libc::fallocate(fd.as_raw_fd(), 0, 0, len) }).map(drop)
}

/// Adds `seals` (`F_SEAL_*`) to a memfd.
pub(crate) fn add_seals(fd: BorrowedFd<'_>, seals: libc::c_int) -> io::Result<()> {
    // SAFETY: plain fcntl on a descriptor the caller keeps open.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) }).map(drop)
}

/// The seals (`F_SEAL_*`) of a memfd.
pub(crate) fn seals(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    // SAFETY: plain fcntl on a descriptor the caller keeps open.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) })
}

/// What `fstat` says of a descriptor that matters here.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileStat {
    pub(crate) size: u64,
    pub(crate) regular: bool,
}

pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<FileStat> {
    // SAFETY: `stat` is plain old data; all-zero is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: `st` is a valid out-parameter for the duration of the call.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(FileStat {
        size: u64::try_from(st.st_size).unwrap_or(0),
        regular: st.st_mode & libc::S_IFMT == libc::S_IFREG,
    })
}

/// Whether `fd` is an eventfd (what `/proc/self/fd` says it is).
pub(crate) fn is_eventfd(fd: BorrowedFd<'_>) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .is_ok_and(|target| target.as_os_str() == "anon_inode:[eventfd]")
}

/// A new eventfd, owned (see [`eventfd`]).
pub(crate) fn eventfd_owned() -> io::Result<OwnedFd> {
    eventfd().map(owned_fd)
}

/// Reads (and so resets) a non-blocking eventfd's counter; nothing if it is zero.
pub(crate) fn eventfd_drain(fd: BorrowedFd<'_>) {
    let mut counter: u64 = 0;
    // SAFETY: reads at most 8 bytes into a live u64.
    unsafe { libc::read(fd.as_raw_fd(), (&mut counter as *mut u64).cast(), 8) };
}

/// A second descriptor of the same open file, close-on-exec.
pub(crate) fn dup(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: plain fcntl on a descriptor the caller keeps open.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) }).map(owned_fd)
}

/// Puts a descriptor in non-blocking mode (or back).
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, nonblocking: bool) -> io::Result<()> {
    // SAFETY: plain fcntl calls on a descriptor the caller keeps open.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    let flags = if nonblocking {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags) }).map(drop)
}

/// Accepts a connection on a listening socket, close-on-exec (blocking mode).
pub(crate) fn accept(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: null address arguments are allowed; the descriptor stays open for the call.
    let conn = cvt(unsafe {
        libc::accept4(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    })?;
    Ok(owned_fd(conn))
}

/// A blocking `connect` (a Unix socket's waits for room in the listener's backlog at most
/// `SO_SNDTIMEO`).
pub(crate) fn connect(fd: BorrowedFd<'_>, addr: &RawSockAddr) -> io::Result<()> {
    // SAFETY: `addr` points to `addr.len` valid bytes for the duration of the call.
    cvt(unsafe { libc::connect(fd.as_raw_fd(), addr.as_ptr(), addr.len) }).map(drop)
}

/// Sets `SO_RCVTIMEO` and `SO_SNDTIMEO` (`None`: block without limit).
pub(crate) fn set_socket_timeouts(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<()> {
    let tv = match timeout {
        // A zero timeval means "no limit": round a tiny positive remainder up.
        Some(d) => libc::timeval {
            tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_usec: libc::suseconds_t::from(if d.as_secs() == 0 {
                d.subsec_micros().max(1)
            } else {
                d.subsec_micros()
            }),
        },
        None => libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
    };
    for opt in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        // SAFETY: `tv` lives across the call and its size is passed along.
        cvt(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&tv as *const libc::timeval).cast(),
                mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        })?;
    }
    Ok(())
}

/// Waits until one of `fds` is readable (or hung up); returns one flag per descriptor.
/// `timeout`: `None` waits without limit. EINTR counts as "nothing yet".
pub(crate) fn poll_readable<const N: usize>(
    fds: [BorrowedFd<'_>; N],
    timeout: Option<Duration>,
) -> io::Result<[bool; N]> {
    let mut pfds = fds.map(|fd| libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    });
    let ms = timeout.map_or(-1, |d| i32::try_from(d.as_millis()).unwrap_or(i32::MAX));
    // SAFETY: `pfds` is a live array of N pollfd entries.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), N as libc::nfds_t, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok([false; N]);
        }
        return Err(e);
    }
    Ok(pfds.map(|p| p.revents != 0))
}

/// Sends `bytes` over a connected Unix socket with `fds` attached (`SCM_RIGHTS`) to its
/// first byte. Returns the bytes sent (the caller sends the rest without descriptors).
pub(crate) fn send_with_fds(fd: BorrowedFd<'_>, bytes: &[u8], fds: &[RawFd]) -> io::Result<usize> {
    const MAX_FDS: usize = 4;
    assert!(
        fds.len() <= MAX_FDS,
        "at most {MAX_FDS} descriptors per message"
    );
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: msghdr is plain old data; all-zero is an empty header.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let data_len = mem::size_of_val(fds) as libc::c_uint;
        // SAFETY: CMSG_SPACE and CMSG_LEN are arithmetic on a length.
        let (space, len) = unsafe { (libc::CMSG_SPACE(data_len), libc::CMSG_LEN(data_len)) };
        debug_assert!(space as usize <= mem::size_of_val(&control));
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: the control buffer is aligned (u64) and `space` bytes long, room for one
        // header with `fds` after it; FIRSTHDR is non-null because controllen covers a header.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = len as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                data_len as usize,
            );
        }
    }
    // SAFETY: the header, its iovec and control buffer live across the call; the kernel
    // only reads them.
    let n = unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// What one `recvmsg` on a Unix socket brought.
#[derive(Debug)]
pub(crate) struct ReceivedWithFds {
    /// Bytes received (0: end of stream).
    pub(crate) len: usize,
    /// Descriptors that came along (`SCM_RIGHTS`), now ours.
    pub(crate) fds: Vec<OwnedFd>,
    /// More descriptors, or other control data, came than there was room for: the kernel
    /// dropped the rest.
    pub(crate) truncated: bool,
}

/// Receives into `buf` from a connected Unix socket, taking any descriptors that come
/// along (close-on-exec). Room for 4; more are reported as `truncated`.
pub(crate) fn recv_with_fds(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<ReceivedWithFds> {
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain old data; all-zero is an empty header.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = mem::size_of_val(&control) as _;
    // SAFETY: the header, its iovec (over `buf`) and control buffer are live and writable
    // for the duration of the call.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    let mut truncated = msg.msg_flags & libc::MSG_CTRUNC != 0;
    // SAFETY: the kernel filled `msg_controllen` bytes of the control buffer with cmsg
    // headers; FIRSTHDR/NXTHDR walk them within that length, and each SCM_RIGHTS payload
    // holds (cmsg_len - CMSG_LEN(0)) / 4 descriptors the kernel installed for us.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..bytes / mem::size_of::<RawFd>() {
                    let raw = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    fds.push(OwnedFd::from_raw_fd(raw));
                }
            } else {
                truncated = true;
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(ReceivedWithFds {
        len: n as usize,
        fds,
        truncated,
    })
}

/// The credentials (`SO_PEERCRED`) of a Unix socket's peer, as of when it connected.
pub(crate) fn peer_credentials(fd: RawFd) -> io::Result<crate::protocol::PeerCredentials> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` describe a writable buffer of the right size.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    })?;
    Ok(crate::protocol::PeerCredentials {
        pid: u32::try_from(cred.pid).unwrap_or(0),
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// Whether `fd` is a Unix domain socket.
pub(crate) fn is_unix_socket(fd: RawFd) -> bool {
    let mut domain: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `domain` and `len` describe a writable int.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&mut domain as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    ret == 0 && domain == libc::AF_UNIX
}

#[cfg(test)]
mod huge_page_tests {
    use super::*;

    /// Advice changes no byte, and ranges too small to hold a huge page, or not mapped,
    /// are left alone. Where THP may be asked for, a fresh 8 MiB buffer advised before it
    /// is touched gets at least one huge page.
    #[test]
    fn advised_memory_keeps_its_bytes_and_gets_huge_pages_where_thp_allows() {
        prefer_huge_pages(std::ptr::null(), 0);
        prefer_huge_pages(std::ptr::null(), 3 << 20);
        let small = vec![5u8; 4096];
        prefer_huge_pages(small.as_ptr(), small.len());
        assert!(small.iter().all(|&b| b == 5));

        let len = 8 << 20;
        let mut buffer: Vec<u8> = Vec::with_capacity(len);
        prefer_huge_pages(buffer.as_ptr(), len);
        buffer.resize(len, 0xa5);
        assert!(buffer.iter().all(|&b| b == 0xa5));
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        if thp.contains("[never]") || thp.is_empty() {
            return;
        }
        let start = buffer.as_ptr() as usize;
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        let mut huge_kb = 0;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((from, to)) = range.split_once('-')
                && let (Ok(from), Ok(to)) = (
                    usize::from_str_radix(from, 16),
                    usize::from_str_radix(to, 16),
                )
            {
                // Advice splits the buffer's mapping: count every part of it.
                inside = from < start + len && start < to;
            } else if inside && let Some(kb) = line.strip_prefix("AnonHugePages:") {
                huge_kb += kb
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap_or(0);
            }
        }
        assert!(
            huge_kb >= 2048,
            "AnonHugePages {huge_kb} kB under THP {thp:?}"
        );
    }
}
