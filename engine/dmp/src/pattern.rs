//! Routing-key patterns of bindings: an exact key, or the AMQP topic form — words
//! separated by `.`, where `*` stands for exactly one word and `#` for zero or more (at
//! most one `#` per pattern, so that matching is one pass over the key: O(words)).

/// Most words a routing key or pattern may have (a short string holds at most 128).
const MAX_WORDS: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Word {
    Star,
    /// A literal word: its range in the pattern's text.
    Literal(u8, u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Form {
    /// No wildcard: compared as bytes.
    Exact,
    /// Words, with `#` between `before` and `after` if `hash`.
    Topic {
        before: Box<[Word]>,
        hash: bool,
        after: Box<[Word]>,
    },
}

/// A compiled binding pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: Box<[u8]>,
    form: Form,
}

/// Why a pattern is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A wildcard shares its word with other characters (`a*.b`).
    #[error("a wildcard must be a whole word: `*` or `#` between dots")]
    WildcardInWord,
    /// Two `#` words.
    #[error("a pattern has at most one `#` word")]
    SeveralHashes,
    /// Longer than a short string.
    #[error("a pattern has at most 255 bytes")]
    TooLong,
}

impl Pattern {
    /// Compiles `text`: a pattern without `*` or `#` words matches that exact key.
    pub fn parse(text: &[u8]) -> Result<Self, PatternError> {
        if text.len() > 255 {
            return Err(PatternError::TooLong);
        }
        if !text.iter().any(|&b| b == b'*' || b == b'#') {
            return Ok(Pattern {
                text: text.into(),
                form: Form::Exact,
            });
        }
        let (mut before, mut after) = (Vec::new(), Vec::new());
        let mut hash = false;
        let mut start = 0usize;
        for word in text.split(|&b| b == b'.') {
            let end = start + word.len();
            let side = if hash { &mut after } else { &mut before };
            match word {
                b"#" if hash => return Err(PatternError::SeveralHashes),
                b"#" => hash = true,
                b"*" => side.push(Word::Star),
                w if w.iter().any(|&b| b == b'*' || b == b'#') => {
                    return Err(PatternError::WildcardInWord);
                }
                // Both fit: the text has at most 255 bytes.
                _ => side.push(Word::Literal(start as u8, end as u8)),
            }
            start = end + 1;
        }
        Ok(Pattern {
            text: text.into(),
            form: Form::Topic {
                before: before.into(),
                hash,
                after: after.into(),
            },
        })
    }

    /// The pattern as given.
    pub fn text(&self) -> &[u8] {
        &self.text
    }

    /// Whether `key` matches. Allocates nothing; one pass over the key's words.
    pub fn matches(&self, key: &[u8]) -> bool {
        let Form::Topic {
            before,
            hash,
            after,
        } = &self.form
        else {
            return *self.text == *key;
        };
        let mut bounds = [(0u8, 0u8); MAX_WORDS];
        let mut n = 0usize;
        let mut start = 0usize;
        for word in key.split(|&b| b == b'.') {
            if n == MAX_WORDS {
                return false;
            }
            let end = start + word.len();
            // A short string's offsets fit a byte.
            bounds[n] = (start as u8, end as u8);
            n += 1;
            start = end + 1;
        }
        let fits = if *hash {
            n >= before.len() + after.len()
        } else {
            n == before.len()
        };
        if !fits {
            return false;
        }
        let word_matches = |w: &Word, i: usize| match *w {
            Word::Star => true,
            Word::Literal(a, b) => {
                self.text[usize::from(a)..usize::from(b)]
                    == key[usize::from(bounds[i].0)..usize::from(bounds[i].1)]
            }
        };
        before.iter().enumerate().all(|(i, w)| word_matches(w, i))
            && after
                .iter()
                .enumerate()
                .all(|(i, w)| word_matches(w, n - after.len() + i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, key: &str) -> bool {
        Pattern::parse(pattern.as_bytes())
            .unwrap()
            .matches(key.as_bytes())
    }

    #[test]
    fn exact_patterns_compare_bytes() {
        assert!(m("orders.eu", "orders.eu"));
        assert!(!m("orders.eu", "orders.eu.x"));
        assert!(m("", ""));
        assert!(!m("", "a"));
    }

    #[test]
    fn star_is_one_word_and_hash_any_number() {
        assert!(m("orders.*", "orders.eu"));
        assert!(!m("orders.*", "orders"));
        assert!(!m("orders.*", "orders.eu.paris"));
        assert!(m("orders.#", "orders"));
        assert!(m("orders.#", "orders.eu.paris"));
        assert!(m("#", ""));
        assert!(m("#", "a.b.c"));
        assert!(m("#.paris", "orders.eu.paris"));
        assert!(!m("#.paris", "orders.eu.lyon"));
        assert!(m("*.eu.#", "orders.eu"));
        assert!(m("a.#.c", "a.x.b.y.z.c"));
        assert!(!m("a.#.b", "a.x.c"));
        assert!(m("a.*.#", "a.b"));
        assert!(m("a.#.b", "a.b"));
        assert!(
            !m("a.b.#.b.c", "a.b.c"),
            "the words around # do not overlap"
        );
        assert!(!m("a.*.#", "a"));
    }

    #[test]
    fn one_hash_at_most() {
        assert_eq!(Pattern::parse(b"#.a.#"), Err(PatternError::SeveralHashes));
        // The worst key for the pattern is still one pass: 128 words.
        let key = vec!["a"; 128].join(".");
        assert!(m("#.a", &key));
        assert!(!m("#.b", &key));
    }

    #[test]
    fn wildcards_inside_words_are_refused() {
        assert_eq!(
            Pattern::parse(b"orders.eu*"),
            Err(PatternError::WildcardInWord)
        );
        assert_eq!(Pattern::parse(&[b'a'; 256]), Err(PatternError::TooLong));
    }

    proptest::proptest! {
        #[test]
        fn hash_alone_matches_every_key(key in "[a-z.]{0,60}") {
            proptest::prop_assert!(m("#", &key));
        }

        #[test]
        fn a_key_matches_itself_as_an_exact_pattern(key in "[a-z.]{0,60}") {
            proptest::prop_assert!(m(&key, &key));
        }

        #[test]
        fn star_words_match_any_key_of_that_many_words(words in proptest::collection::vec("[a-z]{1,5}", 1..8)) {
            let key = words.join(".");
            let stars = vec!["*"; words.len()].join(".");
            proptest::prop_assert!(m(&stars, &key));
            let fewer = vec!["*"; words.len() - 1].join(".");
            proptest::prop_assert!(!m(&fewer, &key));
        }
    }
}
