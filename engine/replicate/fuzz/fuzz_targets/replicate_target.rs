//! Hands sequences of replication requests to a `replicate::Target` writing under a
//! scratch root, as a hostile source would send them: Begin, Manifest batches, Blocks,
//! Commits, Delete and Finish built with the proto encoders from the input (so most are
//! well-formed and get past the decoders into the file-system work), plus raw bodies. The
//! target must never panic, every answer must decode as the answer to its request, and
//! after each input a canary directory beside the root must be exactly as it was: no file
//! changed, added or removed (contents, mode, mtime, inode), nothing new next to the root.
//!
//! The root is recreated for each input (on `/dev/shm` when there is one) with two
//! symlinks planted in it that point at the canary, one relative and one absolute, so
//! paths, destinations and symlink targets from the input can try to go through them.
//!
//! # Input
//!
//! The first byte sets the target up (bit 0: buffered writes instead of direct, bit 1:
//! tight limits on entries and open files). Then operations, one selector byte each
//! followed by its operands (missing bytes read as zero): see [`Op`]. Paths, symlink
//! targets and destinations are picked from small dictionaries of names that matter
//! (`..`, `.hawser-partial`, the planted links, overlong names, NUL), sizes and extents
//! from tables of edge values; Blocks carry the pieces the target expects, with correct
//! digests unless the input asks for damage, and Commits the whole-file digest of the
//! blocks sent, so files really get committed.

#![no_main]

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hawser_replicate::proto::{
    Begin, BeginAck, BlockAck, BlockHeader, CommitAck, CommitFile, CompressPolicy, DeleteList,
    DeleteRequest, EntryKind, Extent, Finish, FinishReport, JobOptions, ManifestAnswer,
    ManifestBatch, ManifestEntry, MessageKind, PROTOCOL_VERSION, block_digest,
};
use hawser_replicate::{Target, TargetLimits, WriteMode};
use hawser_wire::xxh3::Hasher128;
use libfuzzer_sys::fuzz_target;

/// Operations, by selector byte modulo their count.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// `options, compress, block size, destination, version`.
    Begin,
    /// `count`, then per entry `file id, path (3 bytes), kind, flags, mode, mtime, size,
    /// symlink target, extents`.
    Manifest,
    /// `file, piece, damage, fill`: one piece of a file named in a manifest.
    Block,
    /// `file, damage, mode, mtime`: commits a file with the digest of the blocks sent.
    Commit,
    /// `max listed`.
    Delete,
    /// Finish.
    Finish,
    /// `length, bytes`: a raw request body.
    Raw,
    /// A fresh `Target` on the same root (a server restarted mid-job).
    Restart,
}

const OPS: [Op; 8] = [
    Op::Begin,
    Op::Manifest,
    Op::Block,
    Op::Commit,
    Op::Delete,
    Op::Finish,
    Op::Raw,
    Op::Restart,
];

/// Path components that matter; the last ones are filled in at run time.
const NAMES: [&[u8]; 14] = [
    b"a",
    b"b",
    b"sub",
    b"..",
    b".",
    b"",
    b".hawser-partial",
    b"rel-link",
    b"abs-link",
    b"a.part",
    b"nul\0name",
    b"file",
    b"x",
    b"dir",
];
const LONG_NAME: usize = 255;

const SIZES: [u64; 12] = [
    0,
    1,
    100,
    4095,
    4096,
    5000,
    12_288,
    20_000,
    1 << 20,
    // Refused at every block size offered: a legitimate file of a million pieces costs
    // the target tens of MB and the fuzzer half a second per input.
    1 << 45,
    u64::MAX,
    3,
];
const OFFSETS: [u64; 8] = [0, 1, 4096, 5000, 8192, 1 << 20, u64::MAX - 1, 100];
const MODES: [u32; 8] = [0o644, 0o755, 0o600, 0o000, 0o7777, 0o4755, u32::MAX, 0o1777];
const MTIMES: [i64; 6] = [
    0,
    1_700_000_000_123_456_789,
    -1,
    i64::MIN,
    i64::MAX,
    1_000_000_000,
];
/// Pieces the harness tracks per file; a manifest may claim far more.
const MAX_PIECES: usize = 16;

