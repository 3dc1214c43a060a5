//! Shell wildcard matching as `fnmatch(3)` does it with no flags in the C locale, which is
//! how libkmod matches `modules.alias` patterns: `*` (any run of bytes, `/` included), `?`
//! (one byte), `[...]` with ranges and `!`/`^` negation (a `]` right after the opening
//! bracket is literal), and `\` escaping the next byte. An unclosed `[` is a literal `[`.
//!
//! Written here rather than taken from `wildmatch` (no `[...]` classes, which USB aliases use
//! for bcdDevice ranges) or `globset` (compiles every one of thousands of patterns to a regex
//! at boot). Each pattern is parsed once; matching is the classic single-backtrack walk,
//! `O(pattern × text)` at worst and allocation-free.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Byte(u8),
    AnyByte,
    AnyRun,
    Class { negated: bool, ranges: Vec<(u8, u8)> },
}

impl Token {
    fn matches(&self, b: u8) -> bool {
        match self {
            Token::Byte(want) => *want == b,
            Token::AnyByte => true,
            Token::AnyRun => false,
            Token::Class { negated, ranges } => ranges.iter().any(|&(lo, hi)| lo <= b && b <= hi) != *negated,
        }
    }
}

/// A compiled wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
    /// The literal bytes before the first wildcard: a cheap pre-filter.
    prefix: Vec<u8>,
}

/// Whether `s` contains a byte that makes it a pattern rather than a plain string.
pub fn has_wildcards(s: &str) -> bool {
    s.bytes().any(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
}

impl Glob {
    /// Compile `pattern`. Never fails: malformed classes fall back to literal bytes, as
    /// `fnmatch` does.
    pub fn new(pattern: &str) -> Self {
        let p = pattern.as_bytes();
        let ends = class_ends(p);
        let mut tokens = Vec::with_capacity(p.len());
        let mut i = 0;
        while let Some(&b) = p.get(i) {
            match b {
                b'*' => {
                    if tokens.last() != Some(&Token::AnyRun) {
                        tokens.push(Token::AnyRun);
                    }
                    i += 1;
                }
                b'?' => {
                    tokens.push(Token::AnyByte);
                    i += 1;
                }
                b'\\' => match p.get(i + 1) {
                    Some(&next) => {
                        tokens.push(Token::Byte(next));
                        i += 2;
                    }
                    None => {
                        tokens.push(Token::Byte(b'\\'));
                        i += 1;
                    }
                },
                b'[' => match class_closes(p, i + 1, &ends)
                    .then(|| parse_class(p, i + 1))
                    .flatten()
                {
                    Some((token, next)) => {
                        tokens.push(token);
                        i = next;
                    }
                    None => {
                        tokens.push(Token::Byte(b'['));
                        i += 1;
                    }
                },
                other => {
                    tokens.push(Token::Byte(other));
                    i += 1;
                }
            }
        }
        let prefix = tokens
            .iter()
            .map_while(|t| match t {
                Token::Byte(b) => Some(*b),
                _ => None,
            })
            .collect();
        Glob { tokens, prefix }
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        let t = text.as_bytes();
        if !t.starts_with(&self.prefix) {
            return false;
        }
        let (mut ti, mut pi) = (0usize, 0usize);
        // Where to resume after the last `*`: (pattern index after it, text index it took).
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            match self.tokens.get(pi) {
                Some(Token::AnyRun) => {
                    star = Some((pi + 1, ti));
                    pi += 1;
                }
                Some(token) if t.get(ti).is_some_and(|&b| token.matches(b)) => {
                    pi += 1;
                    ti += 1;
                }
                _ => match star {
                    Some((after_star, taken)) => {
                        pi = after_star;
                        ti = taken + 1;
                        star = Some((after_star, taken + 1));
                    }
                    None => return false,
                },
            }
        }
        self.tokens
            .get(pi..)
            .unwrap_or_default()
            .iter()
            .all(|t| *t == Token::AnyRun)
    }
}

/// The index after one element of a bracket body starting at `i` (a byte or an escaped
/// byte, maybe followed by `-` and a range end), or `None` when the pattern ends first.
fn element_end(p: &[u8], mut i: usize) -> Option<usize> {
    if *p.get(i)? == b'\\' {
        i += 1;
        p.get(i)?;
    }
    i += 1;
    if p.get(i) == Some(&b'-') && p.get(i + 1).is_some_and(|&b| b != b']') {
        i += 1;
        if *p.get(i)? == b'\\' {
            i += 1;
            p.get(i)?;
        }
        i += 1;
    }
    Some(i)
}

