//! A server touches only its root: pushes that try to make the target act outside it,
//! through names the source chooses or through things planted under the root, change
//! nothing outside.

mod replicate_support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hawser_engine::replicate::{MemoryTransport, Source, SourceConfig, Target, run};
use replicate_support::{Seen, TempDir, random_bytes, set_mtime, snapshot};

const BLOCK: u32 = 64 * 1024;

fn config() -> SourceConfig {
    let mut config = SourceConfig::default();
    config.options.block_size = BLOCK;
    config.window_blocks = 4;
    config.dest = "replica".into();
    config
}

fn contents_of(dir: &Path) -> PathBuf {
    PathBuf::from(format!("{}/", dir.display()))
}

/// A directory outside the target's root, with a file in it, and a snapshot of
/// everything about it (the directory itself included).
struct Canary {
    dir: PathBuf,
    before: std::collections::BTreeMap<String, Seen>,
}

impl Canary {
    fn new(base: &Path) -> Self {
        let dir = base.join("outside");
        std::fs::create_dir_all(dir.join("inner")).unwrap();
        std::fs::write(dir.join("victim"), b"keep me").unwrap();
        set_mtime(&dir.join("victim"), 1_234_567_890, 0);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o751)).unwrap();
        let before = Self::look(&dir);
        Canary { dir, before }
    }

    fn look(dir: &Path) -> std::collections::BTreeMap<String, Seen> {
        let mut all = snapshot(dir.parent().unwrap());
        all.retain(|path, _| path == "outside" || path.starts_with("outside/"));
        all
    }

    fn assert_unchanged(&self) {
        assert_eq!(
            Self::look(&self.dir),
            self.before,
            "the canary outside changed"
        );
    }
}

/// Finding: a push whose sources hold a directory `d` and a symlink `d` to a directory
/// outside the root made the target chmod that outside directory at Finish (the
/// directory's metadata was applied by path, following the symlink that replaced it).
#[test]
fn a_directory_and_a_symlink_of_one_name_change_nothing_outside() {
    let base = TempDir::new("root-dirlink");
    let canary = Canary::new(base.path());
    let (first, second, root) = (
        base.path().join("first"),
        base.path().join("second"),
        base.path().join("root"),
    );
    std::fs::create_dir_all(first.join("d")).unwrap();
    std::fs::write(first.join("d/x"), b"x").unwrap();
    std::fs::set_permissions(first.join("d"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    std::os::unix::fs::symlink(&canary.dir, second.join("d")).unwrap();
    std::fs::create_dir_all(&root).unwrap();

    let source = Source::new(config(), &[contents_of(&first), contents_of(&second)]).unwrap();
    let mut transport = MemoryTransport::new(Target::new(&root).unwrap());
    let _ = run(source, &mut transport);
    canary.assert_unchanged();
}

/// Finding: a symlink planted at `<dir>/.hawser-partial/<name>.part` (and `.journal`)
/// was written through: the pushed bytes landed outside the root.
#[test]
fn symlinks_planted_in_the_partial_folder_are_not_written_through() {
    let base = TempDir::new("root-planted");
    let canary = Canary::new(base.path());
    let (src, root) = (base.path().join("src"), base.path().join("root"));
    std::fs::create_dir_all(&src).unwrap();
    let big = random_bytes(5, BLOCK as usize * 3 + 17);
    std::fs::write(src.join("big"), &big).unwrap();
    std::fs::write(src.join("small"), b"small").unwrap();
    let partial = root.join("replica/.hawser-partial");
    std::fs::create_dir_all(&partial).unwrap();
    for name in ["big.part", "big.journal", "small.part"] {
        std::os::unix::fs::symlink(canary.dir.join("victim"), partial.join(name)).unwrap();
    }

    let source = Source::new(config(), &[contents_of(&src)]).unwrap();
    let mut transport = MemoryTransport::new(Target::new(&root).unwrap());
    let report = run(source, &mut transport);
    canary.assert_unchanged();
    report.unwrap();
    assert_eq!(std::fs::read(root.join("replica/big")).unwrap(), big);
    assert_eq!(std::fs::read(root.join("replica/small")).unwrap(), b"small");
}
