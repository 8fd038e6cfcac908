//! A hostile source: arbitrary sequences of well-formed and malformed requests must get
//! answers or typed errors from the target, never a panic, and nothing may be written
//! outside the target's root.
//!
//! The second property is about the root alone: hostile manifests (paths named twice,
//! a directory, a symlink and a file at one name, symlinks leading out, paths through
//! symlinks) from two jobs on one root running at once, with symlinks to the outside
//! planted in `.hawser-partial` folders between their requests and a racer thread
//! swapping directories for symlinks to the outside meanwhile: after every case a canary
//! tree outside the root is exactly as it was (contents, modes and mtimes of every file
//! and directory in it, the canary's own directory included).

use std::os::unix::fs::PermissionsExt;

use bytes::BytesMut;
use hawser_replicate::Target;
use hawser_replicate::proto::{
    Begin, BlockHeader, CommitFile, CompressPolicy, DeleteRequest, EntryKind, Extent, Finish,
    JobOptions, ManifestBatch, ManifestEntry, PROTOCOL_VERSION, block_digest,
};
use hawser_replicate::testing::{TempDir, random_bytes, set_mtime, snapshot};
use proptest::collection::vec;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Begin {
        dest: Vec<u8>,
        resume: bool,
        delete: bool,
        checksum: bool,
        dry_run: bool,
        block_size: u32,
    },
    Manifest(Vec<Entry>),
    Block {
        file_id: u32,
        offset: u64,
        data: Vec<u8>,
        good_digest: bool,
    },
    Commit {
        file_id: u32,
        size: u64,
        hash: u128,
    },
    Delete,
    Finish,
    Raw(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Entry {
    file_id: u32,
    path: Vec<u8>,
    kind: u8,
    size: u64,
    target: Vec<u8>,
    sparse: Option<Vec<(u64, u64)>>,
    inline: Option<(Vec<u8>, bool)>,
}

fn path() -> impl Strategy<Value = Vec<u8>> {
    let component = prop::sample::select(vec![
        "a",
        "b",
        "..",
        ".",
        "",
        "evil",
        ".hawser-partial",
        "f",
        "/",
    ]);
    vec(component, 1..4).prop_map(|parts| parts.join("/").into_bytes())
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        0u32..8,
        path(),
        0u8..3,
        prop_oneof![0u64..300_000, Just(u64::MAX / 2), Just(1u64 << 40)],
        prop::sample::select(vec!["../../outside", "/etc", "a"]),
        proptest::option::of(vec((0u64..400_000, 1u64..70_000), 0..3)),
        proptest::option::of((vec(any::<u8>(), 0..300), any::<bool>())),
    )
        .prop_map(
            |(file_id, path, kind, size, target, sparse, inline)| Entry {
                file_id,
                path,
                kind,
                size,
                target: target.as_bytes().to_vec(),
                sparse,
                inline,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (prop::sample::select(vec!["", "d", "../x", "evil", "d/e", "/abs"]), any::<[bool; 4]>(), prop::sample::select(vec![4096u32, 65536]))
            .prop_map(|(dest, f, block_size)| Op::Begin {
                dest: dest.as_bytes().to_vec(), resume: f[0], delete: f[1], checksum: f[2], dry_run: f[3], block_size,
            }),
        4 => vec(entry(), 1..5).prop_map(Op::Manifest),
        4 => (0u32..8, prop_oneof![Just(0u64), Just(4096u64), Just(65536), 0u64..400_000], vec(any::<u8>(), 0..5000), any::<bool>())
            .prop_map(|(file_id, offset, data, good_digest)| Op::Block { file_id, offset, data, good_digest }),
        2 => (0u32..8, prop_oneof![0u64..300_000, Just(u64::MAX)], any::<u128>())
            .prop_map(|(file_id, size, hash)| Op::Commit { file_id, size, hash }),
        1 => Just(Op::Delete),
        1 => Just(Op::Finish),
        1 => vec(any::<u8>(), 0..64).prop_map(Op::Raw),
    ]
}

fn encode(op: &Op) -> BytesMut {
    let mut out = BytesMut::new();
    match op {
        Op::Begin {
            dest,
            resume,
            delete,
            checksum,
            dry_run,
            block_size,
        } => {
            let options = JobOptions {
                verify: true,
                fsync: false,
                delete: *delete,
                checksum: *checksum,
                resume: *resume,
                dry_run: *dry_run,
                dest_may_be_file: false,
                compress: CompressPolicy::Off,
                block_size: *block_size,
            };
            Begin {
                version: PROTOCOL_VERSION,
                job_id: 9,
                options,
                dest,
            }
            .encode(&mut out)
            .unwrap();
        }
        Op::Manifest(entries) => {
            let entries: Vec<ManifestEntry<'_>> = entries
                .iter()
                .map(|e| {
                    let kind =
                        [EntryKind::File, EntryKind::Dir, EntryKind::Symlink][e.kind as usize];
                    ManifestEntry {
                        file_id: e.file_id,
                        path: &e.path,
                        kind,
                        mode: 0o644,
                        mtime_ns: 1,
                        size: if kind == EntryKind::File { e.size } else { 0 },
                        symlink_target: if kind == EntryKind::Symlink {
                            &e.target
                        } else {
                            b""
                        },
                        extents: (kind == EntryKind::File)
                            .then(|| {
                                e.sparse.as_ref().map(|s| {
                                    s.iter()
                                        .map(|&(offset, len)| Extent { offset, len })
                                        .collect()
                                })
                            })
                            .flatten(),
                        content_hash: e.inline.as_ref().filter(|_| kind == EntryKind::File).map(
                            |(d, good)| {
                                let hash = hawser_wire::xxh3::hash128(d);
                                if *good { hash } else { hash ^ 1 }
                            },
                        ),
                        inline: e
                            .inline
                            .as_ref()
                            .filter(|_| kind == EntryKind::File)
                            .map(|(d, _)| d.as_slice()),
                    }
                })
                .collect();
            // Inconsistent entries (inline of another size, bad extents) are encoded
            // anyway: the target must refuse them when decoding.
            let _ = ManifestBatch { entries }.encode(&mut out);
        }
        Op::Block {
            file_id,
            offset,
            data,
            good_digest,
        } => {
            let digest = block_digest(data) ^ u64::from(!good_digest);
            BlockHeader {
                file_id: *file_id,
                offset: *offset,
                digest,
            }
            .encode(&mut out);
            out.extend_from_slice(data);
        }
        Op::Commit {
            file_id,
            size,
            hash,
        } => CommitFile {
            file_id: *file_id,
            size: *size,
            content_hash: *hash,
            mode: 0o600,
            mtime_ns: 5,
        }
        .encode(&mut out),
        Op::Delete => DeleteRequest { max_listed: 10 }.encode(&mut out),
        Op::Finish => Finish.encode(&mut out),
        Op::Raw(bytes) => out.extend_from_slice(bytes),
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_target_survives_any_request_sequence_and_stays_in_its_root(ops in vec(op(), 1..25)) {
        let base = TempDir::new("hostile");
        let root = base.path().join("root");
        let outside = base.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("evil")).unwrap();
        std::fs::write(outside.join("keep"), b"keep").unwrap();

        let mut target = Target::new(&root).unwrap();
        let begin = Op::Begin { dest: Vec::new(), resume: false, delete: true, checksum: false, dry_run: false, block_size: 4096 };
        for op in std::iter::once(&begin).chain(&ops) {
            let body = encode(op);
            let _ = target.handle(&body);
        }
        drop(target);

        let names: Vec<_> = std::fs::read_dir(base.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        prop_assert_eq!(names.len(), 2, "{:?}", names);
        let outside_now = snapshot(&outside);
        prop_assert_eq!(outside_now.len(), 1);
        prop_assert_eq!(std::fs::read(outside.join("keep")).unwrap(), b"keep");
    }
}

/// A name of the small alphabet hostile paths are made of: `evil` is a symlink to the
/// outside planted under the root before every case.
const NAMES: [&str; 4] = ["a", "b", "evil", "c"];
const BLOCK: u32 = 4096;

#[derive(Debug, Clone)]
enum Kind {
    /// A file of `len` bytes (seeded), inline or sent in blocks.
    File {
        len: usize,
        inline: bool,
    },
    Dir,
    /// A symlink to one of [`LINK_TARGETS`] (0 and 3 are made absolute at run time).
    Symlink(usize),
}

const LINK_TARGETS: [&str; 4] = ["<outside>", "../../outside", "a", "<outside>/file"];

#[derive(Debug, Clone)]
struct Named {
    file_id: u32,
    path: String,
    kind: Kind,
}

/// Something planted under the root, through descriptors (never following a link, so
/// the planting itself never touches the outside).
#[derive(Debug, Clone)]
enum Plant {
    /// `<dir>/.hawser-partial/<name>.<suffix>` → a file or directory outside.
    PartialLink {
        dir: String,
        name: String,
        suffix: &'static str,
        to_dir: bool,
    },
    /// `<dir>/.hawser-partial` itself → the outside directory (a real one moved away).
    PartialFolder { dir: String },
    /// The directory `<path>` moved away (inside the root) and a symlink to the outside
    /// put in its place.
    SwapDir { path: String },
}

#[derive(Debug, Clone)]
enum Step {
    Manifest(Vec<Named>),
    /// Every block of the file named last with this id, then its commit.
    Data(u32),
    Plant(Plant),
    Delete,
}

#[derive(Debug, Clone)]
struct Job {
    dest: &'static str,
    options: [bool; 5],
    steps: Vec<Step>,
}

fn hostile_path() -> impl Strategy<Value = String> {
    vec(prop::sample::select(NAMES.to_vec()), 1..4).prop_map(|parts| parts.join("/"))
}

fn dir_path() -> impl Strategy<Value = String> {
    vec(prop::sample::select(NAMES.to_vec()), 0..3).prop_map(|parts| parts.join("/"))
}

fn named() -> impl Strategy<Value = Named> {
    let kind = prop_oneof![
        3 => (prop::sample::select(vec![0usize, 10, 5000, 9000]), any::<bool>())
            .prop_map(|(len, inline)| Kind::File { len, inline }),
        2 => Just(Kind::Dir),
        2 => (0..LINK_TARGETS.len()).prop_map(Kind::Symlink),
    ];
    (0u32..6, hostile_path(), kind).prop_map(|(file_id, path, kind)| Named {
        file_id,
        path,
        kind,
    })
}

fn plant() -> impl Strategy<Value = Plant> {
    prop_oneof![
        3 => (dir_path(), prop::sample::select(NAMES.to_vec()), prop::sample::select(vec!["part", "journal", "link"]), any::<bool>())
            .prop_map(|(dir, name, suffix, to_dir)| Plant::PartialLink { dir, name: name.into(), suffix, to_dir }),
        1 => dir_path().prop_map(|dir| Plant::PartialFolder { dir }),
        2 => hostile_path().prop_map(|path| Plant::SwapDir { path }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => vec(named(), 1..6).prop_map(Step::Manifest),
        4 => (0u32..6).prop_map(Step::Data),
        2 => plant().prop_map(Step::Plant),
        1 => Just(Step::Delete),
    ]
}

fn job() -> impl Strategy<Value = Job> {
    (
        prop::sample::select(vec!["", "d"]),
        any::<[bool; 5]>(),
        vec(step(), 1..12),
    )
        .prop_map(|(dest, options, steps)| Job {
            dest,
            options,
            steps,
        })
}

/// The scene of one case: a root and, beside it, the canary.
struct Scene {
    base: TempDir,
    root: std::path::PathBuf,
    outside: std::path::PathBuf,
    root_fd: std::os::fd::OwnedFd,
    moved: std::sync::atomic::AtomicU64,
}

impl Scene {
    fn new() -> Self {
        let base = TempDir::new("hostile-root");
        let root = base.path().join("root");
        let outside = base.path().join("outside");
        std::fs::create_dir_all(outside.join("a/deeper")).unwrap();
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::write(outside.join("file"), b"outside file").unwrap();
        std::fs::write(outside.join("a/deeper/file"), random_bytes(1, 9000)).unwrap();
        for (path, mode) in [("a", 0o751), ("a/deeper", 0o700), ("file", 0o640)] {
            std::fs::set_permissions(outside.join(path), std::fs::Permissions::from_mode(mode))
                .unwrap();
        }
        set_mtime(&outside.join("file"), 1_111_111_111, 1);
        std::os::unix::fs::symlink(&outside, root.join("evil")).unwrap();
        std::os::unix::fs::symlink(outside.join("a"), root.join("d/evil")).unwrap();
        let root_fd = rustix::fs::open(
            &root,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        Scene {
            base,
            root,
            outside,
            root_fd,
            moved: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Everything about the outside directory and what is in it.
    fn canary(&self) -> std::collections::BTreeMap<String, hawser_replicate::testing::Seen> {
        let mut all = snapshot(self.base.path());
        all.retain(|path, _| path == "outside" || path.starts_with("outside/"));
        all
    }

    /// The directory `rel` under the root, opened with no symlink on the way.
    fn dir(&self, rel: &str) -> Option<std::os::fd::OwnedFd> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let rel = if rel.is_empty() { "." } else { rel };
        rustix::fs::openat2(
            &self.root_fd,
            rel,
            flags,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        )
        .ok()
    }

    /// Moves `name` of `dir` away, to a fresh name at the root's top.
    fn move_away(&self, dir: &std::os::fd::OwnedFd, name: &str) -> bool {
        let n = self
            .moved
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        rustix::fs::renameat(dir, name, &self.root_fd, format!(".moved-{n}").as_str()).is_ok()
    }

    fn plant(&self, plant: &Plant) {
        use rustix::fs::{AtFlags, FileType, Mode};
        let is_dir = |dir: &std::os::fd::OwnedFd, name: &str| {
            rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
        };
        match plant {
            Plant::PartialLink {
                dir,
                name,
                suffix,
                to_dir,
            } => {
                let Some(dir) = self.dir(dir) else { return };
                let _ = rustix::fs::mkdirat(&dir, ".hawser-partial", Mode::from_raw_mode(0o755));
                let Some(folder) = self.dir_in(&dir, ".hawser-partial") else {
                    return;
                };
                let name = format!("{name}.{suffix}");
                let _ = rustix::fs::unlinkat(&folder, name.as_str(), AtFlags::empty());
                let target = if *to_dir {
                    self.outside.join("a")
                } else {
                    self.outside.join("file")
                };
                let _ = rustix::fs::symlinkat(&target, &folder, name.as_str());
            }
            Plant::PartialFolder { dir } => {
                let Some(dir) = self.dir(dir) else { return };
                if is_dir(&dir, ".hawser-partial") && !self.move_away(&dir, ".hawser-partial") {
                    return;
                }
                let _ = rustix::fs::unlinkat(&dir, ".hawser-partial", AtFlags::empty());
                let _ = rustix::fs::symlinkat(&self.outside, &dir, ".hawser-partial");
            }
            Plant::SwapDir { path } => {
                let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
                let Some(parent) = self.dir(parent) else {
                    return;
                };
                if is_dir(&parent, name) && self.move_away(&parent, name) {
                    let _ = rustix::fs::symlinkat(self.outside.join("a"), &parent, name);
                }
            }
        }
    }

    fn dir_in(&self, dir: &std::os::fd::OwnedFd, name: &str) -> Option<std::os::fd::OwnedFd> {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        rustix::fs::openat(dir, name, flags, Mode::empty()).ok()
    }

    /// Runs `job` against a target of its own on the root.
    fn run(&self, job: &Job) {
        let target = Target::new(&self.root).unwrap();
        let call = |body: BytesMut| {
            let _ = target.handle_concurrent(&body);
        };
        let [verify, resume, delete, checksum, dry_run] = job.options;
        let mut out = BytesMut::new();
        Begin {
            version: PROTOCOL_VERSION,
            job_id: 3,
            options: JobOptions {
                verify,
                fsync: false,
                delete,
                checksum,
                resume,
                // Rarely: a dry run writes nothing, which tests little.
                dry_run: dry_run && verify && resume,
                // A hostile source may ask for a file destination whatever it sends.
                dest_may_be_file: delete && checksum,
                compress: CompressPolicy::Off,
                block_size: BLOCK,
            },
            dest: job.dest.as_bytes(),
        }
        .encode(&mut out)
        .unwrap();
        call(out);
        let mut files: std::collections::HashMap<u32, Vec<u8>> = Default::default();
        for step in &job.steps {
            match step {
                Step::Manifest(entries) => {
                    let data: Vec<Vec<u8>> = entries
                        .iter()
                        .map(|e| match e.kind {
                            Kind::File { len, .. } => {
                                random_bytes(u64::from(e.file_id) + len as u64, len)
                            }
                            _ => Vec::new(),
                        })
                        .collect();
                    let targets: Vec<Vec<u8>> = entries
                        .iter()
                        .map(|e| match e.kind {
                            Kind::Symlink(i) => LINK_TARGETS[i]
                                .replace("<outside>", self.outside.to_str().unwrap())
                                .into_bytes(),
                            _ => Vec::new(),
                        })
                        .collect();
                    let wire: Vec<ManifestEntry<'_>> = entries
                        .iter()
                        .zip(&data)
                        .zip(&targets)
                        .map(|((e, data), target)| {
                            let (kind, inline) = match e.kind {
                                Kind::File { inline, .. } => (EntryKind::File, inline),
                                Kind::Dir => (EntryKind::Dir, false),
                                Kind::Symlink(_) => (EntryKind::Symlink, false),
                            };
                            ManifestEntry {
                                file_id: e.file_id,
                                path: e.path.as_bytes(),
                                kind,
                                mode: if kind == EntryKind::Dir { 0o700 } else { 0o600 },
                                mtime_ns: 5_000_000_000,
                                size: data.len() as u64,
                                symlink_target: target,
                                extents: None,
                                content_hash: inline.then(|| hawser_wire::xxh3::hash128(data)),
                                inline: inline.then_some(data.as_slice()),
                            }
                        })
                        .collect();
                    for (e, data) in entries.iter().zip(&data) {
                        if matches!(e.kind, Kind::File { inline: false, .. }) {
                            files.insert(e.file_id, data.clone());
                        }
                    }
                    let mut out = BytesMut::new();
                    ManifestBatch { entries: wire }.encode(&mut out).unwrap();
                    call(out);
                }
                Step::Data(file_id) => {
                    let Some(data) = files.get(file_id) else {
                        continue;
                    };
                    let mut digest = hawser_wire::xxh3::Hasher128::new();
                    digest.update(&(data.len() as u64).to_be_bytes());
                    for (i, piece) in data.chunks(BLOCK as usize).enumerate() {
                        let offset = i as u64 * u64::from(BLOCK);
                        let mut out = BytesMut::new();
                        BlockHeader {
                            file_id: *file_id,
                            offset,
                            digest: block_digest(piece),
                        }
                        .encode(&mut out);
                        out.extend_from_slice(piece);
                        call(out);
                        digest.update(&offset.to_be_bytes());
                        digest.update(&(piece.len() as u32).to_be_bytes());
                        digest.update(&block_digest(piece).to_be_bytes());
                    }
                    let mut out = BytesMut::new();
                    CommitFile {
                        file_id: *file_id,
                        size: data.len() as u64,
                        content_hash: digest.digest128(),
                        mode: 0o640,
                        mtime_ns: 7_000_000_000,
                    }
                    .encode(&mut out);
                    call(out);
                }
                Step::Plant(plant) => self.plant(plant),
                Step::Delete => {
                    let mut out = BytesMut::new();
                    DeleteRequest { max_listed: 10 }.encode(&mut out);
                    call(out);
                }
            }
        }
        let mut out = BytesMut::new();
        Finish.encode(&mut out);
        call(out);
    }
}

/// One case: two jobs on the root in two threads, a racer in a third; then the canary.
fn two_jobs_and_a_racer(first: &Job, second: &Job, racer: &[Plant]) -> Result<(), TestCaseError> {
    let scene = Scene::new();
    let before = scene.canary();
    std::thread::scope(|threads| {
        threads.spawn(|| scene.run(first));
        threads.spawn(|| scene.run(second));
        threads.spawn(|| {
            for plant in racer {
                scene.plant(plant);
                std::thread::yield_now();
            }
        });
    });
    prop_assert_eq!(scene.canary(), before, "the outside changed");
    let names: Vec<_> = std::fs::read_dir(scene.base.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    prop_assert_eq!(names.len(), 2, "{:?}", names);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn hostile_manifests_racing_jobs_and_planted_symlinks_never_touch_the_outside(
        first in job(), second in job(), racer in vec(plant(), 0..8),
    ) {
        two_jobs_and_a_racer(&first, &second, &racer)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The same, longer (`cargo test -- --ignored`).
    #[test]
    #[ignore = "long: 2000 cases"]
    fn hostile_manifests_racing_jobs_and_planted_symlinks_never_touch_the_outside_long(
        first in job(), second in job(), racer in vec(plant(), 0..16),
    ) {
        two_jobs_and_a_racer(&first, &second, &racer)?;
    }
}
