//! Routing-key patterns of bindings: an exact key, or the AMQP topic form — words
//! separated by `.`, where `*` stands for exactly one word and `#` for zero or more.

/// Most words a routing key or pattern may have (a short string holds at most 128).
const MAX_WORDS: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Word {
    Star,
    Hash,
    /// A literal word: its range in the pattern's text.
    Literal(u8, u8),
}

/// A compiled binding pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: Box<[u8]>,
    /// `None`: no wildcard, compared as bytes.
    words: Option<Box<[Word]>>,
}

/// Why a pattern is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A wildcard shares its word with other characters (`a*.b`).
    #[error("a wildcard must be a whole word: `*` or `#` between dots")]
    WildcardInWord,
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
        let has_wildcard = text.iter().any(|&b| b == b'*' || b == b'#');
        if !has_wildcard {
            return Ok(Pattern {
                text: text.into(),
                words: None,
            });
        }
        let mut words = Vec::new();
        let mut start = 0usize;
        for word in text.split(|&b| b == b'.') {
            let end = start + word.len();
            let compiled = match word {
                b"*" => Word::Star,
                b"#" => Word::Hash,
                w if w.iter().any(|&b| b == b'*' || b == b'#') => {
                    return Err(PatternError::WildcardInWord);
                }
                // Both fit: the text has at most 255 bytes.
                _ => Word::Literal(start as u8, end as u8),
            };
            // `#.#` matches what `#` does.
            if !(compiled == Word::Hash && words.last() == Some(&Word::Hash)) {
                words.push(compiled);
            }
            start = end + 1;
        }
        Ok(Pattern {
            text: text.into(),
            words: Some(words.into()),
        })
    }

    /// The pattern as given.
    pub fn text(&self) -> &[u8] {
        &self.text
    }

    /// Whether `key` matches. Allocates nothing.
    pub fn matches(&self, key: &[u8]) -> bool {
        let Some(words) = &self.words else {
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
            bounds[n] = (start as u8, end as u8);
            n += 1;
            start = end + 1;
        }
        let key_word = |i: usize| &key[usize::from(bounds[i].0)..usize::from(bounds[i].1)];
        let literal = |w: &Word, i: usize| match *w {
            Word::Star => true,
            Word::Literal(a, b) => self.text[usize::from(a)..usize::from(b)] == *key_word(i),
            Word::Hash => false,
        };
        // Wildcard matching with one backtrack point, `#` as the many-word wildcard.
        let (mut p, mut k) = (0usize, 0usize);
        let mut resume: Option<(usize, usize)> = None;
        while k < n {
            if p < words.len() && words[p] == Word::Hash {
                resume = Some((p, k));
                p += 1;
            } else if p < words.len() && literal(&words[p], k) {
                p += 1;
                k += 1;
            } else if let Some((hp, hk)) = resume {
                p = hp + 1;
                k = hk + 1;
                resume = Some((hp, hk + 1));
            } else {
                return false;
            }
        }
        words[p..].iter().all(|w| *w == Word::Hash)
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
        assert!(m("a.#.b.#.c", "a.x.b.y.z.c"));
        assert!(!m("a.#.b.#.c", "a.x.c"));
        assert!(m("#.#", "x"));
        assert!(m("a.*.#", "a.b"));
        assert!(!m("a.*.#", "a"));
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