/// Reads operands; past the end everything is zero.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}

/// The scratch directories, made once per process.
struct Dirs {
    base: PathBuf,
    root: PathBuf,
    canary: PathBuf,
    /// The canary as it must stay: (relative path, metadata summary, contents).
    snapshot: Vec<(PathBuf, Summary)>,
    /// Entries of `base`: the root and the canary, nothing else.
    base_entries: Vec<String>,
    /// The symlink targets and destinations that point at the canary by absolute path.
    abs_canary: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
struct Summary {
    ino: u64,
    mode: u32,
    mtime: (i64, i64),
    size: u64,
    contents: Option<Vec<u8>>,
    entries: Option<Vec<String>>,
}

fn summarize(path: &Path) -> Summary {
    let meta = fs::symlink_metadata(path).expect("canary entry");
    let contents = meta.is_file().then(|| fs::read(path).expect("read canary"));
    let entries = meta.is_dir().then(|| list(path));
    Summary {
        ino: meta.ino(),
        mode: meta.mode(),
        mtime: (meta.mtime(), meta.mtime_nsec()),
        size: meta.size(),
        contents,
        entries,
    }
}

fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Scratch directories are named this and the fuzzing process id.
const PREFIX: &str = "hawser-fuzz-target-";

fn dirs() -> &'static Dirs {
    static DIRS: OnceLock<Dirs> = OnceLock::new();
    DIRS.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let parent = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        // libFuzzer exits without unwinding: sweep what earlier processes left.
        for entry in fs::read_dir(&parent).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(PREFIX)
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        let base = parent.join(format!("{PREFIX}{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let (root, canary) = (base.join("root"), base.join("canary"));
        fs::create_dir_all(canary.join("dir")).expect("canary dir");
        fs::create_dir_all(&root).expect("root");
        fs::write(canary.join("file"), b"canary\n").expect("canary file");
        fs::write(canary.join("dir/inner"), b"inner\n").expect("canary file");
        fs::set_permissions(canary.join("file"), fs::Permissions::from_mode(0o640)).expect("chmod");
        let mut snapshot = Vec::new();
        for rel in ["", "file", "dir", "dir/inner"] {
            let path = canary.join(rel);
            snapshot.push((PathBuf::from(rel), summarize(&path)));
        }
        let abs_canary = canary.as_os_str().as_encoded_bytes().to_vec();
        Dirs {
            base_entries: list(&base),
            base,
            root,
            canary,
            snapshot,
            abs_canary,
        }
    })
}

impl Dirs {
    /// A fresh root with the links planted.
    fn reset_root(&self) {
        if let Err(e) = fs::remove_dir_all(&self.root)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            panic!("cannot wipe the root: {e}");
        }
        fs::create_dir(&self.root).expect("root");
        std::os::unix::fs::symlink("../canary", self.root.join("rel-link")).expect("link");
        std::os::unix::fs::symlink(&self.canary, self.root.join("abs-link")).expect("link");
    }

    fn check_canary(&self) {
        for (rel, before) in &self.snapshot {
            let now = summarize(&self.canary.join(rel));
            assert_eq!(&now, before, "canary {} changed", rel.display());
        }
        assert_eq!(list(&self.base), self.base_entries, "beside the root");
    }
}

/// A file the manifests named, as the harness knows it.
struct FileInfo {
    file_id: u32,
    size: u64,
    /// The first pieces (offset, length), as the target cuts them.
    pieces: Vec<(u64, u32)>,
    /// The digest of the last data sent for each piece.
    sent: HashMap<u64, u64>,
}

/// The pieces of `extents` at `block` boundaries, the first `MAX_PIECES` of them.
fn pieces(extents: &[Extent], block: u32) -> Vec<(u64, u32)> {
    let block = u64::from(block.max(1));
    let mut out = Vec::new();
    for extent in extents {
        let (mut offset, end) = (extent.offset, extent.end());
        while offset < end && out.len() < MAX_PIECES {
            let piece_end = (offset / block + 1).saturating_mul(block).min(end);
            out.push((offset, (piece_end - offset) as u32));
            offset = piece_end;
        }
    }
    out
}

