//! Where a job's destination puts its entries, as cp, scp and rsync do: a one-file job
//! whose destination is not an existing directory writes the file as the destination;
//! an existing directory, a trailing '/' or a tree receives the entries inside; an empty
//! destination is the root.

use std::path::{Path, PathBuf};

use hawser_replicate::testing::{TempDir, random_bytes};
use hawser_replicate::{MemoryTransport, Source, SourceConfig, Target, run};

const BLOCK: u32 = 64 * 1024;

/// Pushes `sources` to `dest` beneath `root`, asking that the destination may name the
/// file (as the CLI does).
fn push(sources: &[PathBuf], root: &Path, dest: &str) {
    push_with(sources, root, dest, false);
}

fn push_with(sources: &[PathBuf], root: &Path, dest: &str, delete: bool) {
    let mut config = SourceConfig::default();
    config.options.block_size = BLOCK;
    config.options.dest_may_be_file = true;
    config.options.delete = delete;
    config.window_blocks = 4;
    config.dest = dest.into();
    let source = Source::new(config, sources).unwrap();
    let mut transport = MemoryTransport::new(Target::new(root).unwrap());
    run(source, &mut transport).unwrap();
}

struct Setup {
    _tmp: TempDir,
    file: PathBuf,
    data: Vec<u8>,
    root: PathBuf,
}

/// A source file `data.bin` of three blocks and a half, and an empty target root.
fn setup(tag: &str) -> Setup {
    let tmp = TempDir::new(tag);
    let file = tmp.path().join("data.bin");
    let data = random_bytes(7, BLOCK as usize * 7 / 2);
    std::fs::write(&file, &data).unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    Setup {
        _tmp: tmp,
        file,
        data,
        root,
    }
}

#[test]
fn a_file_to_a_new_name_is_written_as_that_name() {
    let s = setup("dest-new-name");
    push(std::slice::from_ref(&s.file), &s.root, "copy.bin");
    assert_eq!(std::fs::read(s.root.join("copy.bin")).unwrap(), s.data);
    // In a new directory too: the parents are made, the last component is the file.
    push(std::slice::from_ref(&s.file), &s.root, "a/b/copy.bin");
    assert_eq!(std::fs::read(s.root.join("a/b/copy.bin")).unwrap(), s.data);
}

#[test]
fn a_file_onto_an_existing_file_replaces_it() {
    let s = setup("dest-onto-file");
    std::fs::write(s.root.join("old.bin"), b"old content").unwrap();
    std::fs::write(s.root.join("sibling"), b"stays").unwrap();
    // --delete beside a single file sweeps nothing.
    push_with(std::slice::from_ref(&s.file), &s.root, "old.bin", true);
    assert_eq!(std::fs::read(s.root.join("old.bin")).unwrap(), s.data);
    assert_eq!(std::fs::read(s.root.join("sibling")).unwrap(), b"stays");
}

#[test]
fn a_file_into_an_existing_directory_keeps_its_name() {
    let s = setup("dest-into-dir");
    std::fs::create_dir(s.root.join("dir")).unwrap();
    push(std::slice::from_ref(&s.file), &s.root, "dir");
    assert_eq!(std::fs::read(s.root.join("dir/data.bin")).unwrap(), s.data);
}

#[test]
fn a_trailing_slash_means_into_the_directory() {
    let s = setup("dest-slash");
    push(std::slice::from_ref(&s.file), &s.root, "new/");
    assert_eq!(std::fs::read(s.root.join("new/data.bin")).unwrap(), s.data);
}

#[test]
fn an_empty_destination_is_the_root() {
    let s = setup("dest-root");
    push(std::slice::from_ref(&s.file), &s.root, "");
    assert_eq!(std::fs::read(s.root.join("data.bin")).unwrap(), s.data);
}

#[test]
fn trees_and_contents_always_go_into_a_directory() {
    let s = setup("dest-tree");
    let tree = s.file.parent().unwrap().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("only"), b"one file").unwrap();
    // A directory's contents holding one file: still a directory.
    push(
        &[PathBuf::from(format!("{}/", tree.display()))],
        &s.root,
        "contents",
    );
    assert_eq!(
        std::fs::read(s.root.join("contents/only")).unwrap(),
        b"one file"
    );
    // Two files: a directory.
    push(&[s.file.clone(), tree.join("only")], &s.root, "two");
    assert!(s.root.join("two/data.bin").is_file() && s.root.join("two/only").is_file());
    // A file's name taken by a directory tree's destination: refused, nothing replaced.
    std::fs::write(s.root.join("taken"), b"a file").unwrap();
    let mut config = SourceConfig::default();
    config.options.dest_may_be_file = true;
    config.dest = "taken".into();
    let source = Source::new(config, std::slice::from_ref(&tree)).unwrap();
    let mut transport = MemoryTransport::new(Target::new(&s.root).unwrap());
    assert!(run(source, &mut transport).is_err());
    assert_eq!(std::fs::read(s.root.join("taken")).unwrap(), b"a file");
}
