//! Turning vocabulary pieces into short, plain-ASCII cell text.
//!
//! Table cells and terminals need text that is short and renders the same everywhere, so
//! anything outside printable ASCII is replaced rather than shown.

/// Bytes that GPT-2's `bytes_to_unicode` maps to the character with the same code point.
///
/// These are the printable Latin-1 characters; every other byte gets a character from
/// U+0100 upward, in byte order, so that no piece contains whitespace or control characters.
fn is_self_mapped(byte: u8) -> bool {
    matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// The character that GPT-2's byte-level BPE (`bytes_to_unicode`) uses for `byte`.
///
/// This is the fixed public table of GPT-2 and of every byte-level BPE vocabulary built the same
/// way (RoBERTa, Llama 3, SmolLM, ...): printable Latin-1 bytes (`!`..=`~`, `¡`..=`¬`,
/// `®`..=`ÿ`) stand for themselves; the remaining 68 bytes (0..=32, 127..=160 and 173), in
/// increasing order, become U+0100, U+0101, ... . So the space byte 32 is `Ġ` (U+0120) and the
/// newline byte 10 is `Ċ` (U+010A).
pub fn byte_level_char(byte: u8) -> char {
    if is_self_mapped(byte) {
        return char::from(byte);
    }
    // Position of `byte` among the 68 bytes that are not self-mapped.
    let index = match byte {
        0..=32 => u32::from(byte),
        127..=160 => 33 + u32::from(byte - 127),
        _ => 67, // 173, the soft hyphen: the only remaining byte
    };
    char::from_u32(0x100 + index).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// The byte that `c` stands for in GPT-2's byte-level BPE, or `None` if `c` is not in the
/// table (the inverse of [`byte_level_char`]).
pub fn byte_level_byte(c: char) -> Option<u8> {
    let code = u32::from(c);
    if let Ok(byte) = u8::try_from(code) {
        return is_self_mapped(byte).then_some(byte);
    }
    let index = code.checked_sub(0x100)?;
    let byte = match index {
        0..=32 => index,
        33..=66 => index - 33 + 127,
        67 => 173,
        _ => return None,
    };
    u8::try_from(byte).ok()
}

/// Make a vocabulary piece readable for a table cell or a terminal.
///
/// `piece` is either a raw byte-level BPE vocabulary piece (GPT-2 style, such as `"ĠParis"`,
/// `"Ċ"` or `"âĢĻ"`) or an ordinary decoded string. The rules, in order:
///
/// 1. If *every* character of `piece` is in GPT-2's byte table ([`byte_level_byte`]), the piece is
///    mapped back to bytes and decoded as UTF-8 (lossily). Ordinary ASCII words are unchanged by
///    this; a decoded string that contains a real space is left alone.
/// 2. A token of whitespace alone is spelled out, so that its cell is not blank: a space becomes
///    `_`, a newline `\n`, a tab `\t`, a carriage return `\r`.
/// 3. Otherwise space, `\n`, `\t` and `\r` become a plain space; a leading space stays, because it
///    is how byte-level vocabularies mark a word start (`" Paris"` vs `"Paris"`).
/// 4. Every other character that is not printable ASCII becomes `?`.
/// 5. If the result has more than `max_chars` characters it is cut to `max_chars - 2` characters
///    followed by `".."`. The result never has more than `max_chars` characters.
///
/// ```
/// use backlens_plot::readable_token;
/// assert_eq!(readable_token("ĠParis", 10), " Paris");
/// assert_eq!(readable_token("Ċ", 10), "\\n");
/// assert_eq!(readable_token("ĠĠ", 10), "__");
/// assert_eq!(readable_token("âĢĻ", 10), "?"); // U+2019, a curly apostrophe
/// assert_eq!(readable_token("Ġinternationalization", 10), " interna..");
/// ```
pub fn readable_token(piece: &str, max_chars: usize) -> String {
    let bytes: Option<Vec<u8>> = piece.chars().map(byte_level_byte).collect();
    let decoded = match bytes {
        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        None => piece.to_owned(),
    };
    // A token of whitespace alone would be an invisible cell: spell its characters out.
    if !decoded.is_empty() && decoded.chars().all(char::is_whitespace) {
        let spelled: String = decoded
            .chars()
            .map(|c| match c {
                '\n' => "\\n",
                '\t' => "\\t",
                '\r' => "\\r",
                _ => "_",
            })
            .collect();
        return readable_token(&spelled, max_chars);
    }
    let plain: Vec<char> = decoded
        .chars()
        .map(|c| match c {
            ' ' | '\n' | '\t' | '\r' => ' ',
            ' '..='~' => c,
            _ => '?',
        })
        .collect();
    if plain.len() <= max_chars {
        return plain.into_iter().collect();
    }
    // Below two characters there is no room for the ".." marker, so just cut.
    if max_chars < 2 {
        return plain[..max_chars].iter().collect();
    }
    let mut out: String = plain[..max_chars - 2].iter().collect();
    out.push_str("..");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_a_bijection_onto_256_chars() {
        let mut seen = std::collections::HashSet::new();
        for b in 0..=255u8 {
            let c = byte_level_char(b);
            assert!(seen.insert(c), "byte {b} maps to a repeated char {c:?}");
            assert_eq!(byte_level_byte(c), Some(b), "round trip of byte {b}");
        }
        assert_eq!(byte_level_char(b' '), 'Ġ');
        assert_eq!(byte_level_char(b'\n'), 'Ċ');
        assert_eq!(byte_level_char(b'A'), 'A');
        assert_eq!(byte_level_char(0xAD), 'Ń');
        assert_eq!(byte_level_byte(' '), None);
        assert_eq!(byte_level_byte('\u{144}'), None);
        assert_eq!(byte_level_byte('€'), None);
    }

    #[test]
    fn leading_space_marker_becomes_a_space() {
        assert_eq!(readable_token("ĠParis", 10), " Paris");
        assert_eq!(readable_token("Paris", 10), "Paris");
    }

    #[test]
    fn whitespace_inside_a_token_becomes_plain_space() {
        assert_eq!(readable_token("a\tb\nc\rd", 10), "a b c d");
        assert_eq!(readable_token("ĠĊx", 10), "  x");
    }

    #[test]
    fn whitespace_only_tokens_are_spelled_out() {
        assert_eq!(readable_token("Ċ", 10), "\\n");
        assert_eq!(readable_token("ĊĊ", 10), "\\n\\n");
        assert_eq!(readable_token("ĉ", 10), "\\t");
        assert_eq!(readable_token("č", 10), "\\r");
        assert_eq!(readable_token("Ġ", 10), "_");
        assert_eq!(readable_token("ĊĊĊĊĊĊ", 6), "\\n\\n..");
    }

    #[test]
    fn decoded_strings_with_real_spaces_are_not_byte_mapped() {
        // 'Ġ' next to a real space cannot be byte-level, so it is just a non-ASCII char.
        assert_eq!(readable_token(" ĠParis", 10), " ?Paris");
        assert_eq!(readable_token(" Paris", 10), " Paris");
    }

    #[test]
    fn non_ascii_becomes_question_mark() {
        // Byte-level encoding of "é" (C3 A9) decodes to one char.
        assert_eq!(readable_token("Ã©", 10), "?");
        assert_eq!(readable_token("cafÃ©", 10), "caf?");
        // An already decoded "é" is also in the byte table (as byte E9, invalid UTF-8 alone).
        assert_eq!(readable_token("café", 10), "caf?");
        assert_eq!(readable_token("naïve résumé", 20), "na?ve r?sum?");
        assert_eq!(readable_token("âĢĻs", 10), "?s");
        assert_eq!(readable_token("日本", 10), "??");
        assert_eq!(readable_token("\u{7f}", 10), "?");
    }

    #[test]
    fn long_tokens_are_cut_with_marker() {
        assert_eq!(readable_token("abcdefghijkl", 10), "abcdefgh..");
        assert_eq!(readable_token("abcdefghij", 10), "abcdefghij");
        assert_eq!(readable_token("abc", 2), "..");
        assert_eq!(readable_token("abc", 1), "a");
        assert_eq!(readable_token("abc", 0), "");
        for max in 0..12 {
            assert!(readable_token("ĠSupercalifragilistic", max).chars().count() <= max);
        }
    }

    #[test]
    fn empty_piece_is_empty() {
        assert_eq!(readable_token("", 10), "");
        assert_eq!(readable_token("", 0), "");
    }
}
