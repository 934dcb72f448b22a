//! Limits on the text a client can make us store or look up. Every field has a length limit
//! (published in the OpenAPI schema as `maxLength`), and none may carry control characters: a
//! NUL is refused by PostgreSQL's text type (a 500 before this check), and line breaks or escape
//! sequences in a name end up in other people's listings and in logs. Each problem names its
//! field, as every 422 of the API does.

/// RFC 5321's limit on a forward path.
pub const MAX_EMAIL_CHARS: usize = 254;
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_PLACE_CHARS: usize = 100;
pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 5000;

/// Whether line breaks and tabs are allowed (a description), or nothing below U+0020 is (a name).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    Single,
    Multi,
}

/// Add the problems of `value` as field `field` to `problems`.
pub fn check(field: &str, value: &str, max_chars: usize, lines: Lines, problems: &mut Vec<(String, String)>) {
    if value.chars().count() > max_chars {
        problems.push((field.into(), format!("String should have at most {max_chars} characters")));
    }
    if let Some(c) = value.chars().find(|&c| forbidden(c, lines)) {
        problems.push((field.into(), format!("String must not contain control characters (found U+{:04X})", c as u32)));
    }
}

fn forbidden(c: char, lines: Lines) -> bool {
    let allowed_space = lines == Lines::Multi && matches!(c, '\n' | '\r' | '\t');
    // Cc (C0, DEL, C1), plus the bidirectional overrides that make text display other than it is.
    (c.is_control() && !allowed_space) || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(value: &str, max: usize, lines: Lines) -> Vec<(String, String)> {
        let mut p = Vec::new();
        check("city", value, max, lines, &mut p);
        p
    }

    #[test]
    fn length_and_control_characters() {
        assert!(problems("Bogotá", 6, Lines::Single).is_empty(), "characters, not bytes");
        assert_eq!(problems("Bogotá!", 6, Lines::Single)[0].1, "String should have at most 6 characters");
        assert!(problems("Cali\0", 100, Lines::Single)[0].1.contains("U+0000"));
        assert!(!problems("two\nlines", 100, Lines::Single).is_empty());
        assert!(problems("two\nlines\tok", 100, Lines::Multi).is_empty());
        assert!(!problems("nul\0", 100, Lines::Multi).is_empty(), "NUL never");
        assert!(!problems("evil\u{202E}txt.exe", 100, Lines::Multi).is_empty());
        assert_eq!(problems("\0".repeat(200).as_str(), 100, Lines::Single).len(), 2, "both problems at once");
    }
}
