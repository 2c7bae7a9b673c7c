//! [`for_terminal`]: text from a file made safe to print in a message.

/// The longest excerpt of a field a message quotes, in characters.
const MAX_SHOWN_CHARS: usize = 48;

/// `text` as a message may show it: control characters (an escape sequence, a carriage
/// return, a NUL) and the invisible ones that reorder or hide text (bidirectional overrides,
/// zero-width spaces) written as `\u{..}` escapes, and anything past 48 characters cut, with
/// `…` (so a megabyte-long field does not become a megabyte-long error).
///
/// ```
/// use wengert_train::loaders::for_terminal;
/// assert_eq!(for_terminal("setosa"), "setosa");
/// assert_eq!(for_terminal("a\u{1b}[2Jb\r"), "a\\u{1b}[2Jb\\r");
/// assert_eq!(for_terminal(&"x".repeat(100)).chars().count(), 49);
/// ```
pub fn for_terminal(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == MAX_SHOWN_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() || is_invisible(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Format characters that change how the text around them displays.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_obey() {
        assert_eq!(for_terminal("\u{202E}evil"), "\\u{202e}evil");
        assert_eq!(for_terminal("tab\there"), "tab\\there");
        assert_eq!(for_terminal("naïve ☃"), "naïve ☃");
        assert_eq!(for_terminal(""), "");
    }
}