struct Harness<'d> {
    dirs: &'d Dirs,
    target: Target,
    write_mode: WriteMode,
    limits: TargetLimits,
    block_size: u32,
    files: Vec<FileInfo>,
    body: Vec<u8>,
    data: Vec<u8>,
}

impl<'d> Harness<'d> {
    fn new(dirs: &'d Dirs, setup: u8) -> Self {
        let write_mode = if setup & 1 == 0 {
            WriteMode::Direct
        } else {
            WriteMode::Buffered
        };
        let limits = if setup & 2 == 0 {
            TargetLimits::default()
        } else {
            TargetLimits {
                max_entries: 6,
                max_open_files: 2,
                max_job_pieces: 64,
            }
        };
        Harness {
            dirs,
            target: Self::target(dirs, write_mode, limits),
            write_mode,
            limits,
            block_size: 4096,
            files: Vec::new(),
            body: Vec::new(),
            data: Vec::new(),
        }
    }

    fn target(dirs: &Dirs, write_mode: WriteMode, limits: TargetLimits) -> Target {
        Target::new(&dirs.root)
            .expect("open the root")
            .with_write_mode(write_mode)
            .with_limits(limits)
    }

    /// Path `spec` (3 bytes): up to 3 components from the dictionary, sometimes with a
    /// leading, trailing or doubled slash.
    fn path(&self, spec: [u8; 3], out: &mut Vec<u8>) {
        let count = spec[0] % 4;
        let picks = [spec[0] >> 2, spec[1], spec[1] >> 4, spec[2]];
        if spec[2] & 0x40 != 0 {
            out.push(b'/');
        }
        for (i, &pick) in picks.iter().take(usize::from(count)).enumerate() {
            if i > 0 {
                out.push(b'/');
                if spec[2] & 0x20 != 0 && i == 1 {
                    out.push(b'/');
                }
            }
            match usize::from(pick & 0x0f) {
                n if n < NAMES.len() => out.extend_from_slice(NAMES[n]),
                14 => out.resize(out.len() + LONG_NAME, b'n'),
                _ => out.resize(out.len() + LONG_NAME + 1, b'n'),
            }
        }
        if spec[2] & 0x80 != 0 {
            out.push(b'/');
        }
    }

    /// A symlink target or destination pointing somewhere interesting.
    fn pointer(&self, pick: u8, out: &mut Vec<u8>) {
        match pick % 10 {
            0 => out.extend_from_slice(b"../canary"),
            1 => out.extend_from_slice(b"../../canary"),
            2 => out.extend_from_slice(&self.dirs.abs_canary),
            3 => out.extend_from_slice(b"."),
            4 => out.extend_from_slice(b"rel-link/file"),
            5 => out.extend_from_slice(b"abs-link"),
            6 => out.extend_from_slice(b"a"),
            7 => out.extend_from_slice(b"sub/../.."),
            8 => out.extend_from_slice(b"/"),
            _ => {}
        }
    }

    fn send(&mut self, expect: Option<MessageKind>) {
        let Ok(answer) = self.target.handle(&self.body) else {
            return;
        };
        // Whatever the target answers is the answer to the request it got.
        let ok = match expect {
            Some(MessageKind::Begin) => BeginAck::decode(&answer).is_ok(),
            Some(MessageKind::Manifest) => ManifestAnswer::decode(&answer).is_ok(),
            Some(MessageKind::Block) => BlockAck::decode(&answer).is_ok(),
            Some(MessageKind::Commit) => CommitAck::decode(&answer).is_ok(),
            Some(MessageKind::Delete) => DeleteList::decode(&answer).is_ok(),
            Some(MessageKind::Finish) => FinishReport::decode(&answer).is_ok(),
            _ => MessageKind::of(&answer).is_ok_and(|k| !k.is_request()),
        };
        assert!(ok, "answer {answer:02x?} to {expect:?}");
    }

