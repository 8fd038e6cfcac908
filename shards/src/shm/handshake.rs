//! The rendezvous of a link over its Unix socket: the server's side ([`serve`]) and the
//! client's ([`connect`]). Both block (with a deadline) and run on helper threads, never
//! on a shard; each checks everything the other sends before mapping anything.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::LinkParts;
use super::layout::{
    self, ClientHello, HEADER_FIELDS, HELLO_BYTES, Refusal, Role, ServerHello, VERSION,
};
use super::mapping::Mapping;
use crate::sys::{self, RawSockAddr};

/// Seals the server puts on a region, and the ones a client insists on.
const SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
const REQUIRED_SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
/// Seals under which a writable shared mapping cannot work.
const WRITE_SEALS: libc::c_int = libc::F_SEAL_WRITE | libc::F_SEAL_FUTURE_WRITE;

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Where a handshake stands against its deadline.
struct Clock {
    deadline: Instant,
    timeout: Duration,
}

impl Clock {
    fn new(timeout: Duration) -> Clock {
        Clock {
            deadline: Instant::now() + timeout,
            timeout,
        }
    }

    fn timed_out(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {:?}", self.timeout),
        )
    }

    /// Arms the socket's timeouts for the time left, or says it is up.
    fn arm(&self, sock: BorrowedFd<'_>) -> io::Result<()> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timed_out());
        }
        sys::set_socket_timeouts(sock, Some(left))
    }
}

/// One hello and the descriptors that came with it.
struct Message {
    bytes: [u8; HELLO_BYTES],
    fds: Vec<OwnedFd>,
    /// More descriptors (or other control data) came than there was room for.
    truncated: bool,
}

