//! Bounded excerpts of untrusted text for logs and error messages.

use std::fmt;

/// Characters of a value shown in a log line or an error message.
const SHOWN: usize = 64;

/// At most 64 bytes of `value`, cut on a character boundary.
pub(crate) fn head(value: &str) -> &str {
    let mut end = value.len().min(SHOWN);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// Displays `value` quoted (`Debug` escapes), cut after 64 bytes with its
/// full length, so a 1 MB environment variable never fills a log line.
pub(crate) struct Excerpt<'a>(pub(crate) &'a str);

impl fmt::Display for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = head(self.0);
        if shown.len() == self.0.len() {
            write!(f, "{shown:?}")
        } else {
            write!(f, "{shown:?}... ({} bytes)", self.0.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        assert_eq!(Excerpt("abc").to_string(), "\"abc\"");
        let long = "é".repeat(100);
        let shown = Excerpt(&long).to_string();
        assert!(shown.ends_with("... (200 bytes)"), "{shown}");
        assert!(shown.len() < 90, "{shown}");
        assert_eq!(head(&long).len(), 64);
    }
}
