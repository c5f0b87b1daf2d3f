//! Spoken test clips with known text: Debian's flite (the `slt` voice) reads
//! sentences from the Harvard lists (IEEE 1969, public domain), FFmpeg packs the
//! speech as FLAC. `scripts/setup.sh` installs both.

use std::path::Path;
use std::process::Command;

use crate::run_tool;

/// Harvard sentences, lists 1 and 2.
pub const HARVARD: [&str; 20] = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
];

/// `text` spoken by flite, as FLAC bytes at 22050 Hz (so decoding resamples).
pub fn spoken_flac(text: &str, dir: &Path, name: &str) -> Result<Vec<u8>, String> {
    let wav = dir.join(format!("{name}.wav"));
    let flac = dir.join(format!("{name}.flac"));
    run_tool(
        Command::new("flite")
            .args(["-voice", "slt", "-t", text, "-o"])
            .arg(&wav),
        "flite (Debian flite)",
    )?;
    run_tool(
        Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(&wav)
            .args(["-ar", "22050", "-c:a", "flac"])
            .arg(&flac),
        "ffmpeg",
    )?;
    std::fs::read(&flac).map_err(|e| format!("{}: {e}", flac.display()))
}

/// Lower-case words without punctuation (apostrophes kept), for word error rates.
pub fn normalised_words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word-level edit distance between a reference and a hypothesis.
pub fn word_errors(reference: &[String], hypothesis: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut row = vec![i + 1; hypothesis.len() + 1];
        for (j, h) in hypothesis.iter().enumerate() {
            let sub = prev[j] + usize::from(r != h);
            row[j + 1] = sub.min(prev[j + 1] + 1).min(row[j] + 1);
        }
        prev = row;
    }
    prev[hypothesis.len()]
}

/// The word error rate of `hypotheses` against `references`, pooled over all.
pub fn word_error_rate(references: &[&str], hypotheses: &[String]) -> f64 {
    let mut errors = 0;
    let mut words = 0;
    for (r, h) in references.iter().zip(hypotheses) {
        let r = normalised_words(r);
        errors += word_errors(&r, &normalised_words(h));
        words += r.len();
    }
    errors as f64 / words.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_errors_count_substitutions_insertions_and_deletions() {
        let w = |s: &str| normalised_words(s);
        assert_eq!(word_errors(&w("the cat sat"), &w("The cat sat.")), 0);
        assert_eq!(word_errors(&w("the cat sat"), &w("the dog sat")), 1);
        assert_eq!(word_errors(&w("the cat sat"), &w("the cat sat down")), 1);
        assert_eq!(word_errors(&w("the cat sat"), &w("cat")), 2);
        assert!((word_error_rate(&["a b c d"], &["a x c".into()]) - 0.5).abs() < 1e-9);
    }
}
