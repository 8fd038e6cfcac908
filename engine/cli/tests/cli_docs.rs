//! `hawser completions SHELL` and `hawser man` as a user runs them: scripts and pages
//! that name every subcommand.

use std::process::Command;

mod support;

use support::{TempDir, assert_succeeded, text};

const SUBCOMMANDS: [&str; 8] = [
    "serve", "push", "pull", "bench", "inspect", "passwd", "publish", "consume",
];

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn completion_scripts_name_every_subcommand_and_their_options() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert_succeeded(&out, shell);
        let script = text(&out.stdout);
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell}: no {sub}");
        }
        assert!(
            script.contains("resume"),
            "{shell}: push's --resume is missing"
        );
    }
    let script = text(&run(&["completions", "bash"]).stdout);
    assert!(script.contains("complete -F _hawser"), "{script}");
    assert!(!run(&["completions", "tcsh"]).status.success());
}

#[test]
fn man_writes_one_page_per_subcommand() {
    let out = run(&["man"]);
    assert_succeeded(&out, "man");
    let page = text(&out.stdout);
    assert!(page.contains(".TH hawser 1"), "{page}");
    for sub in SUBCOMMANDS {
        assert!(
            page.contains(&format!("hawser\\-{sub}(1)")),
            "no {sub} in hawser(1)"
        );
    }

    let dir = TempDir::new("man-pages");
    let pages = dir.path().join("man1");
    assert_succeeded(
        &run(&["man", "--out", pages.to_str().unwrap()]),
        "man --out",
    );
    for sub in SUBCOMMANDS {
        let page = std::fs::read_to_string(pages.join(format!("hawser-{sub}.1"))).unwrap();
        assert!(
            page.contains(".SH OPTIONS") || sub == "passwd",
            "{sub}: {page}"
        );
        assert!(page.contains(&format!("hawser\\-{sub}")), "{sub}: {page}");
    }
    let push = std::fs::read_to_string(pages.join("hawser-push.1")).unwrap();
    // The whole help, not only the summary: the long text of --rate is there.
    assert!(push.contains("paces itself"), "{push}");
}
