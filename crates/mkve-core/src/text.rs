//! Text that came from outside mkve (a guest's answer to a probe, a
//! bundle's metadata, a template, a configuration file, a remote node)
//! shown to an operator: control characters are escaped, so none can move
//! the cursor, retitle the terminal, clear the screen or reorder a line.
//! The one rule every output path uses (mkve-cli's stdout and stderr,
//! mkve-web's pages, log and API).

use std::borrow::Cow;

/// Whether `c` must not reach a terminal as it is: a C0 control other than
/// newline and tab, DEL, a C1 control (Unicode's `Cc`: 8-bit CSI `U+009B`
/// starts an escape sequence on many terminals), or a bidirectional
/// formatting character (Unicode UAX #9: they reorder what is shown, as in
/// "Trojan Source", CVE-2021-42574).
pub fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with each unsafe character ([`is_unsafe`]) written as Rust's
/// `\u{…}` escape (as `str::escape_debug` writes it); unchanged, and not
/// copied, when it has none.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// JSON text (as serde_json writes it) with each unsafe character written
/// as JSON's `\uXXXX` escape (RFC 8259, section 7): the same value to a
/// JSON reader, nothing for a terminal to act on. serde_json escapes C0
/// controls itself; DEL, C1 controls and the bidirectional characters it
/// writes raw, and only inside strings, where an escape means the same.
pub fn json_safe(json: String) -> String {
    if !json.chars().any(is_unsafe) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if is_unsafe(c) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `s` on one line: its runs of white space (newlines included) made one
/// space, for an error quoted inside a one-line message.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_the_rest_kept() {
        for (raw, shown) in [
            ("ntp \u{1b}]0;title\u{7} ok", "ntp \\u{1b}]0;title\\u{7} ok"),
            ("\u{1b}[2J", "\\u{1b}[2J"),
            ("a\u{0}b", "a\\u{0}b"),
            ("csi \u{9b}31m", "csi \\u{9b}31m"),
            ("del\u{7f}", "del\\u{7f}"),
            ("cr\roverwrite", "cr\\u{d}overwrite"),
            ("trojan \u{202e}txt.exe", "trojan \\u{202e}txt.exe"),
            (
                "tabs\tand\nlines, ünïcödé, 時刻",
                "tabs\tand\nlines, ünïcödé, 時刻",
            ),
        ] {
            assert_eq!(printable(raw), shown);
        }
        assert!(matches!(printable("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_keeps_the_exact_value() {
        for s in ["\u{1b}[2J", "\u{9b}x\u{7f}", "a\u{202e}b", "plain \\u009b"] {
            let text = json_safe(serde_json::to_string(&serde_json::json!({ "v": s })).unwrap());
            assert!(!text.chars().any(is_unsafe), "{text}");
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back["v"], s);
        }
    }
}
