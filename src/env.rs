//! The one reader of `LOOP_GUARD_*` environment variables: every setting of
//! the layer, the interceptor and continuations goes through these checks,
//! so a bad value is the same clear error everywhere.
//!
//! A variable set to the empty string counts as unset. Any other value is
//! checked even when code overrides the setting: a typo in a deployment is
//! never silently ignored. Errors name the variable and show a bounded
//! excerpt of the value.

use std::fmt;
use std::ops::RangeInclusive;

use crate::excerpt::Excerpt;

/// Looks a variable up: `Ok(None)` when unset, an error when unreadable.
pub(crate) type Lookup<'a> = &'a dyn Fn(&'static str) -> Result<Option<String>, ConfigError>;

/// The process environment. A value that is not UTF-8 is an error, not unset.
pub(crate) fn process(var: &'static str) -> Result<Option<String>, ConfigError> {
    match std::env::var(var) {
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(raw)) => Err(ConfigError::invalid(
            var,
            &raw.to_string_lossy(),
            "expected UTF-8 text",
        )),
    }
}

/// A lookup over a caller's `Fn(&str) -> Option<String>` (tests, custom sources).
pub(crate) fn from_fn<F>(env: F) -> impl Fn(&'static str) -> Result<Option<String>, ConfigError>
where
    F: Fn(&str) -> Option<String>,
{
    move |var| Ok(env(var))
}

/// The value of `var`, `None` when unset or empty.
pub(crate) fn get(env: Lookup<'_>, var: &'static str) -> Result<Option<String>, ConfigError> {
    Ok(env(var)?.filter(|v| !v.is_empty()))
}

/// The value of `var` checked by `parse`, `None` when unset or empty; an
/// error naming `var` and `expected` when `parse` refuses it.
pub(crate) fn parse<T>(
    env: Lookup<'_>,
    var: &'static str,
    parse: impl Fn(&str) -> Option<T>,
    expected: &'static str,
) -> Result<Option<T>, ConfigError> {
    match get(env, var)? {
        None => Ok(None),
        Some(raw) => parse(&raw)
            .map(Some)
            .ok_or_else(|| ConfigError::invalid(var, &raw, expected)),
    }
}

/// Checks a code setting with the same rule as its variable.
pub(crate) fn check<T>(
    setting: &'static str,
    shown: &str,
    checked: Option<T>,
    expected: &'static str,
) -> Result<T, ConfigError> {
    checked.ok_or_else(|| ConfigError::invalid(setting, shown, expected))
}

/// A whole number in `range`, surrounding spaces allowed.
pub(crate) fn whole_number(raw: &str, range: RangeInclusive<u32>) -> Option<u32> {
    raw.trim().parse::<u32>().ok().filter(|n| range.contains(n))
}

/// `true` or `false`, in any case, surrounding spaces allowed.
pub(crate) fn boolean(raw: &str) -> Option<bool> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("true") {
        Some(true)
    } else if raw.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Expected-value text of [`namespace`].
pub(crate) const NAMESPACE_EXPECTED: &str =
    "expected 1-255 characters from A-Z a-z 0-9 . - _ / # : \
     and inner spaces, not blank and not starting with AWS/";

/// A CloudWatch namespace: 1-255 characters from `0-9A-Za-z.-_/#:` and
/// space, not `AWS/...`, not blank and without surrounding spaces.
pub(crate) fn namespace(raw: &str) -> Option<&str> {
    let valid_chars = raw
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ".-_/#: ".contains(c));
    let trimmed = raw.trim() == raw && !raw.is_empty();
    (trimmed && raw.len() <= 255 && valid_chars && !raw.starts_with("AWS/")).then_some(raw)
}

/// The metric namespace from the environment: `LOOP_GUARD_METRIC_NAMESPACE`,
/// else Powertools' `POWERTOOLS_METRICS_NAMESPACE`, each checked by
/// [`namespace`]'s rule (the layer and continuations read it this way).
pub(crate) fn metric_namespace(env: Lookup<'_>) -> Result<Option<String>, ConfigError> {
    let read = |var| {
        parse(
            env,
            var,
            |raw| namespace(raw).map(str::to_owned),
            NAMESPACE_EXPECTED,
        )
    };
    // Powertools' variable is another library's: checked only when used.
    match read(crate::config::ENV_METRIC_NAMESPACE)? {
        Some(ours) => Ok(Some(ours)),
        None => read(crate::config::ENV_POWERTOOLS_METRICS_NAMESPACE),
    }
}

/// Expected-value text of [`name`].
pub(crate) const NAME_EXPECTED: &str =
    "expected 1-256 bytes of text without spaces at either end or control characters";

/// A name (function identity, attribute name): 1-256 bytes, not blank, no
/// surrounding whitespace, no control characters (NUL included).
pub(crate) fn name(raw: &str) -> Option<&str> {
    let ok = !raw.is_empty()
        && raw.len() <= 256
        && raw.trim() == raw
        && !raw.chars().any(char::is_control);
    ok.then_some(raw)
}

/// A configuration value that was rejected, or a missing function identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(ErrorKind);

#[derive(Debug, Clone, PartialEq, Eq)]
enum ErrorKind {
    Invalid {
        setting: &'static str,
        value: String,
        expected: &'static str,
    },
    MissingIdentity,
}

impl ConfigError {
    /// `setting` (a variable or builder method) refused `value` (kept as a
    /// bounded excerpt).
    pub(crate) fn invalid(setting: &'static str, value: &str, expected: &'static str) -> Self {
        ConfigError(ErrorKind::Invalid {
            setting,
            value: Excerpt(value).to_string(),
            expected,
        })
    }

    /// No function identity to hash.
    pub(crate) fn missing_identity() -> Self {
        ConfigError(ErrorKind::MissingIdentity)
    }

    /// The variable or builder setting that was rejected, if any.
    pub fn setting(&self) -> Option<&'static str> {
        match &self.0 {
            ErrorKind::Invalid { setting, .. } => Some(setting),
            ErrorKind::MissingIdentity => None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ErrorKind::Invalid {
                setting,
                value,
                expected,
            } => write!(
                f,
                "invalid loop guard setting {setting}={value}: {expected}"
            ),
            ErrorKind::MissingIdentity => f.pad(
                "loop guard has no function identity: set LOOP_GUARD_FUNCTION_ID or \
                 AWS_LAMBDA_FUNCTION_NAME, or call LoopGuardConfigBuilder::function_identity",
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(whole_number(" 3 ", 1..=10), Some(3));
        assert_eq!(whole_number("0", 1..=10), None);
        assert_eq!(boolean("TRUE"), Some(true));
        assert_eq!(boolean(" False "), Some(false));
        assert_eq!(boolean("yes"), None);
        assert_eq!(namespace("My/App"), Some("My/App"));
        for bad in [" ", "", " x", "AWS/Lambda", "a;b", &"x".repeat(256)] {
            assert_eq!(namespace(bad), None, "{bad:?}");
        }
        assert_eq!(name("orders"), Some("orders"));
        for bad in ["", " ", "a\0b", " a", "a\n", &"x".repeat(257)] {
            assert_eq!(name(bad), None, "{bad:?}");
        }
    }
}
