//! `${VAR}` interpolation for service definitions, as docker-compose does it.

use crate::error::ConfigError;

/// Replace `${NAME}` with `lookup(NAME)`, `${NAME:-default}` with the default when NAME is
/// unset or empty, `${NAME-default}` when it is unset; `$$` is a literal `$`. A `$` not
/// followed by `{` or `$` is kept as is. An unset variable without a default is an error
/// (naming it), so a typo never silently becomes an empty string.
pub fn interpolate(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body_start) = after.strip_prefix('{') {
            let end = body_start
                .find('}')
                .ok_or_else(|| ConfigError::UnclosedVariable { text: s.to_string() })?;
            let body = &body_start[..end];
            out.push_str(&expand(body, s, lookup)?);
            rest = &body_start[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn expand(body: &str, text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    let name_len = body
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    let (name, op) = body.split_at(name_len);
    let valid = !name.is_empty() && !name.as_bytes()[0].is_ascii_digit();
    if !valid {
        return Err(ConfigError::BadVariableName {
            name: body.to_string(),
            text: text.to_string(),
        });
    }
    let value = lookup(name);
    if op.is_empty() {
        return value.ok_or_else(|| ConfigError::UndefinedVariable {
            name: name.to_string(),
        });
    }
    if let Some(default) = op.strip_prefix(":-") {
        return Ok(value
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_string()));
    }
    if let Some(default) = op.strip_prefix('-') {
        return Ok(value.unwrap_or_else(|| default.to_string()));
    }
    Err(ConfigError::BadVariableName {
        name: body.to_string(),
        text: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn forms() {
        let i = |s: &str| interpolate(s, &env);
        assert_eq!(i("x ${A} y").unwrap(), "x alpha y");
        assert_eq!(i("${B:-def}").unwrap(), "def");
        assert_eq!(i("${EMPTY:-def}").unwrap(), "def");
        assert_eq!(i("${EMPTY-def}").unwrap(), "");
        assert_eq!(i("${B-}").unwrap(), "");
        assert_eq!(i("$$HOME $HOME $").unwrap(), "$HOME $HOME $");
        assert_eq!(i("${A}${A}").unwrap(), "alphaalpha");
    }

    #[test]
    fn errors_name_the_variable() {
        let e = interpolate("${NOPE}", &env).unwrap_err();
        assert_eq!(
            e.to_string(),
            "${NOPE} is not set: define it in berth.environment, or write ${NOPE:-default}"
        );
        assert!(matches!(
            interpolate("${A", &env),
            Err(ConfigError::UnclosedVariable { .. })
        ));
        assert!(matches!(
            interpolate("${1A}", &env),
            Err(ConfigError::BadVariableName { .. })
        ));
        assert!(matches!(
            interpolate("${A:?x}", &env),
            Err(ConfigError::BadVariableName { .. })
        ));
    }
}
