//! Making adversarial inputs: random bytes, mutations of real samples, and the pieces the
//! structure-aware generators of the targets are built from.

use fastrand::Rng;

/// Inputs grow to at most this through mutation (the "big input" mutation goes further).
pub const MAX_MUTATED_LEN: usize = 64 * 1024;
/// What a "big input" mutation repeats a piece up to: large enough that a quadratic parser
/// shows against [`crate::cpu_limit`].
pub const MAX_BIG_LEN: usize = 512 * 1024;

/// Bytes that break naive parsers: separators, quotes, escapes, NUL, CR, invalid UTF-8.
const NASTY: &[&[u8]] = &[
    b"\0",
    b"\n",
    b"\r\n",
    b"\t",
    b" ",
    b"\\",
    b"\"",
    b"'",
    b":",
    b"=",
    b",",
    b"#",
    b"-",
    b"--",
    b"\xff",
    b"\xc3",
    b"\xef\xbb\xbf",
    b"%",
    b"{",
    b"}",
    b"[",
    b"]",
    b"*",
    b"&",
    b"!",
    b"|",
    b">",
    b"\\040",
    b"\\134",
    b"00000000000000000000",
    b"4294967296",
    b"-1",
    b"1e999",
    b"..",
    b"/",
];

/// Random bytes, mostly short.
pub fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let len = if rng.u8(..) < 16 {
        rng.usize(..8192)
    } else {
        rng.usize(..256)
    };
    let printable = rng.bool();
    (0..len)
        .map(|_| if printable { rng.u8(0x20..0x7f) } else { rng.u8(..) })
        .collect()
}

/// One of `items`.
pub fn pick<T: Copy>(rng: &mut Rng, items: &[T]) -> T {
    items[rng.usize(..items.len())]
}

/// `base` changed by one to eight random mutations; `dictionary` and `others` (the rest of
/// the corpus) supply material to splice in.
pub fn mutate(rng: &mut Rng, base: &[u8], dictionary: &[&str], others: &[Vec<u8>]) -> Vec<u8> {
    let mut data = base.to_vec();
    for _ in 0..rng.usize(1..=8) {
        let at = rng.usize(..=data.len());
        match rng.u8(..12) {
            0 if !data.is_empty() => {
                let i = rng.usize(..data.len());
                data[i] ^= 1 << rng.u8(..8);
            }
            1 if !data.is_empty() => {
                let i = rng.usize(..data.len());
                data[i] = rng.u8(..);
            }
            2 => {
                let piece: Vec<u8> = (0..rng.usize(1..16)).map(|_| rng.u8(..)).collect();
                data.splice(at..at, piece);
            }
            3 if !data.is_empty() => {
                let end = (at + rng.usize(1..64)).min(data.len());
                data.drain(at.min(end)..end);
            }
            4 if !data.is_empty() => {
                // Duplicate a piece a few times: nesting, repeated keys, long lines.
                let start = rng.usize(..data.len());
                let end = (start + rng.usize(1..128)).min(data.len());
                let piece = data[start..end].to_vec();
                for _ in 0..rng.usize(1..8) {
                    data.splice(start..start, piece.iter().copied());
                }
            }
            5 | 6 if !dictionary.is_empty() => {
                let token = pick(rng, dictionary).as_bytes().to_vec();
                data.splice(at..at, token);
            }
            7 => {
                let token = pick(rng, NASTY).to_vec();
                data.splice(at..at, token);
            }
            8 if !others.is_empty() => {
                let other = &others[rng.usize(..others.len())];
                if !other.is_empty() {
                    let start = rng.usize(..other.len());
                    let end = (start + rng.usize(1..512)).min(other.len());
                    data.splice(at..at, other[start..end].iter().copied());
                }
            }
            9 => data.truncate(at),
            10 if !data.is_empty() => {
                // Swap two bytes: reorders delimiters.
                let (i, j) = (rng.usize(..data.len()), rng.usize(..data.len()));
                data.swap(i, j);
            }
            _ => {
                let digits = rng.u64(..).to_string();
                data.splice(at..at, digits.into_bytes());
            }
        }
    }
    data.truncate(MAX_MUTATED_LEN);
    data
}

/// `base` with one piece repeated until the input is large: the shape that makes a
/// quadratic parser slow (long lines, many keys, deep nesting).
pub fn big(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    if base.is_empty() {
        return vec![b'a'; rng.usize(..MAX_BIG_LEN)];
    }
    let start = rng.usize(..base.len());
    let end = (start + rng.usize(1..64)).min(base.len());
    let piece = &base[start..end];
    let target = rng.usize(16 * 1024..MAX_BIG_LEN);
    let mut data = base[..start].to_vec();
    while data.len() < target {
        data.extend_from_slice(piece);
    }
    data.extend_from_slice(&base[start..]);
    data
}

/// A short word of the characters identifiers, names and values are made of.
pub fn word(rng: &mut Rng) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_-.";
    (0..rng.usize(1..12))
        .map(|_| char::from(pick(rng, CHARS)))
        .collect()
}

/// A scalar as a cloud-config author might write it.
pub fn yaml_scalar(rng: &mut Rng) -> String {
    match rng.u8(..10) {
        0 => "yes".into(),
        1 => "0644".into(),
        2 => format!("\"{}\"", word(rng)),
        3 => format!("'{}'", word(rng)),
        4 => rng.i64(..).to_string(),
        5 => "~".into(),
        6 => format!("/{}/{}", word(rng), word(rng)),
        7 => "10.0.0.1/24".into(),
        8 => "|\n  multi\n  line".into(),
        _ => word(rng),
    }
}
