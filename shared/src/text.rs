//! Text from outside (DNS names, error messages from remote servers) made safe to send and to
//! log: control characters are dropped and the length is bounded on a character boundary.

use std::borrow::Cow;

/// `value` without control characters (NUL, line breaks, escapes: PostgreSQL refuses NUL and
/// the rest would forge lines in logs), cut to at most `max_bytes` on a character boundary.
pub fn clean_text(value: &str, max_bytes: usize) -> Cow<'_, str> {
    let clean = if value.chars().any(char::is_control) {
        Cow::Owned(
            value
                .chars()
                .filter(|c| !c.is_control())
                .collect::<String>(),
        )
    } else {
        Cow::Borrowed(value)
    };
    if clean.len() <= max_bytes {
        return clean;
    }
    let mut end = max_bytes;
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(clean[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_go_and_the_rest_stays() {
        assert!(matches!(
            clean_text("nas-1.lan", 255),
            Cow::Borrowed("nas-1.lan")
        ));
        assert_eq!(
            clean_text("nas\0-1\r\n.lan\u{1b}[31m", 255),
            "nas-1.lan[31m"
        );
        assert_eq!(clean_text("\0\0", 255), "");
        assert_eq!(clean_text("drucker.büro", 255), "drucker.büro");
    }

    #[test]
    fn length_is_cut_on_a_character_boundary() {
        assert_eq!(clean_text("abcdé", 5), "abcd");
        assert_eq!(clean_text("abcdé", 6), "abcdé");
        assert_eq!(clean_text(&"x".repeat(300), 255).len(), 255);
    }
}
