//! Every `unsafe` of hawser-perf lives here, in small safe wrappers: the TUN ioctl,
//! `setns`, signal handling, waiting for a child without reaping it, and the io_uring
//! packet I/O whose buffers the kernel writes.
//! (House rule: unsafe code lives in a few small modules; this is perf's one.)

use std::ffi::c_int;
use std::fs::{File, OpenOptions};
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use io_uring::{IoUring, opcode, types};

/// Layout of `struct ifreq` as `TUNSETIFF` reads it: the name, the flags, and padding up
/// to the size of the kernel's union (40 bytes on 64-bit Linux).
#[repr(C)]
struct TunIfreq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    padding: [u8; 22],
}

/// Size of the `struct virtio_net_hdr` that precedes every packet on a TUN opened with
/// offloads (the kernel's default vnet header size).
pub const VNET_HEADER_BYTES: usize = 10;

/// Opens `/dev/net/tun` and attaches a TUN interface called `name` (created if missing)
/// in the network namespace of the calling thread, without packet-info header and with
/// a non-blocking fd (io_uring then polls it instead of parking a worker thread).
///
/// With `offload`, packets carry a [`VNET_HEADER_BYTES`] virtio-net header and the device
/// accepts checksum offload and TCP segmentation offload: the stack hands over
/// unchecksummed segments of up to 64 KiB whatever the MTU, and packets written with the
/// same header are taken as already verified — as between two VMs on one host.
pub fn open_tun(name: &str, offload: bool) -> io::Result<OwnedFd> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?}"),
        ));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    let mut request = TunIfreq {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI | if offload { libc::IFF_VNET_HDR } else { 0 })
            as libc::c_short,
        padding: [0; 22],
    };
    for (dst, src) in request.name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: `file` is an open /dev/net/tun descriptor and `request` is a live,
    // properly laid out `struct ifreq` (NUL-terminated name, flags) that the kernel reads
    // and writes only during the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut request) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    if offload {
        let features = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN;
        // SAFETY: TUNSETOFFLOAD takes its flags by value; no memory is passed.
        let rc = unsafe {
            libc::ioctl(
                file.as_raw_fd(),
                libc::TUNSETOFFLOAD,
                libc::c_ulong::from(features),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(file.into())
}

/// Moves the calling thread (only it) into the named network namespace
/// (`/run/netns/<name>`, as created by `ip netns add`).
pub fn enter_netns(name: &str) -> io::Result<()> {
    let namespace = File::open(format!("/run/netns/{name}"))?;
    // SAFETY: setns takes a valid namespace fd (kept open across the call) and a flag;
    // it changes only the calling thread's network namespace and touches no memory of ours.
    let rc = unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Puts the calling thread under `SCHED_FIFO` at `priority` (1..=99), so that compilers
/// and other busy processes on a small machine cannot delay packets by preempting it.
/// The kernel's RT throttling still reserves 5% of each CPU for everything else.
pub fn set_realtime_priority(priority: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a valid sched_param that outlives the call; pid 0 is this thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Allocates the first `len` bytes of `file` without changing its size (`fallocate` with
/// `FALLOC_FL_KEEP_SIZE`), as `fio` lays out a file before it measures writes into it.
pub fn preallocate(file: &File, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::other("length too large"))?;
    // SAFETY: fallocate takes an open descriptor (borrowed for the call) and plain values.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, len) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_signal: c_int) {
    // Only an atomic store: async-signal-safe.
    STOP_REQUESTED.store(true, Ordering::SeqCst);
}

/// Raises the soft limit of open files to the hard limit (a probe opens thousands of
/// sockets); failures leave the limit as it was.
pub fn raise_nofile_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid rlimit read above.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
}

/// Installs SIGINT/SIGTERM handlers that set a flag (returned) instead of killing the
/// process, so the caller can tear down. Installed without `SA_RESTART`: a blocked
/// `io_uring_enter` returns `EINTR` and the loop sees the flag at once.
pub fn install_stop_handler() -> io::Result<&'static AtomicBool> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: an all-zero `sigaction` is a valid value (empty mask, no flags).
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = request_stop as extern "C" fn(c_int) as libc::sighandler_t;
        // SAFETY: `action` is fully initialised, the handler only does an atomic store
        // (async-signal-safe), and a null old-action pointer is allowed.
        let rc = unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(&STOP_REQUESTED)
}

/// Sends SIGTERM to process `pid` (used by tests and scripts to stop linkem cleanly).
pub fn terminate(pid: u32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: kill(2) only sends a signal; no memory is passed.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends SIGKILL to process `pid` (a client past its time limit, not yet reaped by us).
pub fn kill_process(pid: u32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|&p| p > 1)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: kill(2) only sends a signal; no memory is passed. `pid > 1` rules out
    // init and the special values 0 and -1.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Blocks until child `pid` has exited, leaving it unreaped (`waitid` with `WNOWAIT`):
/// its `/proc/PID/stat` still holds its final CPU times until the caller reaps it.
pub fn wait_for_exit_without_reaping(pid: u32) -> io::Result<()> {
    let id = libc::id_t::from(pid);
    loop {
        // SAFETY: an all-zero `siginfo_t` is a valid value for the kernel to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable siginfo_t for the duration of the call;
        // WNOWAIT leaves the child waitable, so the caller's later wait still reaps it.
        let rc = unsafe { libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if rc == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Clock ticks per second, the unit of the CPU times in `/proc/PID/stat`.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a system constant; no memory is passed.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // 100 is USER_HZ on every Linux architecture in use, should sysconf fail.
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// Sends SIGKILL to every process of process group `group` (a server the harness started
/// as the leader of its own group, with the helpers it forked).
pub fn kill_process_group(group: u32) -> io::Result<()> {
    let group = libc::pid_t::try_from(group)
        .ok()
        .filter(|&g| g > 1)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "process group out of range"))?;
    // SAFETY: kill(2) only sends a signal; no memory is passed. A negative pid addresses
    // the group, and `group > 1` rules out -1 (every process) and 0 (our own group).
    let rc = unsafe { libc::kill(-group, libc::SIGKILL) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Which operation a completion reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// A read into a slot.
    Read,
    /// A write from a slot.
    Write,
}

/// One finished operation: its slot is the caller's again.
#[derive(Debug, Clone, Copy)]
pub struct Completion {
    /// Read or write.
    pub kind: OpKind,
    /// The caller's tag given when queueing (e.g. the direction).
    pub tag: u8,
    /// The slot the operation used.
    pub slot: u32,
    /// Bytes transferred, or a negated errno.
    pub result: i32,
}

const CANCEL_USER_DATA: u64 = u64::MAX;

fn encode(kind: OpKind, tag: u8, slot: u32) -> u64 {
    let kind_bit = match kind {
        OpKind::Read => 0,
        OpKind::Write => 1,
    };
    (kind_bit << 40) | (u64::from(tag) << 32) | u64::from(slot)
}

fn decode(user_data: u64) -> (OpKind, u8, u32) {
    let kind = if (user_data >> 40) & 1 == 0 {
        OpKind::Read
    } else {
        OpKind::Write
    };
    (kind, (user_data >> 32) as u8, user_data as u32)
}

/// An io_uring plus the preallocated packet arena whose slots it reads into and writes
/// from. Slots are indices; while an operation on a slot is in flight the slot cannot be
/// borrowed (checked), so the kernel and safe code never share a buffer.
pub struct PacketIo {
    ring: IoUring,
    /// Never resized after construction, so slot pointers stay valid. Leaked rather than
    /// freed if the kernel might still write into it (see `Drop`).
    arena: ManuallyDrop<Vec<u8>>,
    slot_offsets: Vec<usize>,
    slot_capacities: Vec<u32>,
    in_flight: Vec<bool>,
    outstanding: usize,
}

impl std::fmt::Debug for PacketIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketIo")
            .field("arena_bytes", &self.arena.len())
            .field("slots", &self.slot_offsets.len())
            .field("outstanding", &self.outstanding)
            .finish()
    }
}

impl PacketIo {
    /// Allocates (and pre-faults) an arena holding `count` slots of `capacity` bytes for
    /// each `(capacity, count)` class, in order: slot numbers run through the classes.
    pub fn new(ring_entries: u32, classes: &[(u32, usize)]) -> io::Result<Self> {
        let total: usize = classes.iter().map(|&(cap, n)| cap as usize * n).sum();
        let mut arena = vec![0u8; total];
        // The zeroed allocation is lazily mapped: touch every page now so page faults
        // happen here, not on the data path.
        for page in arena.chunks_mut(4096) {
            page[0] = 1;
        }
        let mut slot_offsets = Vec::new();
        let mut slot_capacities = Vec::new();
        let mut offset = 0;
        for &(capacity, count) in classes {
            for _ in 0..count {
                slot_offsets.push(offset);
                slot_capacities.push(capacity);
                offset += capacity as usize;
            }
        }
        let slots = slot_offsets.len();
        Ok(Self {
            ring: IoUring::new(ring_entries)?,
            arena: ManuallyDrop::new(arena),
            slot_offsets,
            slot_capacities,
            in_flight: vec![false; slots],
            outstanding: 0,
        })
    }

    /// Operations submitted and not yet completed.
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// Capacity of `slot` in bytes.
    pub fn slot_capacity(&self, slot: u32) -> u32 {
        self.slot_capacities[slot as usize]
    }

    fn range(&self, slot: u32, len: usize) -> std::ops::Range<usize> {
        let index = slot as usize;
        assert!(!self.in_flight[index], "slot {slot} is owned by the kernel");
        assert!(len <= self.slot_capacities[index] as usize);
        self.slot_offsets[index]..self.slot_offsets[index] + len
    }

    /// The first `len` bytes of a slot that is not in flight.
    pub fn packet_mut(&mut self, slot: u32, len: usize) -> &mut [u8] {
        let range = self.range(slot, len);
        &mut self.arena[range]
    }

    /// Copies `len` bytes from slot `from` to slot `to` (neither in flight).
    pub fn copy_packet(&mut self, from: u32, to: u32, len: usize) {
        let source = self.range(from, len);
        let destination = self.range(to, len);
        self.arena.copy_within(source, destination.start);
    }

    fn push(&mut self, entry: io_uring::squeue::Entry, slot: u32) -> bool {
        // SAFETY: the entry points at `arena[slot]`, whose memory stays valid (the arena is
        // never resized, and is leaked rather than freed while operations are pending); the
        // slot is marked in flight below so no safe borrow can alias it until completion.
        let pushed = unsafe { self.ring.submission().push(&entry).is_ok() };
        if pushed {
            self.in_flight[slot as usize] = true;
            self.outstanding += 1;
        }
        pushed
    }

    /// Queues a read of up to the slot's capacity from `fd`. False if the submission
    /// queue is full (submit, then retry).
    pub fn queue_read(&mut self, fd: RawFd, slot: u32, tag: u8) -> bool {
        let capacity = self.slot_capacity(slot);
        let range = self.range(slot, capacity as usize);
        let pointer = self.arena[range].as_mut_ptr();
        let entry = opcode::Read::new(types::Fd(fd), pointer, capacity)
            .build()
            .user_data(encode(OpKind::Read, tag, slot));
        self.push(entry, slot)
    }

    /// Queues a write of the first `len` bytes of `slot` to `fd`. False if the
    /// submission queue is full.
    pub fn queue_write(&mut self, fd: RawFd, slot: u32, len: u32, tag: u8) -> bool {
        let range = self.range(slot, len as usize);
        let pointer = self.arena[range].as_ptr();
        let entry = opcode::Write::new(types::Fd(fd), pointer, len)
            .build()
            .user_data(encode(OpKind::Write, tag, slot));
        self.push(entry, slot)
    }

    /// Submits queued operations without waiting.
    pub fn submit(&mut self) -> io::Result<()> {
        self.ring.submit().map(|_| ())
    }

    /// Submits queued operations and waits until at least one completes, `timeout`
    /// passes, or a signal arrives (the last two are not errors).
    pub fn submit_and_wait(&mut self, timeout: Duration) -> io::Result<()> {
        let timespec = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&timespec);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Moves finished operations into `out`; their slots are borrowable again.
    pub fn take_completions(&mut self, out: &mut Vec<Completion>) {
        for cqe in self.ring.completion() {
            if cqe.user_data() == CANCEL_USER_DATA {
                continue;
            }
            let (kind, tag, slot) = decode(cqe.user_data());
            self.in_flight[slot as usize] = false;
            self.outstanding -= 1;
            out.push(Completion {
                kind,
                tag,
                slot,
                result: cqe.result(),
            });
        }
    }

    /// Cancels everything in flight and waits (up to `limit`) for the kernel to let go of
    /// the slots. True if nothing is outstanding afterwards.
    pub fn cancel_all(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut scratch = Vec::new();
        let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(CANCEL_USER_DATA);
        // SAFETY: a cancel request references no memory of ours.
        let queued = unsafe { self.ring.submission().push(&cancel).is_ok() };
        if !queued {
            let _ = self.ring.submit();
        }
        while self.outstanding > 0 && Instant::now() < deadline {
            if self.submit_and_wait(Duration::from_millis(10)).is_err() {
                break;
            }
            scratch.clear();
            self.take_completions(&mut scratch);
        }
        self.outstanding == 0
    }
}

impl Drop for PacketIo {
    fn drop(&mut self) {
        if self.cancel_all(Duration::from_secs(1)) {
            // SAFETY: no operation is outstanding, so the kernel holds no pointer into the
            // arena; it is dropped exactly once, here.
            unsafe { ManuallyDrop::drop(&mut self.arena) };
        }
        // Otherwise the arena is leaked on purpose: the kernel may still write into it.
    }
}
