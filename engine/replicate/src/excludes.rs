//! `--exclude PATTERN`: the relative paths a job leaves out, as globs matched by
//! [`globset`].
//!
//! `*` matches within one component and `?` one byte other than `/`; `**` as a whole
//! component matches across components (`a/**/x` matches `a/x` and `a/b/c/x`; within a
//! component it is `*`); `[abc]`, `[a-z]` and `[!x]` (or `[^x]`) match one byte of a
//! class, never `/`; `{a,b}` matches either alternative. A backslash is an ordinary
//! character (`[*]` matches a literal `*`). A pattern without `/` is matched against
//! every component's name (so `*.tmp` excludes such files at any depth); a pattern with
//! `/` against the whole path from the transfer's top (a leading `/` anchors it there
//! too; a trailing `/` is dropped). An excluded directory is not descended into.

use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};

use super::error::ReplicateError;

/// A set of exclude patterns.
#[derive(Debug, Clone, Default)]
pub struct Excludes {
    /// Patterns without `/`, matched against an entry's name.
    names: GlobSet,
    /// Patterns with `/`, matched against the whole relative path.
    paths: GlobSet,
}

impl Excludes {
    /// Parses the patterns; fails on an empty one or one that is not a glob (an unclosed
    /// `[` or `{`, a reversed range).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, ReplicateError> {
        let (mut names, mut paths) = (GlobSetBuilder::new(), GlobSetBuilder::new());
        for pattern in patterns {
            let text = pattern.as_ref();
            let bad = |reason: String| ReplicateError::BadPattern {
                pattern: text.to_owned(),
                reason,
            };
            if text.is_empty() {
                return Err(bad("empty".to_owned()));
            }
            let whole_path = text.contains('/');
            let glob = text.strip_prefix('/').unwrap_or(text);
            let glob = glob.strip_suffix('/').unwrap_or(glob);
            let glob = GlobBuilder::new(glob)
                .literal_separator(true)
                .backslash_escape(false)
                .build()
                .map_err(|e| bad(e.kind().to_string()))?;
            if whole_path {
                paths.add(glob);
            } else {
                names.add(glob);
            }
        }
        let build = |set: GlobSetBuilder| {
            set.build().map_err(|e| ReplicateError::BadPattern {
                pattern: e.glob().unwrap_or_default().to_owned(),
                reason: e.kind().to_string(),
            })
        };
        Ok(Excludes {
            names: build(names)?,
            paths: build(paths)?,
        })
    }

    /// True when `path` (relative, `/`-separated) is excluded.
    pub fn is_excluded(&self, path: &[u8]) -> bool {
        let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
        // Most jobs exclude nothing: no candidate to prepare then.
        (!self.names.is_empty() && self.names.is_match_candidate(&Candidate::from_bytes(name)))
            || (!self.paths.is_empty()
                && self.paths.is_match_candidate(&Candidate::from_bytes(path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excluded(patterns: &[&str], path: &str) -> bool {
        Excludes::new(patterns)
            .unwrap()
            .is_excluded(path.as_bytes())
    }

    #[test]
    fn names_and_paths() {
        assert!(excluded(&["*.tmp"], "a/b/c.tmp"));
        assert!(!excluded(&["*.tmp"], "a/b/c.tmpx"));
        assert!(excluded(&["cache"], "x/cache"));
        assert!(excluded(&["a/*.log"], "a/x.log"));
        assert!(!excluded(&["a/*.log"], "a/b/x.log"));
        assert!(excluded(&["a/**/x.log"], "a/b/c/x.log"));
        assert!(excluded(&["a/**/x.log"], "a/x.log"));
        assert!(excluded(&["/top"], "top"));
        assert!(excluded(&["file?.[ch]"], "d/file1.c"));
        assert!(!excluded(&["file?.[!ch]"], "d/file1.c"));
        assert!(excluded(&["[a-c]*"], "beta"));
        assert!(Excludes::new(&["[abc"]).is_err());
    }

    #[test]
    fn anchors_classes_and_alternatives() {
        // A trailing '/' is dropped; the '/' still makes it a whole-path pattern.
        assert!(excluded(&["cache/"], "cache"));
        assert!(!excluded(&["cache/"], "x/cache"));
        assert!(excluded(&["**/x"], "x"));
        assert!(excluded(&["**/x"], "a/b/x"));
        assert!(excluded(&["a/**"], "a/b/c"));
        assert!(!excluded(&["a/**"], "a"));
        assert!(!excluded(&["a/*"], "a/b/c"));
        assert!(excluded(&["[^x]"], "y"));
        assert!(!excluded(&["a[!x]b"], "a/b"));
        assert!(!excluded(&["a?b"], "a/b"));
        assert!(excluded(&["*.{tmp,bak}"], "d/f.bak"));
        assert!(excluded(&["[*]"], "*"));
        assert!(excluded(&["a\\b"], "a\\b"));
        // Paths need not be UTF-8; `?` is one byte.
        let tmp = Excludes::new(&["*.tmp", "?.bin"]).unwrap();
        assert!(tmp.is_excluded(b"d/\xff\xfe.tmp"));
        assert!(tmp.is_excluded(b"d/\xff.bin"));
        assert!(!tmp.is_excluded(b"d/\xff\xfe.bin"));
        assert!(matches!(
            Excludes::new(&[""]),
            Err(ReplicateError::BadPattern { .. })
        ));
        assert!(Excludes::new(&["{a,b"]).is_err());
        assert!(Excludes::new(&["[z-a]"]).is_err());
    }
}
