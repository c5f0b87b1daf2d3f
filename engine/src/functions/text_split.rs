//! `text_split(text, chunk_size [, overlap])`: the recursive character splitter
//! of the seeds' document pipeline (LangChain's `RecursiveCharacterTextSplitter`,
//! same results): split on paragraphs (`\n\n`), then lines, then spaces, then
//! characters, until every piece is shorter than `chunk_size` characters, then
//! merge neighbouring pieces into chunks of at most `chunk_size` characters
//! that repeat up to `overlap` characters of the chunk before. Separators stay
//! at the start of the piece that follows them; chunks are trimmed of
//! surrounding whitespace and empty ones dropped. Lengths count characters
//! (Unicode scalar values), not bytes.

/// Paragraphs, lines, words, characters.
const SEPARATORS: [&str; 4] = ["\n\n", "\n", " ", ""];

fn len(s: &str) -> usize {
    s.chars().count()
}

/// `text` cut at `sep`, each separator kept at the start of the piece after it;
/// empty pieces dropped. The empty separator cuts between characters.
fn split_keeping(text: &str, sep: &str) -> Vec<String> {
    if sep.is_empty() {
        return text.chars().map(String::from).collect();
    }
    let mut out = Vec::new();
    for (i, piece) in text.split(sep).enumerate() {
        let s = if i == 0 {
            piece.to_string()
        } else {
            format!("{sep}{piece}")
        };
        if !s.is_empty() {
            out.push(s);
        }
    }
    out
}

struct Splitter {
    size: usize,
    overlap: usize,
}

impl Splitter {
    fn split(&self, text: &str, separators: &[&str]) -> Vec<String> {
        // The first separator the text holds (the empty one always matches).
        let (sep, rest) = separators
            .iter()
            .position(|s| s.is_empty() || text.contains(s))
            .map_or(("", &[][..]), |i| (separators[i], &separators[i + 1..]));
        let mut chunks = Vec::new();
        let mut small: Vec<String> = Vec::new();
        for piece in split_keeping(text, sep) {
            if len(&piece) < self.size {
                small.push(piece);
                continue;
            }
            if !small.is_empty() {
                chunks.extend(self.merge(std::mem::take(&mut small)));
            }
            if rest.is_empty() {
                chunks.push(piece);
            } else {
                chunks.extend(self.split(&piece, rest));
            }
        }
        if !small.is_empty() {
            chunks.extend(self.merge(small));
        }
        chunks
    }

    /// Joins pieces into chunks of at most `size`, each starting with up to
    /// `overlap` characters of pieces from the chunk before.
    fn merge(&self, pieces: Vec<String>) -> Vec<String> {
        let mut chunks = Vec::new();
        let mut current: std::collections::VecDeque<(String, usize)> = Default::default();
        let mut total = 0usize;
        let emit = |current: &std::collections::VecDeque<(String, usize)>,
                    chunks: &mut Vec<String>| {
            let joined: String = current.iter().map(|(s, _)| s.as_str()).collect();
            let trimmed = joined.trim();
            if !trimmed.is_empty() {
                chunks.push(trimmed.to_string());
            }
        };
        for piece in pieces {
            let l = len(&piece);
            if total + l > self.size && !current.is_empty() {
                emit(&current, &mut chunks);
                while total > self.overlap || (total + l > self.size && total > 0) {
                    match current.pop_front() {
                        Some((_, first)) => total -= first,
                        None => break,
                    }
                }
            }
            current.push_back((piece, l));
            total += l;
        }
        emit(&current, &mut chunks);
        chunks
    }
}

/// Splits `text` into chunks (see the module docs). `chunk_size` ≥ 1 and
/// `overlap` < `chunk_size`.
pub fn split_text(text: &str, chunk_size: usize, overlap: usize) -> Vec<String> {
    Splitter {
        size: chunk_size.max(1),
        overlap,
    }
    .split(text, &SEPARATORS)
}

#[cfg(test)]
mod tests {
    use super::split_text;

    /// Expected chunks are LangChain's `RecursiveCharacterTextSplitter`
    /// (langchain-text-splitters, defaults) on the same inputs.
    #[test]
    fn chunks_and_overlaps_match_langchains_splitter_exactly() {
        let cases: [(&str, usize, usize, &[&str]); 5] = [
            (
                "Hello world.\n\nThis is a test of the splitter.\nSecond line here, with more words.\n\nLast paragraph!",
                20,
                5,
                &["Hello world.", "This is a test of", "of the splitter.", "Second line here,", "with more words.", "Last paragraph!"],
            ),
            (
                "one two three four five six seven eight nine ten eleven twelve",
                15,
                6,
                &["one two three", "three four", "four five six", "six seven", "seven eight", "eight nine ten", "ten eleven", "twelve"],
            ),
            ("abcdefghijklmnopqrstuvwxyz", 10, 3, &["abcdefghij", "hijklmnopq", "opqrstuvwx", "vwxyz"]),
            ("  leading spaces\n\n\n\ntrailing   \n", 8, 0, &["leading", "spaces", "trailin", "g"]),
            (
                "Ünïcödé wörds çan bé splït tôo, ëvén lóng ônes",
                12,
                4,
                &["Ünïcödé", "wörds çan", "çan bé", "bé splït", "tôo, ëvén", "lóng ônes"],
            ),
        ];
        for (text, size, overlap, want) in cases {
            assert_eq!(
                split_text(text, size, overlap),
                want,
                "{text:?} {size}/{overlap}"
            );
        }
    }

    #[test]
    fn every_chunk_fits_and_no_word_is_lost() {
        let text = "word ".repeat(500) + "\n\n" + &"other ".repeat(300);
        let chunks = split_text(&text, 100, 20);
        assert!(chunks.iter().all(|c| c.chars().count() <= 100));
        let words: usize = text.split_whitespace().count();
        let without_overlap: usize = chunks.iter().map(|c| c.split_whitespace().count()).sum();
        assert!(without_overlap >= words);
        assert!(split_text("", 10, 0).is_empty());
        assert!(split_text(" \n\n ", 10, 0).is_empty());
    }
}
