//! Keeps the WAL bounded. The writer never checkpoints (`wal_autocheckpoint = 0`), so its
//! commits never pause for one; this thread copies the WAL back into the database instead.
//!
//! A passive checkpoint runs beside the writer but never lets the WAL start over: under
//! continuous commits there is always a frame newer than the ones it copied, so the file only
//! grows (8.2 GB beside a 124 MB database in one gRPC run). So once the frames in use pass a
//! limit, the thread holds the writer for a moment and restarts the WAL: the writer then
//! writes over the file from its start. A restart copies only what the passive passes just
//! before it left, so the held moment is mostly one fsync of the database file (0-35 ms
//! here). It does not shrink the file, which would also hold the writer while the filesystem
//! frees the blocks (80-170 ms for 300 MB here); the file is truncated once the writer has
//! been quiet for a whole pass instead.
//!
//! Each file has its own checkpoint thread: the main one, held through the main writer, and
//! the telemetry intake's, held through the intake writer.

use super::{open_connection, SqliteSync};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

/// The main file's WAL in use past which the writer is held for a restart, and the file size
/// past which it is truncated when quiet.
pub(super) const WAL_LIMIT_BYTES: u64 = 256 << 20;

const EVERY: Duration = Duration::from_secs(1);

/// Passive passes before holding the writer: each one copies what arrived during the last,
/// so the part left for the held moment shrinks.
const PASSIVE_PASSES: usize = 3;

/// Tries at the held checkpoint while a reader is still in the WAL, and the pause between
/// them, before it waits for the next pass.
const HELD_ATTEMPTS: usize = 10;
const READER_PAUSE: Duration = Duration::from_millis(2);

/// The outcome of one `PRAGMA wal_checkpoint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checkpoint {
    /// A reader or writer kept it from finishing.
    busy: bool,
    /// Frames in the WAL.
    frames: i64,
}

fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<Checkpoint> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok(Checkpoint {
            busy: row.get::<_, i64>(0)? != 0,
            frames: row.get(1)?,
        })
    })
}

fn wal_file_bytes(db: &Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).map_or(0, |m| m.len())
}

/// What a pass did beyond its passive checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Held {
    /// The WAL was within its limit.
    Nothing,
    /// The writer was held and the WAL restarted: the next commit writes from its start.
    Restarted,
    /// The writer was held and the WAL file emptied.
    Truncated,
    /// The writer was held but a reader kept the checkpoint from finishing.
    Refused,
}

/// The checkpoint connection and what it saw on its last pass.
pub(super) struct Checkpointer {
    conn: Connection,
    db: PathBuf,
    limit: u64,
    frame_bytes: u64,
    /// Frames in the WAL at the end of the last pass; the same count again means no commit
    /// came in between.
    last_frames: Option<i64>,
}

impl Checkpointer {
    pub(super) fn open(db: &Path, limit: u64) -> rusqlite::Result<Self> {
        let conn = open_connection(db, SqliteSync::Full)?;
        // SQLite's own busy wait sleeps in steps of milliseconds, here with the writer held; a
        // reader still in the WAL is waited for in `pass`, with the writer free.
        conn.busy_timeout(Duration::ZERO)?;
        let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok(Checkpointer {
            conn,
            db: db.to_path_buf(),
            limit,
            // Each frame is a page and a 24-byte header.
            frame_bytes: page as u64 + 24,
            last_frames: None,
        })
    }

