//! Bounded text from programs: what a child prints is kept as its first and last bytes with a
//! count of what was cut, never whole, so a runaway program (a 10 MB line without a newline, a
//! log that never stops) cannot grow the tuner's memory or the journal. Every error text a
//! backend builds from program or server output goes through `bound_text`.

use std::collections::VecDeque;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The longest error text a failed trial keeps (bytes, before the cut marker).
pub const ERROR_TEXT_MAX: usize = 4000;

/// The marker between the head and the tail of a cut text.
fn marker(cut: u64) -> String {
    format!("[... {cut} bytes cut ...]")
}

/// `text` if it is at most `max` bytes long, else its first and last bytes (about `max` in all,
/// on character boundaries) around a "[... N bytes cut ...]" marker.
pub fn bound_text(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut head = max / 3;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - (max - max / 3);
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{}{}{}",
        &text[..head],
        marker((tail - head) as u64),
        &text[tail..]
    )
}

/// A stream as far as it is kept: its first `head_max` bytes, its last `tail_max` bytes, and
/// how many bytes it had in all.
#[derive(Debug)]
pub struct Capture {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    head_max: usize,
    tail_max: usize,
    total: u64,
}

impl Capture {
    pub fn new(head_max: usize, tail_max: usize) -> Capture {
        Capture {
            head: Vec::new(),
            tail: VecDeque::new(),
            head_max,
            tail_max,
            total: 0,
        }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let room = self.head_max - self.head.len();
        if room > 0 {
            let n = room.min(bytes.len());
            self.head.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
        if self.tail_max == 0 {
            return;
        }
        if bytes.len() >= self.tail_max {
            self.tail.clear();
            bytes = &bytes[bytes.len() - self.tail_max..];
        }
        let over = (self.tail.len() + bytes.len()).saturating_sub(self.tail_max);
        self.tail.drain(..over);
        self.tail.extend(bytes);
    }

    /// Bytes seen in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes neither in the head nor in the tail.
    pub fn cut(&self) -> u64 {
        self.total - (self.head.len() + self.tail.len()) as u64
    }

    /// The last bytes kept, as text (lossy UTF-8); the whole stream when nothing was cut.
    pub fn tail_text(&self) -> String {
        let (a, b) = self.tail.as_slices();
        let mut bytes = Vec::with_capacity(self.head.len() + self.tail.len());
        if self.cut() == 0 {
            bytes.extend_from_slice(&self.head);
        }
        bytes.extend_from_slice(a);
        bytes.extend_from_slice(b);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The stream as kept: head, a "[... N bytes cut ...]" marker where bytes were dropped,
    /// tail (lossy UTF-8).
    pub fn text(&self) -> String {
        if self.cut() == 0 {
            return self.tail_text();
        }
        let (a, b) = self.tail.as_slices();
        let mut tail = a.to_vec();
        tail.extend_from_slice(b);
        format!(
            "{}{}{}",
            String::from_utf8_lossy(&self.head),
            marker(self.cut()),
            String::from_utf8_lossy(&tail)
        )
    }
}

/// Read a pipe to its end (or a read error) into a capture.
pub async fn capture<R: AsyncRead + Unpin>(mut r: R, mut into: Capture) -> Capture {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return into,
            Ok(n) => into.push(&buf[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_text_is_kept_and_long_text_is_cut_with_a_count() {
        assert_eq!(bound_text("abc", 10), "abc");
        let long = "x".repeat(10_000_000);
        let b = bound_text(&long, 300);
        assert!(b.len() < 300 + 40, "{}", b.len());
        assert!(b.contains("[... 9999700 bytes cut ...]"), "{b}");
    }

    #[test]
    fn capture_keeps_head_and_tail_of_ten_megabytes() {
        let mut c = Capture::new(100, 200);
        let line: Vec<u8> = (0..10_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        for chunk in line.chunks(8191) {
            c.push(chunk);
        }
        assert_eq!(c.total(), 10_000_000);
        assert_eq!(c.cut(), 10_000_000 - 300);
        let text = c.text();
        assert!(text.starts_with(std::str::from_utf8(&line[..100]).unwrap()));
        assert!(text.ends_with(std::str::from_utf8(&line[line.len() - 200..]).unwrap()));
        assert!(text.contains("[... 9999700 bytes cut ...]"));
        assert_eq!(c.tail_text().len(), 200);
    }

    proptest! {
        /// Whatever the chunks, a capture holds exactly the stream's first and last bytes, and
        /// a bounded text stays bounded and keeps both ends.
        #[test]
        fn capture_matches_the_stream(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20),
            head in 0usize..50,
            tail in 0usize..300,
        ) {
            let mut c = Capture::new(head, tail);
            let all: Vec<u8> = chunks.concat();
            for ch in &chunks {
                c.push(ch);
            }
            prop_assert_eq!(c.total(), all.len() as u64);
            let kept_head = &all[..head.min(all.len())];
            prop_assert_eq!(&c.head[..], kept_head);
            let rest = &all[kept_head.len()..];
            let kept_tail = &rest[rest.len().saturating_sub(tail)..];
            prop_assert_eq!(c.tail.iter().copied().collect::<Vec<u8>>(), kept_tail.to_vec());
        }

        #[test]
        fn bound_text_is_bounded(s in "\\PC{0,400}", max in 8usize..200) {
            let b = bound_text(&s, max);
            prop_assert!(b.len() <= max + 40);
            if s.len() <= max {
                prop_assert_eq!(b, s);
            }
        }
    }
}
