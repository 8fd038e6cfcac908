//! A hostile source: arbitrary sequences of well-formed and malformed requests must get
//! answers or typed errors from the target, never a panic, and nothing may be written
//! outside the target's root.

mod replicate_support;

use bytes::BytesMut;
use hawser_engine::replicate::Target;
use hawser_engine::replicate::proto::{
    Begin, BlockHeader, CommitFile, CompressPolicy, DeleteRequest, EntryKind, Extent, Finish,
    JobOptions, ManifestBatch, ManifestEntry, PROTOCOL_VERSION, block_digest,
};
use proptest::collection::vec;
use proptest::prelude::*;
use replicate_support::{TempDir, snapshot};

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
