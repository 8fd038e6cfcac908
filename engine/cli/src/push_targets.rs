//! Which of `hawser push`'s PATH arguments are sources and which are targets: the first
//! is always a source and the last always a target (as with scp and rsync); the
//! arguments just before the last that name a server too (a ':' before any '/', as rsync
//! tells a remote path) are more targets, each replicated to in the same run.

use std::path::PathBuf;

use crate::error::CliError;

/// The sources and the targets (`ADDRESS:DEST`, one or more) of a push, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushPaths {
    /// Local paths to send.
    pub sources: Vec<PathBuf>,
    /// Where to send them, as typed.
    pub targets: Vec<String>,
}

/// Whether `arg` names a server rather than a local path: it has a ':' before any '/'
/// (`host:dir`, `[::1]:9000:dir`, `unix:///run/h.sock:dir`), while `./a:b` and `/x/a:b`
/// are local.
pub fn names_server(arg: &str) -> bool {
    match (arg.find(':'), arg.find('/')) {
        (Some(colon), Some(slash)) => colon < slash,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Splits `paths` (SRC... ADDRESS:DEST...) into sources and targets. A target besides the
/// last that is also an existing local path is refused as ambiguous, with how to say
/// which is meant; a target named twice is refused.
pub fn split_push_paths(paths: &[String]) -> Result<PushPaths, CliError> {
    split_with(paths, |path| std::fs::symlink_metadata(path).is_ok())
}

/// [`split_push_paths`], with `exists` telling whether a local path exists.
fn split_with(paths: &[String], exists: impl Fn(&str) -> bool) -> Result<PushPaths, CliError> {
    let [first, middle @ .., last] = paths else {
        return Err(CliError::Usage(
            "give SRC... ADDRESS:DEST [ADDRESS:DEST...]: at least one source and one target".into(),
        ));
    };
    let more_targets = middle
        .iter()
        .rev()
        .take_while(|arg| names_server(arg))
        .count();
    let (sources, extra_targets) = middle.split_at(middle.len() - more_targets);
    for target in extra_targets {
        if exists(target) {
            return Err(CliError::Usage(format!(
                "{target:?} is a local path and also reads as a target ADDRESS:DEST: write \
                 ./{target} to send it, or tcp://HOST:PORT:DEST to name a server"
            )));
        }
    }
    let targets: Vec<String> = extra_targets
        .iter()
        .chain(std::iter::once(last))
        .cloned()
        .collect();
    for (i, target) in targets.iter().enumerate() {
        if targets[..i].contains(target) {
            return Err(CliError::Usage(format!(
                "the target {target:?} is named twice"
            )));
        }
    }
    Ok(PushPaths {
        sources: std::iter::once(first)
            .chain(sources)
            .map(PathBuf::from)
            .collect(),
        targets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(args: &[&str]) -> Result<PushPaths, CliError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        split_with(&args, |path| path == "data:2024")
    }

    fn paths(sources: &[&str], targets: &[&str]) -> PushPaths {
        PushPaths {
            sources: sources.iter().map(PathBuf::from).collect(),
            targets: targets.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn remote_paths_have_a_colon_before_any_slash() {
        for remote in [
            "host:dir",
            "host:",
            "host:/abs",
            "10.0.0.2:9000:backup",
            "[::1]:9000:d",
            "unix:///run/h.sock:d",
            "shm://replica:d",
        ] {
            assert!(names_server(remote), "{remote}");
        }
        for local in ["dir", "./a:b", "/x/a:b", "a/b:c", ""] {
            assert!(!names_server(local), "{local}");
        }
    }

    #[test]
    fn one_target_as_before() {
        assert_eq!(split(&["a", "h:d"]).unwrap(), paths(&["a"], &["h:d"]));
        assert_eq!(
            split(&["a", "b", "h:d"]).unwrap(),
            paths(&["a", "b"], &["h:d"])
        );
        // The last is the target whatever it looks like, the first a source.
        assert_eq!(split(&["a:x", "dest"]).unwrap(), paths(&["a:x"], &["dest"]));
    }

    #[test]
    fn trailing_remote_paths_are_all_targets() {
        assert_eq!(
            split(&["a", "b", "h1:d", "h2:9000:d"]).unwrap(),
            paths(&["a", "b"], &["h1:d", "h2:9000:d"])
        );
        // Only the trailing run: a remote-looking path among the sources stays one.
        assert_eq!(
            split(&["a", "x:y", "b", "h1:d", "h2:d"]).unwrap(),
            paths(&["a", "x:y", "b"], &["h1:d", "h2:d"])
        );
        // The first argument is always a source.
        assert_eq!(
            split(&["s:1", "h1:d", "h2:d"]).unwrap(),
            paths(&["s:1"], &["h1:d", "h2:d"])
        );
        // A local path with a colon is spelled with a '/' before it.
        assert_eq!(
            split(&["a", "./b:c", "h:d"]).unwrap(),
            paths(&["a", "./b:c"], &["h:d"])
        );
    }

    #[test]
    fn ambiguous_and_repeated_targets_are_refused_in_words() {
        // `data:2024` exists here.
        let e = split(&["a", "data:2024", "h:d"]).unwrap_err().to_string();
        assert!(e.contains("./data:2024") && e.contains("tcp://"), "{e}");

        let e = split(&["a", "h:d", "h:d"]).unwrap_err().to_string();
        assert!(e.contains("named twice"), "{e}");
        assert!(split(&["only"]).is_err());
    }
}
