//! The settlement journal on local disk: append-only segment files in one
//! directory (`<database>.journal/` beside an embedded database).
//!
//! A record is one line, `<seq> <record>\n`, written with a single `write` to
//! a file opened for appending. Once `write` returns, the bytes are in the
//! kernel's page cache: killing the process cannot lose them (only a crash of
//! the machine itself can lose the last moments, as with the database's own
//! `synchronous=NORMAL`). Which records are done is kept in memory only: a
//! record is replayed unless this process saw it committed, and replaying a
//! committed settlement changes nothing (settlements are idempotent).
//!
//! Segments roll over at `SEGMENT_BYTES`; the oldest segment is deleted once
//! every record in it is done, so the directory stays small while the
//! database keeps up, and grows only while it cannot.

use hub_core::ports::{Journal, JournalError};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A segment is closed and a new one started beyond this size.
const SEGMENT_BYTES: u64 = 4 * 1024 * 1024;

pub struct FileJournal {
    dir: PathBuf,
    state: Mutex<State>,
}

struct State {
    file: File,
    segment: u64,
    size: u64,
    next_seq: u64,
    /// Record → its segment, for every record not yet done.
    open: HashMap<u64, u64>,
    /// Segment → how many of its records are not yet done.
    outstanding: BTreeMap<u64, usize>,
}

fn err(e: impl std::fmt::Display) -> JournalError {
    JournalError(e.to_string())
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:010}.log"))
}

/// The segments in `dir`, oldest first.
fn segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut found: Vec<u64> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    found.sort_unstable();
    Ok(found)
}

/// The whole records of a segment: a last line without its newline was cut
/// short by a crash (its append never returned) and is skipped.
fn records(path: &Path) -> std::io::Result<Vec<(u64, Vec<u8>)>> {
    let bytes = std::fs::read(path)?;
    let whole = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(last) => &bytes[..last],
        None => return Ok(Vec::new()),
    };
    Ok(whole
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let space = line.iter().position(|&b| b == b' ')?;
            let seq = std::str::from_utf8(&line[..space]).ok()?.parse().ok()?;
            Some((seq, line[space + 1..].to_vec()))
        })
        .collect())
}

fn create_segment(dir: &Path, n: u64) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(segment_path(dir, n))
}

impl FileJournal {
    /// Opens (creating) the journal in `dir`. Records earlier processes left
    /// are pending until this one marks them done.
    pub fn open(dir: &Path) -> Result<FileJournal, JournalError> {
        std::fs::create_dir_all(dir).map_err(err)?;
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).map_err(err)?;
        let mut open = HashMap::new();
        let mut outstanding = BTreeMap::new();
        let mut next_seq = 1;
        let existing = segments(dir).map_err(err)?;
        for &n in &existing {
            let recs = records(&segment_path(dir, n)).map_err(err)?;
            for (seq, _) in &recs {
                open.insert(*seq, n);
                next_seq = next_seq.max(seq + 1);
            }
            outstanding.insert(n, recs.len());
        }
        let segment = existing.last().map_or(1, |n| n + 1);
        let file = create_segment(dir, segment).map_err(err)?;
        outstanding.insert(segment, 0);
        let journal = FileJournal {
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                file,
                segment,
                size: 0,
                next_seq,
                open,
                outstanding,
            }),
        };
        journal.drop_finished(&mut journal.lock());
        Ok(journal)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Deletes the oldest segments whose records are all done (in order, so
    /// no record outlives an older segment's deletion).
    fn drop_finished(&self, state: &mut State) {
        while let Some((&n, &left)) = state.outstanding.iter().next() {
            if left > 0 || n == state.segment {
                break;
            }
            if let Err(e) = std::fs::remove_file(segment_path(&self.dir, n)) {
                tracing::warn!("settlement journal: could not delete a finished segment: {e}");
                break;
            }
            state.outstanding.remove(&n);
        }
    }

    /// How many records are not done yet.
    pub fn open_records(&self) -> usize {
        self.lock().open.len()
    }
}