    /// Passive checkpoints, then, with the writer held: a truncation if the file is over the
    /// limit and nothing was written since the last pass, or a restart if the frames in use
    /// are over it.
    pub(super) fn pass<W>(&mut self, writer: &Mutex<W>) -> rusqlite::Result<Held> {
        let mut seen = checkpoint(&self.conn, "PASSIVE")?;
        for _ in 1..PASSIVE_PASSES {
            let next = checkpoint(&self.conn, "PASSIVE")?;
            let arrived = next.frames != seen.frames;
            seen = next;
            if !arrived {
                break;
            }
        }
        let quiet = self.last_frames == Some(seen.frames);
        self.last_frames = Some(seen.frames);
        let in_use = seen.frames.max(0) as u64 * self.frame_bytes;
        // A restart leaves the frame count as it was until the next commit, so a quiet WAL
        // over the limit is truncated on the pass after, not restarted again.
        let (mode, done_means) = if quiet && wal_file_bytes(&self.db) > self.limit {
            ("TRUNCATE", Held::Truncated)
        } else if in_use > self.limit {
            ("RESTART", Held::Restarted)
        } else {
            return Ok(Held::Nothing);
        };
        for attempt in 0..HELD_ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(READER_PAUSE);
            }
            // Our own commits wait on this lock and wake the moment it is let go.
            let Ok(holding) = writer.lock() else {
                break;
            };
            let held = Instant::now();
            let done = checkpoint(&self.conn, mode)?;
            let held_ms = held.elapsed().as_secs_f64() * 1e3;
            drop(holding);
            tracing::debug!(
                mode,
                held_ms,
                attempt,
                busy = done.busy,
                frames = done.frames,
                "WAL checkpoint with the writer held"
            );
            if !done.busy {
                return Ok(done_means);
            }
        }
        Ok(Held::Refused)
    }
}

/// Checkpoints the file `db`, written through `writer`, every [`EVERY`] on a thread of its own
/// until the store is dropped, then tries to leave an empty WAL behind (a reader still in it
/// leaves it to the last connection to close).
pub(super) fn start<W: Send + 'static>(
    db: PathBuf,
    writer: Weak<Mutex<W>>,
    limit: u64,
    thread: &str,
) {
    let spawned = std::thread::Builder::new()
        .name(thread.into())
        .spawn(move || {
            let mut checkpointer = match Checkpointer::open(&db, limit) {
                Ok(checkpointer) => checkpointer,
                Err(err) => {
                    tracing::error!(error = %err, file = %db.display(), "cannot open the checkpoint connection; the WAL will grow");
                    return;
                }
            };
            let mut refused = 0u32;
            loop {
                std::thread::sleep(EVERY);
                let Some(writer) = writer.upgrade() else {
                    break;
                };
                match checkpointer.pass(&writer) {
                    Ok(Held::Refused) => {
                        refused += 1;
                        // A long read (a large export, a backup) holds the WAL; say so if it
                        // keeps on, since the file grows meanwhile.
                        if refused % 30 == 0 {
                            tracing::warn!(
                                passes = refused,
                                wal_bytes = wal_file_bytes(&db),
                                "readers keep the WAL from restarting"
                            );
                        }
                    }
                    Ok(_) => refused = 0,
                    Err(err) => tracing::warn!(error = %err, file = %db.display(), "WAL checkpoint failed; will retry"),
                }
            }
            let _ = checkpoint(&checkpointer.conn, "TRUNCATE");
        });
    if let Err(err) = spawned {
        tracing::error!(error = %err, "cannot start the checkpoint thread");
    }
}

#[cfg(test)]
mod tests {
    use super::super::Writer;
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    const LIMIT: u64 = 64 << 10;

