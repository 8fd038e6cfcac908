//! Thin, checked wrappers over the few system calls the shards make outside the ring:
//! socket setup, eventfd doorbells, resource limits. All raw `libc` use lives here.

use std::ffi::CString;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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
pub(crate) fn owned_fd(fd: RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: `fd` was just returned by accept and nothing else owns it.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}
