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

/// `text` (an error a remote server wrote, which may echo what it was sent) with every
/// occurrence of each secret replaced by `[redacted]`. Secrets under 4 bytes are left alone:
/// they would blank out ordinary words and cannot be told apart from them anyway.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        if out.contains(secret) {
            out = out.replace(secret, "[redacted]");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_echoed_in_an_error_are_redacted() {
        assert_eq!(
            redact(
                "535 5.7.8 bad credentials for noc:hunter22",
                &["hunter22", "no"]
            ),
            "535 5.7.8 bad credentials for noc:[redacted]"
        );
        assert_eq!(redact("nothing here", &["hunter22"]), "nothing here");
    }

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
