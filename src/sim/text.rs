//! Token-ish filler text for simulated answers, and the crude tokenizer the simulator counts
//! prompt tokens with (about 4 characters per token, as for English with these vocabularies).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

const WORDS: &[&str] = &[
    "the",
    "sky",
    "looks",
    "blue",
    "because",
    "sunlight",
    "scatters",
    "off",
    "air",
    "molecules",
    "and",
    "shorter",
    "wavelengths",
    "are",
    "scattered",
    "more",
    "strongly",
    "than",
    "longer",
    "ones",
    "this",
    "effect",
    "is",
    "called",
    "Rayleigh",
    "scattering",
    "so",
    "when",
    "you",
    "look",
    "up",
    "during",
    "day",
    "light",
    "reaches",
    "your",
    "eyes",
    "from",
    "every",
    "direction",
    "at",
    "sunset",
    "path",
    "through",
    "atmosphere",
    "grows",
    "which",
    "leaves",
    "red",
    "orange",
    "tones",
    "in",
    "a",
    "simple",
    "model",
    "we",
    "can",
    "say",
    "that",
    "of",
    "it",
];

/// Produces one token at a time: mostly " word", sometimes a word split in two pieces, and
/// punctuation at the end of sentences.
pub(crate) struct TextGen {
    rng: ChaCha8Rng,
    emitted: usize,
    words_in_sentence: usize,
    sentence_len: usize,
    pending: Option<String>,
}

impl TextGen {
    pub fn new(rng: ChaCha8Rng) -> TextGen {
        let mut g = TextGen {
            rng,
            emitted: 0,
            words_in_sentence: 0,
            sentence_len: 0,
            pending: None,
        };
        g.sentence_len = g.rng.random_range(6..16);
        g
    }

    pub fn next_token(&mut self) -> String {
        self.emitted += 1;
        if let Some(piece) = self.pending.take() {
            return piece;
        }
        if self.words_in_sentence >= self.sentence_len {
            self.words_in_sentence = 0;
            self.sentence_len = self.rng.random_range(6..16);
            return if self.rng.random_bool(0.2) {
                ".\n\n"
            } else {
                "."
            }
            .to_string();
        }
        self.words_in_sentence += 1;
        let word = WORDS[self.rng.random_range(0..WORDS.len())];
        let lead = if self.emitted == 1 { "" } else { " " };
        let word = if self.words_in_sentence == 1 {
            capitalize(word)
        } else {
            word.to_string()
        };
        if word.len() > 6 && self.rng.random_bool(0.3) {
            let cut = word.len() / 2;
            self.pending = Some(word[cut..].to_string());
            return format!("{lead}{}", &word[..cut]);
        }
        format!("{lead}{word}")
    }

    /// `n` tokens joined.
    pub fn text(&mut self, n: u32) -> String {
        (0..n).map(|_| self.next_token()).collect()
    }
}

fn capitalize(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Tokens of a piece of text: about 4 characters each.
pub(crate) fn count_tokens(text: &str) -> u32 {
    (text.chars().count() as u32).div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn tokens_are_deterministic_and_wordy() {
        let a = TextGen::new(ChaCha8Rng::seed_from_u64(1)).text(40);
        let b = TextGen::new(ChaCha8Rng::seed_from_u64(1)).text(40);
        assert_eq!(a, b);
        assert!(a.split_whitespace().count() > 15, "{a}");
        assert!(!a.starts_with(' '));
    }

    #[test]
    fn counts_tokens() {
        assert_eq!(count_tokens(""), 0);
        assert_eq!(count_tokens("Why is the sky blue?"), 5);
    }
}
