//! `hawser serve --shards 2`: pushes and pulls of identities routed to either shard run
//! side by side, each with its trunk of connections on its identity's shard.

mod support;

use std::thread;

use support::{ServeProcess, TempDir, assert_same_tree, assert_succeeded, build_tree, hawser};

/// An identity routed to each of two shards.
fn one_identity_per_shard() -> [String; 2] {
    let mut found: [Option<String>; 2] = [None, None];
    for i in 0.. {
        let identity = format!("replica-{i}");
        let shard = usize::from(hawser_wire::dsp::identity_route(&identity)) % 2;
        found[shard].get_or_insert(identity);
        if let [Some(a), Some(b)] = &found {
            return [a.clone(), b.clone()];
        }
    }
    unreachable!()
}

#[test]
fn pushes_and_pulls_on_both_shards_of_one_serve_arrive_whole() {
    let source = TempDir::new("shards-src");
    let root = TempDir::new("shards-root");
    let back = TempDir::new("shards-back");
    build_tree(source.path(), 256 * 1024);
    let server = ServeProcess::start_with(
        root.path(),
        &["--listen", "127.0.0.1:0", "--shards", "2"],
        1,
    );
    let from = format!("{}/", source.path().display());
    let pushes: Vec<_> = one_identity_per_shard()
        .into_iter()
        .map(|identity| {
            let (from, to) = (from.clone(), format!("{}:/{identity}", server.addr));
            thread::spawn(move || {
                let out = hawser(
                    "push",
                    &["--identity", &identity, "--block-size", "256K", &from, &to],
                );
                assert_succeeded(&out, &format!("push as {identity}"));
                identity
            })
        })
        .collect();
    let identities: Vec<String> = pushes.into_iter().map(|p| p.join().unwrap()).collect();
    for identity in &identities {
        assert_same_tree(source.path(), &root.path().join(identity));
        // And back, as the other identity (its nexus on the other shard).
        let other = identities.iter().find(|i| *i != identity).unwrap();
        let copy = back.path().join(identity);
        let out = hawser(
            "pull",
            &[
                "--identity",
                other,
                "--block-size",
                "256K",
                &format!("{}:{identity}/", server.addr),
                copy.to_str().unwrap(),
            ],
        );
        assert_succeeded(&out, &format!("pull as {other}"));
        assert_same_tree(source.path(), &copy);
    }
}
