//! The fields of a `users:` entry that end up in `/etc/passwd` and `/etc/group`: each is a
//! type that cannot hold a `:` (the field separator), a `,` where lists are comma-separated,
//! or a newline or other control character (a new line is a new account). A bad value is an
//! error at its key, with the file and line, before anything is written.

use super::values::{shown, text_value};
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::{Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A login or group name: lower-case letters, digits, `_`, `-`, `.`, starting with a letter
/// or `_` (and `$` at the end, for machine accounts), at most 32 characters.
fn account_name(s: &str) -> bool {
    let first = s
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    let body = s.strip_suffix('$').unwrap_or(s);
    let rest = body
        .bytes()
        .skip(1)
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    first && rest && s.len() <= 32
}

const NAME_RULE: &str = "lower-case letters, digits, '_', '-' and '.', starting with a letter or '_', \
                         32 characters at most";

/// What makes a value unfit for a field of `/etc/passwd`, if anything.
fn passwd_field_problem(s: &str) -> Option<&'static str> {
    if s.chars().any(char::is_control) {
        Some("a newline or another control character (a new line is a new account)")
    } else if s.contains(':') {
        Some("a ':' (it separates the fields of /etc/passwd)")
    } else {
        None
    }
}

/// An absolute path for `/etc/passwd` (home directory, shell).
fn passwd_path(s: &str, what: &str) -> Result<String, String> {
    if let Some(problem) = passwd_field_problem(s) {
        return Err(format!("{} is not a valid {what}: it has {problem}", shown(s)));
    }
    if !s.starts_with('/') || s.split('/').any(|c| c == "..") {
        return Err(format!(
            "{} is not a valid {what}: it must be an absolute path without '..'",
            shown(s)
        ));
    }
    Ok(s.to_string())
}

macro_rules! account_text {
    ($ty:ident, $expecting:literal) => {
        impl $ty {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        text_value!($ty, $expecting);
    };
}

/// A login name (see [`account_name`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UserName(String);

impl FromStr for UserName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if account_name(s) {
            Ok(UserName(s.to_string()))
        } else {
            Err(format!("{s:?} is not a valid user name ({NAME_RULE})"))
        }
    }
}

account_text!(UserName, "a user name");

/// A group name: the same rule as a user name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupName(String);

impl FromStr for GroupName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if account_name(s) {
            Ok(GroupName(s.to_string()))
        } else {
            Err(format!("{} is not a valid group name ({NAME_RULE})", shown(s)))
        }
    }
}

account_text!(GroupName, "a group name");

/// The comment field (`gecos`): any text on one line without `:`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Gecos(String);

impl FromStr for Gecos {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match passwd_field_problem(s) {
            Some(problem) => Err(format!("{} is not a valid gecos: it has {problem}", shown(s))),
            None => Ok(Gecos(s.to_string())),
        }
    }
}

account_text!(Gecos, "a comment (the user's full name)");

/// A home directory: an absolute path without `:`, `..` or control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HomeDir(String);

impl FromStr for HomeDir {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        passwd_path(s, "home directory").map(HomeDir)
    }
}

account_text!(HomeDir, "an absolute path");

/// A login shell: an absolute path without `:`, `..` or control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LoginShell(String);

impl FromStr for LoginShell {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        passwd_path(s, "shell").map(LoginShell)
    }
}

account_text!(LoginShell, "an absolute path");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_that_splits_a_line_of_passwd_or_group() {
        for ok in ["Alice Liddell,Room 1,,", "", "Zoë"] {
            assert!(ok.parse::<Gecos>().is_ok(), "{ok:?}");
        }
        for bad in ["a:b", "a\nroot::0:0::/:/bin/sh", "tab\there", "cr\r"] {
            assert!(bad.parse::<Gecos>().is_err(), "{bad:?}");
        }
        assert!("/home/alice".parse::<HomeDir>().is_ok());
        assert!("/bin/sh".parse::<LoginShell>().is_ok());
        for bad in ["home/alice", "/home/a:b", "/home/a\n", "/home/../etc", ""] {
            assert!(bad.parse::<HomeDir>().is_err(), "{bad:?}");
            assert!(bad.parse::<LoginShell>().is_err(), "{bad:?}");
        }
        for ok in ["docker", "_svc", "adm", "host$"] {
            assert!(ok.parse::<GroupName>().is_ok(), "{ok:?}");
        }
        for bad in ["wheel:x:0:", "a,b", "a\nb", "Docker", "", "1abc"] {
            assert!(bad.parse::<GroupName>().is_err(), "{bad:?}");
        }
    }
}
