//! `--exclude PATTERN`: a small glob matcher over relative paths.
//!
//! `*` matches within one component, `**` across components, `?` one byte other than
//! `/`, `[abc]`, `[a-z]` and `[!x]` one byte of a class. A pattern without `/` is matched
//! against every component's name (so `*.tmp` excludes such files at any depth); a pattern
//! with `/` against the whole path from the transfer's top (a leading `/` anchors it
//! there too). An excluded directory is not descended into.

use super::error::ReplicateError;

/// A set of exclude patterns.
#[derive(Debug, Clone, Default)]
pub struct Excludes {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    glob: Vec<u8>,
    whole_path: bool,
}

impl Excludes {
    /// Parses the patterns; fails on an unclosed `[`.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, ReplicateError> {
        let mut out = Vec::new();
        for pattern in patterns {
            let text = pattern.as_ref();
            let bytes = text.as_bytes();
            if bytes.is_empty() || !classes_closed(bytes) {
                return Err(ReplicateError::BadPattern(text.to_owned()));
            }
            let whole_path = bytes.contains(&b'/');
            let glob = bytes.strip_prefix(b"/").unwrap_or(bytes);
            let glob = glob.strip_suffix(b"/").unwrap_or(glob).to_vec();
            out.push(Pattern { glob, whole_path });
        }
        Ok(Excludes { patterns: out })
    }

    /// True when `path` (relative, `/`-separated) is excluded.
    pub fn is_excluded(&self, path: &[u8]) -> bool {
        let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
        self.patterns.iter().any(|p| {
            if p.whole_path {
                glob_match(&p.glob, path)
            } else {
                glob_match(&p.glob, name)
            }
        })
    }
}

fn classes_closed(pattern: &[u8]) -> bool {
    let mut i = 0;
    while i < pattern.len() {
        if pattern[i] == b'[' {
            match pattern[i + 1..].iter().skip(1).position(|&b| b == b']') {
                Some(close) => i += close + 3,
                None => return false,
            }
        } else {
            i += 1;
        }
    }
    true
}

/// Matches one class starting after `[`; returns (matched, bytes of the class consumed
/// including the closing `]`).
fn match_class(class: &[u8], byte: u8) -> (bool, usize) {
    let (negated, start) = match class.first() {
        Some(b'!') | Some(b'^') => (true, 1),
        _ => (false, 0),
    };
    // A `]` right at the start is a literal member.
    let Some(close) = class[start..].iter().skip(1).position(|&b| b == b']') else {
        return (false, class.len());
    };
    let members = &class[start..start + close + 1];
    let mut hit = false;
    let mut i = 0;
    while i < members.len() {
        if i + 2 < members.len() && members[i + 1] == b'-' {
            hit |= (members[i]..=members[i + 2]).contains(&byte);
            i += 3;
        } else {
            hit |= members[i] == byte;
            i += 1;
        }
    }
    (hit != negated, start + close + 2)
}

fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.first() {
        None => text.is_empty(),
        Some(b'*') if pattern.get(1) == Some(&b'*') => {
            let rest = &pattern[2..];
            // `**/` also matches zero directories.
            if let Some(after) = rest.strip_prefix(b"/")
                && glob_match(after, text)
            {
                return true;
            }
            (0..=text.len()).any(|i| glob_match(rest, &text[i..]))
        }
        Some(b'*') => {
            let rest = &pattern[1..];
            for i in 0..=text.len() {
                if glob_match(rest, &text[i..]) {
                    return true;
                }
                if text.get(i) == Some(&b'/') {
                    break;
                }
            }
            false
        }
        Some(b'?') => {
            matches!(text.first(), Some(&b) if b != b'/') && glob_match(&pattern[1..], &text[1..])
        }
        Some(b'[') => match text.first() {
            Some(&b) if b != b'/' => {
                let (hit, used) = match_class(&pattern[1..], b);
                hit && glob_match(&pattern[(1 + used).min(pattern.len())..], &text[1..])
            }
            _ => false,
        },
        Some(&literal) => text.first() == Some(&literal) && glob_match(&pattern[1..], &text[1..]),
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
}