    fn step(&mut self, op: Op, input: &mut Input<'_>) {
        self.body.clear();
        match op {
            Op::Begin => {
                let (flags, compress, block, dest, version) =
                    (input.u8(), input.u8(), input.u8(), input.u8(), input.u8());
                let block_size = match block % 4 {
                    0 => 4096,
                    1 => 8192,
                    2 => 5000,
                    _ => 1 << 20,
                };
                let mut dest_bytes = Vec::new();
                match dest % 8 {
                    0 => dest_bytes.extend_from_slice(b"."),
                    1 => dest_bytes.extend_from_slice(b"replica"),
                    2 => dest_bytes.extend_from_slice(b"replica/deep"),
                    3 => {}
                    4 => dest_bytes.extend_from_slice(b"rel-link"),
                    5 => self.path([dest, dest.rotate_left(3), dest], &mut dest_bytes),
                    _ => self.pointer(dest >> 3, &mut dest_bytes),
                }
                let begin = Begin {
                    version: if version < 0xf0 {
                        PROTOCOL_VERSION
                    } else {
                        u16::from(version & 3)
                    },
                    job_id: u128::from(version),
                    options: JobOptions {
                        verify: flags & 1 != 0,
                        fsync: flags & 2 != 0,
                        delete: flags & 4 != 0,
                        checksum: flags & 8 != 0,
                        resume: flags & 16 != 0,
                        dry_run: flags & 32 != 0,
                        dest_may_be_file: flags & 64 != 0,
                        compress: match compress % 3 {
                            0 => CompressPolicy::Off,
                            1 => CompressPolicy::Lz4,
                            _ => CompressPolicy::Auto,
                        },
                        block_size,
                    },
                    dest: &dest_bytes,
                };
                if begin.encode(&mut self.body).is_ok() {
                    self.block_size = block_size;
                    self.files.clear();
                    self.send(Some(MessageKind::Begin));
                }
            }
            Op::Manifest => self.manifest(input),
            Op::Block => {
                let (file, piece, damage, fill) = (input.u8(), input.u8(), input.u8(), input.u8());
                let Some(info) = self.pick_file(file) else {
                    return;
                };
                let (offset, len) = match info.pieces.len() {
                    0 => (u64::from(piece), u32::from(damage)),
                    n => info.pieces[usize::from(piece) % n],
                };
                let file_id = info.file_id;
                let len = match damage % 8 {
                    6 => len.saturating_add(1),
                    7 => len.saturating_sub(1),
                    _ => len,
                };
                // Pieces are at most a block (a few KiB here, 1 MiB at most).
                self.data.clear();
                self.data.resize((len as usize).min(1 << 20), fill);
                let digest = block_digest(&self.data) ^ u64::from(damage % 8 == 5);
                BlockHeader {
                    file_id,
                    offset,
                    digest,
                }
                .encode(&mut self.body);
                self.body.extend_from_slice(&self.data);
                if let Some(info) = self.files.iter_mut().find(|f| f.file_id == file_id) {
                    info.sent.insert(offset, digest);
                }
                self.send(Some(MessageKind::Block));
            }
            Op::Commit => {
                let (file, damage, mode, mtime) = (input.u8(), input.u8(), input.u8(), input.u8());
                let Some(info) = self.pick_file(file) else {
                    return;
                };
                // The whole-file digest over the pieces in offset order (docs/PROTOCOL.md,
                // Commit), from what was sent.
                let mut hasher = Hasher128::new();
                hasher.update(&info.size.to_be_bytes());
                for (offset, len) in &info.pieces {
                    let digest = info.sent.get(offset).copied().unwrap_or(0);
                    hasher.update(&offset.to_be_bytes());
                    hasher.update(&len.to_be_bytes());
                    hasher.update(&digest.to_be_bytes());
                }
                let commit = CommitFile {
                    file_id: info.file_id,
                    size: if damage & 1 == 0 {
                        info.size
                    } else {
                        info.size ^ 1
                    },
                    content_hash: hasher.digest128() ^ u128::from(damage & 2),
                    mode: MODES[usize::from(mode) % MODES.len()],
                    mtime_ns: MTIMES[usize::from(mtime) % MTIMES.len()],
                };
                commit.encode(&mut self.body);
                self.send(Some(MessageKind::Commit));
            }
            Op::Delete => {
                let max_listed = u32::from(input.u8());
                DeleteRequest { max_listed }.encode(&mut self.body);
                self.send(Some(MessageKind::Delete));
            }
            Op::Finish => {
                Finish.encode(&mut self.body);
                self.send(Some(MessageKind::Finish));
            }
            Op::Raw => {
                let len = input.u8();
                self.body.extend_from_slice(input.bytes(usize::from(len)));
                self.send(None);
            }
            Op::Restart => {
                self.target = Self::target(self.dirs, self.write_mode, self.limits);
            }
        }
    }

