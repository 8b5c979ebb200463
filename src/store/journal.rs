//! Reading trials.jsonl: one `TrialRecord` per line, in the order they were measured. A line
//! that does not parse (a write torn by a crash or power loss, or damage) is skipped and
//! reported; a second line with a trial number already read is ignored and reported, so every
//! reader (resume, report, status, export) sees each trial number once.

use super::{io, StoreError};
use crate::trial::TrialRecord;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// Result of reading the journal: good records and the lines that could not be used.
#[derive(Debug, Default)]
pub struct JournalRead {
    pub records: Vec<TrialRecord>,
    /// (1-based line number, reason) of unreadable lines.
    pub skipped: Vec<(usize, String)>,
    /// Lines with a trial number journaled on an earlier line: (1-based line, trial number,
    /// line of the copy kept). Only the first is read.
    pub duplicates: Vec<Duplicate>,
    /// Non-empty lines in the file.
    pub lines: usize,
}

/// A journal line ignored because its trial number was already read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duplicate {
    pub line: usize,
    pub trial: usize,
    pub first_line: usize,
    /// Whether it is a byte-for-byte copy of the first (a repeated write) or another trial
    /// under a reused number.
    pub identical: bool,
}

/// What a scan of the journal found besides the records it handed on.
#[derive(Debug, Default)]
pub struct JournalScan {
    pub skipped: Vec<(usize, String)>,
    pub duplicates: Vec<Duplicate>,
    pub lines: usize,
    /// Whether the file exists at all.
    pub exists: bool,
}

impl JournalScan {
    /// Whether the only unreadable line is the file's last one (a torn last write).
    pub fn torn_at_end_only(&self) -> bool {
        self.skipped.len() == 1 && self.skipped[0].0 == self.lines
    }
}

pub(super) fn ends_with_newline(path: &Path) -> Result<bool, StoreError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path).map_err(io(path))?;
    f.seek(SeekFrom::End(-1)).map_err(io(path))?;
    let mut b = [0u8; 1];
    f.read_exact(&mut b).map_err(io(path))?;
    Ok(b[0] == b'\n')
}

pub(crate) fn read_journal_file(path: &Path) -> Result<JournalRead, StoreError> {
    let mut records = Vec::new();
    let scan = scan_journal_file(path, |r| records.push(r))?;
    Ok(JournalRead {
        records,
        skipped: scan.skipped,
        duplicates: scan.duplicates,
        lines: scan.lines,
    })
}

/// Parse a journal line by line, handing each trial number's first record to `each`; a missing
/// journal is an empty one (`exists` says which).
pub(crate) fn scan_journal_file(
    path: &Path,
    mut each: impl FnMut(TrialRecord),
) -> Result<JournalScan, StoreError> {
    let mut scan = JournalScan::default();
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(scan),
        Err(e) => return Err(io(path)(e)),
    };
    scan.exists = true;
    // Trial number -> (line, hash of the line): enough to tell a repeated write from a reused
    // number without holding the records.
    let mut seen: BTreeMap<usize, (usize, u64)> = BTreeMap::new();
    for (i, line) in BufReader::new(f).split(b'\n').enumerate() {
        let line = line.map_err(io(path))?;
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        scan.lines = i + 1;
        match serde_json::from_str::<TrialRecord>(&text) {
            Ok(r) => {
                let h = fnv(text.trim().as_bytes());
                match seen.get(&r.trial) {
                    Some(&(first_line, first_hash)) => scan.duplicates.push(Duplicate {
                        line: i + 1,
                        trial: r.trial,
                        first_line,
                        identical: first_hash == h,
                    }),
                    None => {
                        seen.insert(r.trial, (i + 1, h));
                        each(r);
                    }
                }
            }
            Err(e) => scan.skipped.push((i + 1, e.to_string())),
        }
    }
    Ok(scan)
}

/// FNV-1a 64 of a line.
fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn line(n: usize, v: f64) -> String {
        let r = TrialRecord::for_test(n, Default::default(), v);
        serde_json::to_string(&r).unwrap()
    }

    #[test]
    fn each_trial_number_is_read_once_and_the_rest_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("trials.jsonl");
        let mut f = File::create(&p).unwrap();
        let text = [
            line(0, 1.0),
            line(1, 2.0),
            line(1, 2.0),
            "{\"trial\": 2, garbage".to_string(),
            String::new(),
            line(0, 9.0),
            line(2, 3.0),
        ]
        .join("\n");
        f.write_all(text.as_bytes()).unwrap();
        drop(f);
        let j = read_journal_file(&p).unwrap();
        let numbers: Vec<usize> = j.records.iter().map(|r| r.trial).collect();
        assert_eq!(numbers, [0, 1, 2]);
        assert_eq!(j.records[0].objective, Some(1.0), "the first copy wins");
        assert_eq!(j.skipped.len(), 1);
        assert_eq!(j.skipped[0].0, 4);
        assert_eq!(
            j.duplicates,
            [
                Duplicate {
                    line: 3,
                    trial: 1,
                    first_line: 2,
                    identical: true
                },
                Duplicate {
                    line: 6,
                    trial: 0,
                    first_line: 1,
                    identical: false
                }
            ]
        );
        assert_eq!(j.lines, 7);
        let scan = scan_journal_file(&p, |_| {}).unwrap();
        assert!(scan.exists && !scan.torn_at_end_only());
        let missing = scan_journal_file(&dir.path().join("none"), |_| {}).unwrap();
        assert!(!missing.exists && missing.lines == 0);
    }
}