fn recv_message(sock: BorrowedFd<'_>, clock: &Clock) -> io::Result<Message> {
    let mut msg = Message {
        bytes: [0; HELLO_BYTES],
        fds: Vec::new(),
        truncated: false,
    };
    let mut got = 0;
    while got < HELLO_BYTES {
        clock.arm(sock)?;
        match sys::recv_with_fds(sock, &mut msg.bytes[got..]) {
            Ok(r) => {
                msg.fds.extend(r.fds);
                msg.truncated |= r.truncated;
                if r.len == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the peer closed the socket after {got} of {HELLO_BYTES} bytes"),
                    ));
                }
                got += r.len;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(clock.timed_out()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(msg)
}

fn send_message(
    sock: BorrowedFd<'_>,
    bytes: &[u8; HELLO_BYTES],
    fds: &[RawFd],
    clock: &Clock,
) -> io::Result<()> {
    let mut sent = 0;
    while sent < HELLO_BYTES {
        clock.arm(sock)?;
        let attach = if sent == 0 { fds } else { &[] };
        match sys::send_with_fds(sock, &bytes[sent..], attach) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(clock.timed_out()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Creates, sizes, allocates and seals a region with rings of `ring_bytes`, maps it and
/// writes its header.
fn create_region(ring_bytes: usize) -> io::Result<(OwnedFd, Mapping)> {
    let len = layout::region_bytes(ring_bytes);
    let fd = sys::memfd_create(c"hawser-shm")?;
    sys::ftruncate(fd.as_fd(), len as u64)?;
    // Memory now rather than a fault later: a region the system cannot back fails the
    // handshake with ENOMEM/ENOSPC instead of killing us with SIGBUS mid-stream.
    sys::fallocate(fd.as_fd(), len as u64)?;
    sys::add_seals(fd.as_fd(), SEALS)?;
    let map = Mapping::map(fd.as_fd(), len)?;
    map.write(0, &layout::header(ring_bytes));
    Ok((fd, map))
}

/// The server's side, on an accepted socket: checks the client's hello, creates and sends
/// the region, waits for the acknowledgement. Grants at most `max_ring` bytes per ring.
/// A client's mistake is answered with a refusal before the error returns.
pub(crate) fn serve(
    sock: BorrowedFd<'_>,
    max_ring: usize,
    timeout: Duration,
) -> io::Result<LinkParts> {
    let clock = Clock::new(timeout);
    let refuse = |why: Refusal, error: io::Error| {
        // Best effort: the client may be gone, or not read.
        let _ = send_message(sock, &ServerHello::refused(why).encode(), &[], &clock);
        error
    };
    let hello = recv_message(sock, &clock)?;
    let Some(client) = ClientHello::decode(&hello.bytes) else {
        return Err(refuse(
            Refusal::NotAHello,
            invalid("the client's hello does not start with the link's magic"),
        ));
    };
    if client.version != VERSION {
        return Err(refuse(
            Refusal::Version,
            invalid(format!(
                "the client speaks version {}, we speak {VERSION}",
                client.version
            )),
        ));
    }
    if !layout::ring_bytes_ok(client.ring_bytes) {
        return Err(refuse(
            Refusal::RingSize,
            invalid(format!(
                "the client asks for rings of {} bytes, not a power of two from {} to {}",
                client.ring_bytes,
                layout::MIN_RING_BYTES,
                layout::MAX_RING_BYTES
            )),
        ));
    }
    let mut fds = hello.fds;
    if hello.truncated || fds.len() != 1 || !sys::is_eventfd(fds[0].as_fd()) {
        return Err(refuse(
            Refusal::Descriptors,
            invalid(format!(
                "the client's hello carried {}{} descriptor(s), expected exactly one eventfd",
                fds.len(),
                if hello.truncated { " or more" } else { "" }
            )),
        ));
    }
    let peer_doorbell = fds.pop().expect("checked: one");
    let ring_bytes = (client.ring_bytes as usize).min(max_ring);
    let (memfd, map) = create_region(ring_bytes).map_err(|e| {
        refuse(
            Refusal::Resources,
            io::Error::new(e.kind(), format!("setting up the shared region: {e}")),
        )
    })?;
    let own_doorbell = sys::eventfd_owned().map_err(|e| refuse(Refusal::Resources, e))?;
    send_message(
        sock,
        &ServerHello::accepted(ring_bytes).encode(),
        &[memfd.as_raw_fd(), own_doorbell.as_raw_fd()],
        &clock,
    )?;
    drop(memfd);
    let ack = recv_message(sock, &clock)?;
    if !ack.fds.is_empty() || ack.truncated || !layout::is_ack(&ack.bytes) {
        return Err(invalid(
            "the client's acknowledgement is not the link's (or carries descriptors)",
        ));
    }
    sys::set_socket_timeouts(sock, None)?;
    Ok(LinkParts {
        map,
        role: Role::Server,
        ring_bytes,
        own_doorbell,
        peer_doorbell,
    })
}

/// Checks the memfd a server sent before it is mapped: a regular file of `len` bytes
/// that can neither shrink nor grow, nor refuses writes.
fn check_region_fd(fd: BorrowedFd<'_>, len: usize) -> io::Result<()> {
    let stat = sys::fstat(fd)?;
    if !stat.regular {
        return Err(invalid(
            "the server's region descriptor is not a memory file",
        ));
    }
    let seals = sys::seals(fd).map_err(|e| {
        invalid(format!(
            "the server's region descriptor has no seals to read ({e}); refusing to map it"
        ))
    })?;
    if seals & REQUIRED_SEALS != REQUIRED_SEALS {
        return Err(invalid(format!(
            "the server's region is not sealed against shrinking and growing (seals {seals:#x}); \
             refusing to map it"
        )));
    }
    if seals & WRITE_SEALS != 0 {
        return Err(invalid(format!(
            "the server's region is sealed against writing (seals {seals:#x})"
        )));
    }
    if stat.size != len as u64 {
        return Err(invalid(format!(
            "the server's region is {} bytes, its hello's layout says {len}",
            stat.size
        )));
    }
    Ok(())
}

/// The client's side, on a fresh Unix socket: connects to `addr`, sends the hello asking
/// for rings of `ring_bytes`, checks and maps what the server sends, acknowledges.
pub(crate) fn connect(
    sock: BorrowedFd<'_>,
    addr: &RawSockAddr,
    ring_bytes: usize,
    timeout: Duration,
) -> io::Result<LinkParts> {
    let clock = Clock::new(timeout);
    clock.arm(sock)?;
    match sys::connect(sock, addr) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(clock.timed_out()),
        Err(e) => return Err(e),
    }
    let own_doorbell = sys::eventfd_owned()?;
    let hello = ClientHello {
        version: VERSION,
        ring_bytes: ring_bytes as u64,
    };
    send_message(sock, &hello.encode(), &[own_doorbell.as_raw_fd()], &clock)?;
    let reply = recv_message(sock, &clock)?;
    let server = ServerHello::decode(&reply.bytes)
        .ok_or_else(|| invalid("the server's hello does not start with the link's magic"))?;
    if server.status != 0 {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!(
                "the server refused: {}",
                Refusal::describe(server.status, server.version)
            ),
        ));
    }
    if server.version != VERSION {
        return Err(invalid(format!(
            "the server speaks version {}, we speak {VERSION}",
            server.version
        )));
    }
    if !layout::ring_bytes_ok(server.ring_bytes) || server.ring_bytes > ring_bytes as u64 {
        return Err(invalid(format!(
            "the server grants rings of {} bytes; we asked for {ring_bytes} (at most)",
            server.ring_bytes
        )));
    }
    let granted = server.ring_bytes as usize;
    let len = layout::region_bytes(granted);
    if server.region_bytes != len as u64 {
        return Err(invalid(format!(
            "the server's hello says its region is {} bytes; rings of {granted} make {len}",
            server.region_bytes
        )));
    }
    let mut fds = reply.fds;
    if reply.truncated || fds.len() != 2 {
        return Err(invalid(format!(
            "the server's hello carried {}{} descriptor(s), expected two (region, eventfd)",
            fds.len(),
            if reply.truncated { " or more" } else { "" }
        )));
    }
    let peer_doorbell = fds.pop().expect("checked: two");
    let memfd = fds.pop().expect("checked: two");
    check_region_fd(memfd.as_fd(), len)?;
    if !sys::is_eventfd(peer_doorbell.as_fd()) {
        return Err(invalid(
            "the server's doorbell descriptor is not an eventfd",
        ));
    }
    let map = Mapping::map(memfd.as_fd(), len)?;
    drop(memfd);
    let mut header = [0u8; HEADER_FIELDS];
    map.read(0, &mut header);
    layout::check_header(&header, granted).map_err(invalid)?;
    send_message(sock, &layout::ack(), &[], &clock)?;
    sys::set_socket_timeouts(sock, None)?;
    Ok(LinkParts {
        map,
        role: Role::Client,
        ring_bytes: granted,
        own_doorbell,
        peer_doorbell,
    })
}