    fn pick_file(&self, pick: u8) -> Option<&FileInfo> {
        match self.files.len() {
            0 => None,
            n => Some(&self.files[usize::from(pick) % n]),
        }
    }

    fn manifest(&mut self, input: &mut Input<'_>) {
        let count = usize::from(input.u8() % 5);
        // Paths and targets are built first, then borrowed by the entries.
        let mut specs = Vec::with_capacity(count);
        let mut storage: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = Vec::with_capacity(count);
        for _ in 0..count {
            let spec: [u8; 11] = std::array::from_fn(|_| input.u8());
            let mut path = Vec::new();
            self.path([spec[1], spec[2], spec[3]], &mut path);
            let mut target = Vec::new();
            self.pointer(spec[9], &mut target);
            let size = SIZES[usize::from(spec[8]) % SIZES.len()];
            let inline = if spec[5] & 2 != 0 && size <= 20_000 {
                // Usually the whole content; sometimes one byte short.
                vec![spec[7]; (size as usize).saturating_sub(usize::from(spec[5] >> 7))]
            } else {
                Vec::new()
            };
            storage.push((path, target, inline));
            specs.push(spec);
        }
        let mut entries = Vec::with_capacity(count);
        for (spec, (path, target, inline)) in specs.iter().zip(&storage) {
            let kind = match spec[4] % 4 {
                0 | 3 => EntryKind::File,
                1 => EntryKind::Dir,
                _ => EntryKind::Symlink,
            };
            let size = SIZES[usize::from(spec[8]) % SIZES.len()];
            let extents = (spec[5] & 4 != 0).then(|| {
                (0..spec[10] % 4)
                    .map(|i| Extent {
                        offset: OFFSETS[usize::from(spec[10] >> 2).wrapping_add(i.into()) % 8],
                        len: SIZES[usize::from(spec[10] >> 5).wrapping_add(i.into()) % 8],
                    })
                    .collect::<Vec<_>>()
            });
            let file_id = u32::from(spec[0] % 8);
            entries.push(ManifestEntry {
                file_id,
                path,
                kind,
                mode: MODES[usize::from(spec[6]) % MODES.len()],
                mtime_ns: MTIMES[usize::from(spec[6] >> 3) % MTIMES.len()],
                size: if kind == EntryKind::File { size } else { 0 },
                symlink_target: if kind == EntryKind::Symlink {
                    target
                } else {
                    b""
                },
                extents,
                content_hash: (spec[5] & 1 != 0).then_some(u128::from(spec[7])),
                inline: (spec[5] & 2 != 0).then_some(&inline[..]),
            });
        }
        let batch = ManifestBatch { entries };
        if batch.encode(&mut self.body).is_err() {
            return;
        }
        for entry in &batch.entries {
            if entry.kind != EntryKind::File {
                continue;
            }
            let extents = entry.data_extents();
            let info = FileInfo {
                file_id: entry.file_id,
                size: entry.size,
                pieces: pieces(&extents, self.block_size),
                sent: HashMap::new(),
            };
            match self.files.iter_mut().find(|f| f.file_id == entry.file_id) {
                Some(old) => *old = info,
                None => self.files.push(info),
            }
        }
        self.send(Some(MessageKind::Manifest));
    }
}

fuzz_target!(|data: &[u8]| {
    let dirs = dirs();
    dirs.reset_root();
    let mut input = Input(data);
    let setup = input.u8();
    let mut harness = Harness::new(dirs, setup);
    while !input.0.is_empty() {
        let op = OPS[usize::from(input.u8()) % OPS.len()];
        harness.step(op, &mut input);
    }
    drop(harness);
    dirs.check_canary();
});
