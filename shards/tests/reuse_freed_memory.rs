//! A freed block's pages serve the next block once `reuse_freed_memory` has set the
//! allocator's thresholds (its own test binary: the thresholds are process-wide).

use std::sync::mpsc;

/// Minor page faults of this process so far (`/proc/self/stat`, field 10).
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The command name may hold spaces; the fields after it are plain.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(7).unwrap().parse().unwrap()
}

/// A server's pattern: a receiving thread fills the storage of `blocks` frames of a
/// pushed block's size, a few at a time, and a writing thread frees them. Returns the
/// minor faults taken meanwhile.
fn receive_blocks(blocks: usize) -> u64 {
    const FRAME: usize = (8 << 20) + 4096 + (128 << 10);
    let before = minor_faults();
    let (written, writer) = mpsc::sync_channel::<Vec<u8>>(4);
    let writer = std::thread::spawn(move || writer.iter().for_each(drop));
    for block in 0..blocks {
        let mut storage: Vec<u8> = Vec::with_capacity(FRAME);
        storage.resize(FRAME, 1 + block as u8);
        written.send(storage).unwrap();
    }
    drop(written);
    writer.join().unwrap();
    minor_faults() - before
}

#[test]
fn freed_block_storage_is_reused_without_faulting_new_pages() {
    let defaults = receive_blocks(64);
    hawser_shards::reuse_freed_memory();
    receive_blocks(8);
    let reused = receive_blocks(64);
    eprintln!("faults: {defaults} with the allocator's defaults, {reused} reusing");
    assert!(
        reused * 4 < defaults,
        "{reused} faults reusing freed memory, {defaults} with the defaults"
    );
}