    /// Commits 4 KiB rows one at a time through the writer, with a reader reading all along,
    /// until `stop`, counting them in `made`; returns how many commits it made.
    fn keep_writing(
        db: &Path,
        writer: Arc<Mutex<Writer>>,
        stop: Arc<AtomicBool>,
        made: Arc<AtomicUsize>,
    ) -> usize {
        let reader = open_connection(db, SqliteSync::Normal).unwrap();
        let reading = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _: i64 = reader
                        .query_row("SELECT count(*) FROM filler", [], |r| r.get(0))
                        .unwrap();
                }
            })
        };
        let mut commits = 0;
        while !stop.load(Ordering::Relaxed) {
            let guard = writer.lock().unwrap();
            guard
                .conn
                .execute(
                    "INSERT OR REPLACE INTO filler (id, body) VALUES (?1, zeroblob(4096))",
                    [commits % 64],
                )
                .unwrap();
            drop(guard);
            commits += 1;
            made.store(commits, Ordering::Relaxed);
        }
        reading.join().unwrap();
        commits
    }

    /// Calls `step` after every `every` commits of the writer, over `spell` commits. Counted
    /// in commits, not seconds, so a loaded machine changes how long it takes, not what it
    /// shows.
    fn each_commits(made: &AtomicUsize, spell: usize, every: usize, mut step: impl FnMut()) {
        let start = made.load(Ordering::Relaxed);
        let mut next = start + every;
        while next <= start + spell {
            while made.load(Ordering::Relaxed) < next {
                std::thread::sleep(Duration::from_millis(1));
            }
            step();
            next += every;
        }
    }

    #[test]
    fn the_wal_stays_bounded_under_continuous_commits() {
        // A spell of commits (each a few 4 KiB frames), a checkpoint every 250 of them.
        const SPELL: usize = 20_000;
        const EVERY: usize = 250;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("w.db");
        let writer = Writer::open(&db, SqliteSync::Normal).unwrap();
        writer
            .conn
            .execute_batch("CREATE TABLE filler (id INTEGER PRIMARY KEY, body BLOB)")
            .unwrap();
        let writer = Arc::new(Mutex::new(writer));
        let (stop, made) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let writing = {
            let (db, writer, stop, made) = (db.clone(), writer.clone(), stop.clone(), made.clone());
            std::thread::spawn(move || keep_writing(&db, writer, stop, made))
        };
        let mut checkpointer = Checkpointer::open(&db, LIMIT).unwrap();

        // Passive checkpoints alone, as before: the file only grows.
        each_commits(&made, SPELL, EVERY, || {
            checkpoint(&checkpointer.conn, "PASSIVE").unwrap();
        });
        let passive_only = wal_file_bytes(&db);
        // Empty it for the second spell (the connection does not wait for the reader itself).
        let emptied = (0..500).any(|_| {
            std::thread::sleep(READER_PAUSE);
            let _held = writer.lock().unwrap();
            !checkpoint(&checkpointer.conn, "TRUNCATE").unwrap().busy
        });
        assert!(emptied, "the reader never let the WAL be truncated");

        // The same spell with passes: the writer goes back to the start of the file.
        let (mut restarted, mut largest) = (0, 0);
        each_commits(&made, SPELL, EVERY, || {
            largest = largest.max(wal_file_bytes(&db));
            if checkpointer.pass(&writer).unwrap() == Held::Restarted {
                restarted += 1;
            }
        });
        stop.store(true, Ordering::Relaxed);
        let commits = writing.join().unwrap();

        assert!(commits >= 2 * SPELL, "the writer made {commits} commits");
        assert!(
            restarted >= 5,
            "{restarted} restarts in {} passes",
            SPELL / EVERY
        );
        // Restarts that wait for the reader come less often on a loaded machine, so the bound
        // is the passive spell's file, not a fixed share of it.
        assert!(
            largest < passive_only,
            "the WAL file reached {largest} bytes with passes, {passive_only} without"
        );
        // Once nothing is written, the file goes: on the second pass that sees no new frame
        // (the first may still restart). A last burst first, so the file is over the limit
        // whatever the spell's last pass did with it.
        {
            let guard = writer.lock().unwrap();
            for id in 0..64 {
                guard
                    .conn
                    .execute(
                        "INSERT OR REPLACE INTO filler (id, body) VALUES (?1, zeroblob(4096))",
                        [id],
                    )
                    .unwrap();
            }
        }
        assert!(wal_file_bytes(&db) > LIMIT);
        let quiet: Vec<Held> = (0..3)
            .map(|_| checkpointer.pass(&writer).unwrap())
            .collect();
        assert!(
            matches!(
                quiet[..],
                [
                    Held::Nothing | Held::Restarted,
                    Held::Truncated,
                    Held::Nothing
                ]
            ),
            "passes once quiet: {quiet:?}"
        );
        assert_eq!(wal_file_bytes(&db), 0);
    }
}
