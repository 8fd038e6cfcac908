//! Helpers for tests that replicate trees (this crate's and the command-line tool's):
//! temporary directories, generated trees, snapshots and comparison. Enabled by the
//! `testing` feature.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "hawser-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Read-only directories would stop the removal.
        make_writable(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn make_writable(dir: &Path) {
    if let Ok(meta) = std::fs::symlink_metadata(dir)
        && meta.is_dir()
    {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                make_writable(&entry.path());
            }
        }
    }
}

/// The tests' pseudo-random generator: the same numbers for the same seed.
pub fn seeded_rng(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

/// `len` pseudo-random bytes, the same for the same seed.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    seeded_rng(seed).fill_bytes(&mut bytes);
    bytes
}

pub fn set_mtime(path: &Path, secs: i64, nanos: u32) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    let time = std::time::UNIX_EPOCH + std::time::Duration::new(secs as u64, nanos);
    file.set_modified(time).unwrap();
}

pub const SPARSE_SIZE: u64 = 48 << 20;

/// A tree with every kind of entry. `block` is the job's block size, so that the large
/// file spans several blocks.
pub fn build_tree(root: &Path, block: usize) {
    let p = |rel: &str| root.join(rel);
    std::fs::create_dir_all(p("a/b/c")).unwrap();
    std::fs::create_dir_all(p("empty_dir")).unwrap();
    std::fs::write(p("a/empty_file"), b"").unwrap();
    std::fs::write(p("a/b/c/deep.txt"), b"deep inside\n").unwrap();
    std::os::unix::fs::symlink("a/b/c/deep.txt", p("link_relative")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/absolute/target", p("link_absolute")).unwrap();
    std::os::unix::fs::symlink("../../empty_dir", p("a/b/link_up")).unwrap();

    // Sparse: 48 MiB with two small data regions.
    let sparse = std::fs::File::create(p("sparse.img")).unwrap();
    sparse.set_len(SPARSE_SIZE).unwrap();
    sparse
        .write_all_at(&random_bytes(1, 100_000), 10 << 20)
        .unwrap();
    sparse
        .write_all_at(&random_bytes(2, 5000), SPARSE_SIZE - 5000)
        .unwrap();
    drop(sparse);

    std::fs::write(p("odd_perms"), b"permissions").unwrap();
    std::fs::set_permissions(p("odd_perms"), std::fs::Permissions::from_mode(0o4751)).unwrap();
    std::fs::write(p("a/private"), b"secret").unwrap();
    std::fs::set_permissions(p("a/private"), std::fs::Permissions::from_mode(0o600)).unwrap();

    // Large: several blocks plus a tail.
    std::fs::write(p("large.bin"), random_bytes(3, block * 5 + 1234)).unwrap();

    std::fs::create_dir(p("many")).unwrap();
    for i in 0..300u64 {
        let len = (i as usize * 37) % 5000;
        std::fs::write(p(&format!("many/f{i:03}")), random_bytes(100 + i, len)).unwrap();
    }
    set_mtime(&p("a/b/c/deep.txt"), 1_000_000_000, 123_456_789);
    set_mtime(&p("large.bin"), 1_500_000_000, 1);

    let read_only = p("a/read_only_dir");
    std::fs::create_dir(&read_only).unwrap();
    std::fs::write(read_only.join("inside"), b"x").unwrap();
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555)).unwrap();
}

/// What a tree entry looks like, for comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub kind: &'static str,
    pub mode: u32,
    pub mtime_ns: i128,
    pub size: u64,
    pub content: u128,
    pub link: Option<PathBuf>,
}

/// Every entry under `root` by relative path (symlinks not followed).
pub fn snapshot(root: &Path) -> BTreeMap<String, Seen> {
    let mut out = BTreeMap::new();
    visit(root, root, &mut out);
    out
}

fn visit(root: &Path, dir: &Path, out: &mut BTreeMap<String, Seen>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let ft = meta.file_type();
        let kind = if ft.is_symlink() {
            "symlink"
        } else if ft.is_dir() {
            "dir"
        } else {
            "file"
        };
        let content = if kind == "file" {
            hawser_wire::xxh3::hash128(&std::fs::read(&path).unwrap())
        } else {
            0
        };
        let seen = Seen {
            kind,
            mode: if kind == "symlink" {
                0
            } else {
                meta.mode() & 0o7777
            },
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            size: if kind == "file" { meta.len() } else { 0 },
            content,
            link: ft.is_symlink().then(|| std::fs::read_link(&path).unwrap()),
        };
        out.insert(rel, seen);
        if kind == "dir" {
            visit(root, &path, out);
        }
    }
}

/// Asserts the two trees are identical in content and metadata.
pub fn assert_same_tree(source: &Path, target: &Path) {
    let a = snapshot(source);
    let b = snapshot(target);
    let only_a: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).collect();
    let only_b: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).collect();
    assert!(
        only_a.is_empty() && only_b.is_empty(),
        "only in source: {only_a:?}; only in target: {only_b:?}"
    );
    for (path, seen) in &a {
        assert_eq!(Some(seen), b.get(path), "{path} differs");
    }
}