/// For every index: whether a bracket body continued from there (past its first element)
/// reaches its closing `]`. Built once from the end, so a pattern of many unclosed `[`s
/// costs its length: scanning anew from each `[` was quadratic (found by the
/// `modules_index` fuzz target).
fn class_ends(p: &[u8]) -> Vec<bool> {
    let mut closes = vec![false; p.len() + 1];
    for i in (0..p.len()).rev() {
        closes[i] =
            p[i] == b']' || element_end(p, i).is_some_and(|k| closes.get(k).copied().unwrap_or(false));
    }
    closes
}

/// Whether the bracket body starting at `start` (just after `[`) closes: its first element
/// (where `]` is literal), then the rest as [`class_ends`] knows it.
fn class_closes(p: &[u8], start: usize, ends: &[bool]) -> bool {
    let i = if matches!(p.get(start), Some(b'!' | b'^')) {
        start + 1
    } else {
        start
    };
    element_end(p, i).is_some_and(|k| ends.get(k).copied().unwrap_or(false))
}

/// Parse a bracket expression whose body starts at `start` (just after `[`). Returns the
/// token and the index after the closing `]`, or `None` if there is no closing `]`.
fn parse_class(p: &[u8], start: usize) -> Option<(Token, usize)> {
    let mut i = start;
    let negated = matches!(p.get(i), Some(b'!' | b'^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let mut lo = *p.get(i)?;
        if lo == b']' && !first {
            return Some((Token::Class { negated, ranges }, i + 1));
        }
        first = false;
        if lo == b'\\' {
            i += 1;
            lo = *p.get(i)?;
        }
        i += 1;
        // A range `lo-hi`, unless the `-` is the last thing before `]`.
        if p.get(i) == Some(&b'-') && p.get(i + 1).is_some_and(|&b| b != b']') {
            let mut hi = *p.get(i + 1)?;
            i += 2;
            if hi == b'\\' {
                hi = *p.get(i)?;
                i += 1;
            }
            ranges.push((lo, hi));
        } else {
            ranges.push((lo, lo));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table() {
        let cases: &[(&str, &str, bool)] = &[
            ("fs_vfat", "fs_vfat", true),
            ("fs_vfat", "fs_vfa", false),
            ("fs_vfat", "fs_vfatt", false),
            ("*", "", true),
            ("*", "anything/at:all", true),
            ("?", "", false),
            ("?", "x", true),
            ("virtio:d00000001v*", "virtio:d00000001v00001AF4", true),
            ("virtio:d00000001v*", "virtio:d00000002v00001AF4", false),
            (
                "pci:v00001AF4d00001000sv*sd*bc*sc*i*",
                "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
                true,
            ),
            ("usb:v0403p6001d0[0-5]*dc*", "usb:v0403p6001d0400dc00", true),
            ("usb:v0403p6001d0[0-5]*dc*", "usb:v0403p6001d0600dc00", false),
            ("a[!0-9]c", "abc", true),
            ("a[!0-9]c", "a1c", false),
            ("a[^x]c", "axc", false),
            ("a[]]c", "a]c", true),
            ("a[]-]c", "a-c", true),
            ("a[x-]c", "a-c", true),
            ("a[", "a[", true),
            ("a[b", "a[b", true),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
            ("a\\", "a\\", true),
            ("*a*b*c*", "xxaxxbxxcxx", true),
            ("*a*b*c*", "xxaxxcxxbxx", false),
            ("a*b", "aXbXb", true),
            ("a*b", "aXbXc", false),
            ("**x", "yyx", true),
        ];
        for &(pattern, text, want) in cases {
            assert_eq!(Glob::new(pattern).matches(text), want, "{pattern} vs {text}");
        }
    }

    fn reference(pattern: &str, text: &str) -> bool {
        wildmatch::WildMatch::new(pattern).matches(text)
    }

    proptest! {
        // For patterns of only `*`, `?` and literals, agree with the wildmatch crate.
        #[test]
        fn agrees_with_wildmatch(pattern in "[ab*?]{0,8}", text in "[ab]{0,10}") {
            prop_assert_eq!(Glob::new(&pattern).matches(&text), reference(&pattern, &text));
        }

        // The one-pass table says a bracket closes exactly when scanning it does.
        #[test]
        fn class_table_agrees_with_the_scan(pattern in "[ab!^\\\\\\[\\]-]{0,16}") {
            let p = pattern.as_bytes();
            let ends = class_ends(p);
            for start in 0..=p.len() {
                prop_assert_eq!(class_closes(p, start, &ends), parse_class(p, start).is_some(), "at {}", start);
            }
        }

        // Any pattern and text: no panic.
        #[test]
        fn never_panics(pattern in ".{0,40}", text in ".{0,40}") {
            let _ = Glob::new(&pattern).matches(&text);
        }

        #[test]
        fn brackets_never_panic(pattern in "[\\[\\]!^a-c\\\\*?-]{0,16}", text in "[a-c\\[\\]-]{0,12}") {
            let _ = Glob::new(&pattern).matches(&text);
        }
    }
}
