//! `text_chunk(text, words [, overlap])`: cuts text into chunks of `words` words,
//! consecutive chunks sharing `overlap` words. Words are runs of non-whitespace;
//! a chunk's words are joined by one space. The last chunk may be shorter; no
//! word is ever dropped.

/// Splits `text` into chunks (see the module docs).
pub fn chunk_words(text: &str, words: usize, overlap: usize) -> Vec<String> {
    let all: Vec<&str> = text.split_whitespace().collect();
    let mut out = Vec::new();
    if all.is_empty() || words == 0 {
        return out;
    }
    let step = words.saturating_sub(overlap).max(1);
    let mut start = 0;
    loop {
        let end = (start + words).min(all.len());
        out.push(all[start..end].join(" "));
        if end == all.len() {
            break;
        }
        start += step;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::chunk_words;

    #[test]
    fn keeps_the_last_partial_chunk() {
        assert_eq!(
            chunk_words("a b c d e f g", 3, 0),
            vec!["a b c", "d e f", "g"]
        );
        assert_eq!(chunk_words("a b", 3, 0), vec!["a b"]);
        assert!(chunk_words("", 3, 0).is_empty());
    }

    #[test]
    fn overlapping_chunks_share_words() {
        assert_eq!(chunk_words("a b c d e", 3, 1), vec!["a b c", "c d e"]);
        assert_eq!(chunk_words("a b c d e f", 4, 2), vec!["a b c d", "c d e f"]);
    }
}