impl Journal for FileJournal {
    fn append(&self, record: &[u8]) -> Result<u64, JournalError> {
        if record.contains(&b'\n') {
            return Err(err("a record must be one line"));
        }
        let mut state = self.lock();
        let seq = state.next_seq;
        let mut line = Vec::with_capacity(record.len() + 24);
        line.extend_from_slice(seq.to_string().as_bytes());
        line.push(b' ');
        line.extend_from_slice(record);
        line.push(b'\n');
        // One write to a file opened for appending: whole, or (if the process
        // dies inside it) a cut line that replay skips — and then this call
        // never returned, so its caller never saw the end of its answer.
        state.file.write_all(&line).map_err(err)?;
        state.next_seq += 1;
        state.size += line.len() as u64;
        let segment = state.segment;
        state.open.insert(seq, segment);
        *state.outstanding.entry(segment).or_default() += 1;
        if state.size >= SEGMENT_BYTES {
            let next = segment + 1;
            match create_segment(&self.dir, next) {
                Ok(file) => {
                    state.file = file;
                    state.segment = next;
                    state.size = 0;
                    state.outstanding.insert(next, 0);
                }
                Err(e) => tracing::warn!("settlement journal: could not start a new segment: {e}"),
            }
        }
        Ok(seq)
    }

    fn done(&self, seq: u64) {
        let mut state = self.lock();
        if let Some(segment) = state.open.remove(&seq) {
            if let Some(left) = state.outstanding.get_mut(&segment) {
                *left = left.saturating_sub(1);
            }
            self.drop_finished(&mut state);
        }
    }

    fn pending(&self) -> Result<Vec<(u64, Vec<u8>)>, JournalError> {
        let (wanted, open): (Vec<u64>, HashMap<u64, u64>) = {
            let state = self.lock();
            let mut segs: Vec<u64> = state.open.values().copied().collect();
            segs.sort_unstable();
            segs.dedup();
            (segs, state.open.clone())
        };
        let mut out = Vec::new();
        for n in wanted {
            let path = segment_path(&self.dir, n);
            // Flushed already: every append is a completed write.
            for (seq, record) in records(&path).map_err(err)? {
                if open.get(&seq) == Some(&n) {
                    out.push((seq, record));
                }
            }
        }
        out.sort_by_key(|(seq, _)| *seq);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hub-journal-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn what_is_not_done_survives_a_restart() {
        let d = dir("restart");
        let j = FileJournal::open(&d).unwrap();
        let a = j.append(b"[\"a\"]").unwrap();
        let b = j.append(b"[\"b\"]").unwrap();
        let c = j.append(b"[\"c\"]").unwrap();
        j.done(b);
        assert_eq!(
            j.pending().unwrap(),
            vec![(a, b"[\"a\"]".to_vec()), (c, b"[\"c\"]".to_vec())]
        );
        drop(j);
        // A new process sees every record of the old one (done marks lived in memory).
        let j = FileJournal::open(&d).unwrap();
        let pending: Vec<u64> = j.pending().unwrap().into_iter().map(|(s, _)| s).collect();
        assert_eq!(pending, vec![a, b, c]);
        let d2 = j.append(b"[\"d\"]").unwrap();
        assert!(d2 > c, "sequence numbers keep growing across restarts");
        for s in [a, b, c, d2] {
            j.done(s);
        }
        assert!(j.pending().unwrap().is_empty());
        drop(j);
        // The old segment was deleted once all of it was done.
        assert_eq!(segments(&d).unwrap().len(), 1);
        let mode = std::fs::metadata(segment_path(&d, segments(&d).unwrap()[0]))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_line_cut_by_a_crash_is_skipped() {
        let d = dir("cut");
        let j = FileJournal::open(&d).unwrap();
        let a = j.append(b"[1]").unwrap();
        drop(j);
        let last = segments(&d).unwrap()[0];
        let mut f = OpenOptions::new().append(true).open(segment_path(&d, last)).unwrap();
        f.write_all(b"99 [\"cut sh").unwrap();
        drop(f);
        let j = FileJournal::open(&d).unwrap();
        assert_eq!(j.pending().unwrap(), vec![(a, b"[1]".to_vec())]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn segments_roll_over_and_finished_ones_go() {
        let d = dir("roll");
        let j = FileJournal::open(&d).unwrap();
        let big = vec![b'x'; 1024 * 1024];
        let seqs: Vec<u64> = (0..9).map(|_| j.append(&big).unwrap()).collect();
        assert!(segments(&d).unwrap().len() >= 3);
        for s in &seqs {
            j.done(*s);
        }
        assert_eq!(segments(&d).unwrap().len(), 1, "only the current segment is left");
        assert_eq!(j.open_records(), 0);
        let _ = std::fs::remove_dir_all(&d);
    }
}
