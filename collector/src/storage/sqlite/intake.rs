//! The telemetry intake on SQLite, and its fold into the indexed `telemetry` table.
//!
//! A commit of a few dozen single samples into `telemetry` would write one index page per
//! sample (1,000 circuits land on 1,000 different pages), and SQLite's WAL copies whole pages:
//! at 30,000 samples a second that is over 100 MB/s and most of the request's cost. So samples
//! are committed to `telemetry_intake` (append-only, no index: a page or two a commit) and a
//! fold thread moves them to `telemetry` about once a second, sorted by circuit, so each index
//! page is written once per fold instead of once per sample.
//!
//! The intake is a database file of its own (`<name>.intake.db` beside the main one), with
//! its own write connection, lock and WAL: the fold's commits, the main file's checkpoints and
//! every other write then never hold up a sample's commit (sharing the one writer, they
//! doubled commit times for half of every second, which set the POSTs' p99). Every connection
//! but the main writer attaches it as `intake`.
//!
//! The fold reads the rows to move on its own connection, sorts them, and moves them into the
//! main file in chunks of a few circuits, each chunk one short transaction that also records
//! how far the fold has got (`telemetry_fold`, in the main file, so rows and progress commit
//! together). The cycle's last chunk is synced; only then are the moved rows deleted from the
//! intake. Reads hide the intake rows already moved, so every sample is seen exactly once, and
//! a fold cut off by a crash resumes where its last chunk committed. A reader must take the
//! intake's snapshot before the main file's (see [`begin_read`]): the other way round, rows
//! moved and deleted between the two would be in neither.
//!
//! The progress counts intake ids, so the main file must know which intake file it counts
//! for: both hold a token (`telemetry_fold.intake_token`, `intake_pairing.token`), checked by
//! [`pair`] at migration. A missing or replaced intake file resets the progress.

use super::{open_connection, set_synchronous, SqliteSync, Writer};
use rusqlite::{params, Connection, DatabaseName, OptionalExtension};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How often the intake is folded.
const FOLD_EVERY: Duration = Duration::from_secs(1);
/// Most intake rows one fold cycle takes.
pub(super) const CYCLE_ROWS: i64 = 50_000;
/// About how many rows one chunk moves (a chunk ends at a circuit boundary). Chunks hold the
/// main writer, which samples no longer wait for; larger ones write fewer pages (each chunk
/// rewrites the table's last page and the index's upper pages): 1,000 wrote 3,500 pages a
/// second at 50,000 samples a second, 100 wrote 6,200.
const CHUNK_ROWS: usize = 1_000;
/// Intake rows deleted per transaction once moved.
const DELETE_ROWS: i64 = 1_000;
/// Past this many unfolded rows (the fold falls behind a flood of batches), samples go
/// straight into the indexed table: slower to store, but reads, which scan the intake, stay
/// fast.
pub(super) const INTAKE_LIMIT: i64 = 100_000;
/// A commit this large goes straight into the indexed table: it writes each index page once
/// for many samples anyway, and through the intake it would be written twice.
pub(super) const DIRECT_COMMIT: usize = 1_000;
/// The pause between two chunks, so that waiting sample commits take the writer first.
const BETWEEN_CHUNKS: Duration = Duration::from_micros(500);

/// The name the intake file is attached under.
const INTAKE: DatabaseName<'static> = DatabaseName::Attached("intake");

/// The WAL in use past which the intake's checkpointer holds the intake writer for a restart:
/// the intake holds about a second of samples, so its file and WAL stay small.
pub(super) const WAL_LIMIT_BYTES: u64 = 64 << 20;

/// The schema of the intake file, created when it is first opened. AUTOINCREMENT: ids must
/// never be reused, or a new sample could look already moved.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS intake.telemetry_intake (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    circuit_id       TEXT    NOT NULL,
    ts_ms            INTEGER NOT NULL,
    utilization_mbps REAL    NOT NULL,
    received_ms      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS intake.intake_pairing (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    token TEXT    NOT NULL
);";

/// The intake file of the database at `db`: `<stem>.intake.db` beside it.
pub fn intake_path(db: &Path) -> PathBuf {
    let stem = db.file_stem().unwrap_or(db.as_os_str()).to_string_lossy();
    db.with_file_name(format!("{stem}.intake.db"))
}

/// Opens a connection to the main file with the intake file attached as `intake`.
pub(super) fn open_with_intake(db: &Path, sync: SqliteSync) -> rusqlite::Result<Connection> {
    let conn = open_connection(db, sync)?;
    let intake = intake_path(db);
    let Some(intake) = intake.to_str() else {
        return Err(rusqlite::Error::InvalidPath(intake));
    };
    conn.execute("ATTACH DATABASE ?1 AS intake", [intake])?;
    // Per-database settings: `open_connection` set them for `main` only.
    conn.pragma_update(Some(INTAKE), "journal_mode", "WAL")?;
    set_synchronous(&conn, Some(INTAKE), sync)?;
    Ok(conn)
}

/// Starts a read of both files: the intake's snapshot is taken first (see the module's note).
/// Reads through the returned transaction see each sample once, moved or not.
pub(super) fn begin_read(conn: &Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    let tx = conn.unchecked_transaction()?;
    tx.prepare_cached("SELECT 1 FROM intake.telemetry_intake LIMIT 1")?
        .query_row([], |_| Ok(()))
        .optional()?;
    Ok(tx)
}

/// The intake's write connection (on the main file, for the circuits, with the intake
/// attached) and what it knows. It writes the intake file only.
pub(super) struct IntakeWriter {
    pub(super) conn: Connection,
    /// Circuit ids known to exist (circuits are never deleted), so storing a sample does not
    /// look each one up.
    pub(super) known_circuits: HashSet<String>,
    sync: SqliteSync,
    /// Rows in the intake, counted on first use and kept up to date after.
    pub(super) rows: Option<i64>,
}

impl IntakeWriter {
    /// Opens the intake writer, creating the intake file and its tables if needed. Like the
    /// main writer it never checkpoints: its own checkpoint thread does.
    pub(super) fn open(db: &Path, sync: SqliteSync) -> rusqlite::Result<IntakeWriter> {
        let conn = open_with_intake(db, sync)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.execute_batch(SCHEMA)?;
        Ok(IntakeWriter {
            conn,
            known_circuits: HashSet::new(),
            sync,
            rows: None,
        })
    }

    /// Runs `work` with the intake's `synchronous = NORMAL`, for commits that need no fsync of
    /// their own (deletes of moved rows): the next sample's commit syncs the WAL, and them.
    fn without_fsync<T>(
        &mut self,
        work: impl FnOnce(&mut IntakeWriter) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let relax = self.sync == SqliteSync::Full;
        if relax {
            set_synchronous(&self.conn, Some(INTAKE), SqliteSync::Normal)?;
        }
        let result = work(self);
        if relax {
            set_synchronous(&self.conn, Some(INTAKE), SqliteSync::Full)?;
        }
        result
    }

    /// Rows in the intake, counted once.
    pub(super) fn rows(&mut self) -> rusqlite::Result<i64> {
        if let Some(rows) = self.rows {
            return Ok(rows);
        }
        let rows =
            self.conn
                .query_row("SELECT count(*) FROM intake.telemetry_intake", [], |r| {
                    r.get(0)
                })?;
        self.rows = Some(rows);
        Ok(rows)
    }

    pub(super) fn count_removed(&mut self, removed: usize) {
        if let Some(rows) = self.rows.as_mut() {
            *rows -= removed as i64;
        }
    }
}

/// Checks that the main file's fold progress counts for this intake file, and resets it if
/// not (a new intake file, or one from another database): the progress then starts over, so
/// every row in the intake counts as not yet moved. Run at migration, before the fold starts.
pub(super) fn pair(
    writer: &Writer,
    intake: &mut IntakeWriter,
    file: &Path,
) -> rusqlite::Result<()> {
    let (expected, counted_upto): (Option<String>, i64) = writer.conn.query_row(
        "SELECT intake_token, max(folded_upto, cycle_upto) FROM telemetry_fold WHERE id = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let found: Option<String> = intake
        .conn
        .query_row(
            "SELECT token FROM intake.intake_pairing WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if found.is_some() && found == expected {
        return keep_ids_ahead(intake, counted_upto, file);
    }
    let waiting = intake.rows()?;
    if waiting > 0 {
        // A main file restored without its intake file, or beside another's: these rows may
        // be in `telemetry` already, but dropping them could lose samples.
        tracing::warn!(
            rows = waiting,
            intake = %file.display(),
            "the telemetry intake file does not belong to this database; its rows are folded in as new, so some may be stored twice"
        );
    }
    let token = found.unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()));
    // The intake first: cut off between the two, the next start finds them unpaired again.
    intake.conn.execute(
        "INSERT INTO intake.intake_pairing (id, token) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET token = excluded.token",
        [&token],
    )?;
    writer.conn.execute(
        "UPDATE telemetry_fold SET folded_upto = 0, cycle_upto = 0, done_below = '',
             intake_token = ?1 WHERE id = 1",
        [&token],
    )?;
    Ok(())
}

/// Raises the intake's id counter to the fold's progress if it is behind, as after a power
/// cut under `synchronous = normal` that lost intake commits the fold had already moved: new
/// samples would otherwise get ids the progress has passed, and be hidden as moved.
fn keep_ids_ahead(intake: &IntakeWriter, upto: i64, file: &Path) -> rusqlite::Result<()> {
    let seq: Option<i64> = intake
        .conn
        .query_row(
            "SELECT seq FROM intake.sqlite_sequence WHERE name = 'telemetry_intake'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if seq.unwrap_or(0) >= upto {
        return Ok(());
    }
    tracing::warn!(
        intake = %file.display(),
        ids_from = seq.unwrap_or(0),
        raised_to = upto,
        "the telemetry intake's ids were behind the fold's progress (commits lost in a crash); raised them"
    );
    let tx = intake.conn.unchecked_transaction()?;
    tx.execute(
        "DELETE FROM intake.sqlite_sequence WHERE name = 'telemetry_intake'",
        [],
    )?;
    tx.execute(
        "INSERT INTO intake.sqlite_sequence (name, seq) VALUES ('telemetry_intake', ?1)",
        [upto],
    )?;
    tx.commit()
}

/// The intake rows a reader must not see (they are in `telemetry` already), as a condition
/// on `intake.telemetry_intake` joined with `telemetry_fold f`.
pub(super) const NOT_YET_FOLDED: &str = "intake.telemetry_intake.id > f.folded_upto
    AND NOT (intake.telemetry_intake.id <= f.cycle_upto
             AND intake.telemetry_intake.circuit_id < f.done_below)";

/// How far the fold has got: intake ids up to `folded_upto` are all in `telemetry`; of those
/// up to `cycle_upto` (the cycle under way), the circuits sorting before `done_below` are.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FoldState {
    folded_upto: i64,
    cycle_upto: i64,
    done_below: String,
}

struct IntakeRow {
    circuit_id: String,
    ts_ms: i64,
    utilization_mbps: f64,
    received_ms: i64,
}

fn state(conn: &Connection) -> rusqlite::Result<FoldState> {
    conn.query_row(
        "SELECT folded_upto, cycle_upto, done_below FROM telemetry_fold WHERE id = 1",
        [],
        |r| {
            Ok(FoldState {
                folded_upto: r.get(0)?,
                cycle_upto: r.get(1)?,
                done_below: r.get(2)?,
            })
        },
    )
}

/// The cycle to run (resumed, or a new one over the oldest unfolded rows) and its rows
/// sorted by circuit and time; `None` when nothing waits. Reads in one transaction.
/// Also returns the state as read, which the first chunk's commit checks is unchanged.
fn plan(reader: &Connection) -> rusqlite::Result<Option<(FoldState, FoldState, Vec<IntakeRow>)>> {
    // The progress before the rows (the reverse of `begin_read`): the rows seen are then at
    // least those the progress counts on, and a fold in another process that moves on after
    // this read fails the first chunk's compare-and-set. (The other order could resume a cycle
    // another process started over rows this snapshot does not have, and close it.)
    let tx = reader.unchecked_transaction()?;
    let read = state(&tx)?;
    let mut cycle = read.clone();
    if cycle.cycle_upto <= cycle.folded_upto {
        let upto: Option<i64> = tx
            .query_row(
                "SELECT max(id) FROM (SELECT id FROM intake.telemetry_intake WHERE id > ?1
                  ORDER BY id LIMIT ?2)",
                params![cycle.folded_upto, CYCLE_ROWS],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        let Some(upto) = upto else {
            return Ok(None);
        };
        cycle.cycle_upto = upto;
        cycle.done_below = String::new();
    }
    let mut rows = tx
        .prepare(
            "SELECT circuit_id, ts_ms, utilization_mbps, received_ms FROM intake.telemetry_intake
              WHERE id > ?1 AND id <= ?2 AND circuit_id >= ?3",
        )?
        .query_map(
            params![cycle.folded_upto, cycle.cycle_upto, cycle.done_below],
            |r| {
                Ok(IntakeRow {
                    circuit_id: r.get(0)?,
                    ts_ms: r.get(1)?,
                    utilization_mbps: r.get(2)?,
                    received_ms: r.get(3)?,
                })
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    // Byte order, as SQLite's BINARY collation compares `done_below`.
    rows.sort_unstable_by(|a, b| {
        (a.circuit_id.as_bytes(), a.ts_ms).cmp(&(b.circuit_id.as_bytes(), b.ts_ms))
    });
    Ok(Some((read, cycle, rows)))
}

/// Chunks of about [`CHUNK_ROWS`] that never split a circuit.
fn chunks(rows: &[IntakeRow]) -> Vec<&[IntakeRow]> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < rows.len() {
        let mut end = (start + CHUNK_ROWS).min(rows.len());
        while end < rows.len() && rows[end].circuit_id == rows[end - 1].circuit_id {
            end += 1;
        }
        out.push(&rows[start..end]);
        start = end;
    }
    out
}

/// Moves one chunk and records the progress, in one transaction, if the progress is still
/// `before`; false (and nothing moved) if another fold got there first.
fn move_chunk(
    writer: &mut Writer,
    chunk: &[IntakeRow],
    before: &FoldState,
    after: &FoldState,
) -> rusqlite::Result<bool> {
    let tx = writer.conn.transaction()?;
    let claimed = tx.execute(
        "UPDATE telemetry_fold SET folded_upto = ?1, cycle_upto = ?2, done_below = ?3
          WHERE id = 1 AND folded_upto = ?4 AND cycle_upto = ?5 AND done_below = ?6",
        params![
            after.folded_upto,
            after.cycle_upto,
            after.done_below,
            before.folded_upto,
            before.cycle_upto,
            before.done_below
        ],
    )?;
    if claimed == 0 {
        return Ok(false);
    }
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO telemetry (circuit_id, ts, utilization_mbps, received_at)
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for row in chunk {
            insert.execute(params![
                row.circuit_id,
                row.ts_ms,
                row.utilization_mbps,
                row.received_ms
            ])?;
        }
    }
    tx.commit()?;
    Ok(true)
}

/// Deletes moved intake rows, a slice a transaction.
fn delete_moved(intake: &Mutex<IntakeWriter>, upto: i64) -> rusqlite::Result<()> {
    loop {
        let Ok(mut guard) = intake.lock() else {
            return Ok(());
        };
        // Lost in a power cut, a delete leaves moved rows that reads already hide.
        let deleted = guard.without_fsync(|w| {
            w.conn.execute(
                "DELETE FROM intake.telemetry_intake WHERE id IN
                   (SELECT id FROM intake.telemetry_intake WHERE id <= ?1 ORDER BY id LIMIT ?2)",
                params![upto, DELETE_ROWS],
            )
        })?;
        guard.count_removed(deleted);
        drop(guard);
        if (deleted as i64) < DELETE_ROWS {
            return Ok(());
        }
        std::thread::sleep(BETWEEN_CHUNKS);
    }
}

/// Runs one fold cycle: plans it on `reader`, moves it chunk by chunk through the main writer,
/// then deletes what moved through the intake writer. Returns how many samples moved.
/// `one_at_a_time` is held for the whole cycle: two cycles planned from the same state would
/// race (the second's first commit finds the state changed and stops, but cleanly only then).
pub(super) fn fold_cycle(
    reader: &Connection,
    writer: &Mutex<Writer>,
    intake: &Mutex<IntakeWriter>,
    one_at_a_time: &Mutex<()>,
) -> rusqlite::Result<usize> {
    let Ok(_cycle) = one_at_a_time.lock() else {
        return Ok(0);
    };
    let Some((mut before, cycle, rows)) = plan(reader)? else {
        return Ok(0);
    };
    let pieces = chunks(&rows);
    let closed = FoldState {
        folded_upto: cycle.cycle_upto,
        cycle_upto: cycle.cycle_upto,
        done_below: String::new(),
    };
    // A resumed cycle whose rows retention deleted has no chunk: it is just closed.
    let steps: Vec<(&[IntakeRow], FoldState)> = if pieces.is_empty() {
        vec![(&[], closed)]
    } else {
        pieces
            .iter()
            .enumerate()
            .map(|(i, chunk)| {
                let after = match pieces.get(i + 1) {
                    Some(next) => FoldState {
                        done_below: next[0].circuit_id.clone(),
                        ..cycle.clone()
                    },
                    None => closed.clone(),
                };
                (*chunk, after)
            })
            .collect()
    };
    let mut longest = Duration::ZERO;
    let last = steps.len() - 1;
    for (i, (chunk, after)) in steps.into_iter().enumerate() {
        {
            let Ok(mut guard) = writer.lock() else {
                return Ok(0);
            };
            let held = std::time::Instant::now();
            // Lost in a power cut, a fold commit takes its progress with it: its rows are
            // simply still in the intake. The last one is synced, even with `synchronous =
            // normal` configured, and the ones before it with it (one WAL, written in order),
            // before any row is deleted from the intake.
            let level = if i == last {
                SqliteSync::Full
            } else {
                SqliteSync::Normal
            };
            let moved = guard.synchronous_at(level, |w| move_chunk(w, chunk, &before, &after))?;
            if !moved {
                return Ok(0);
            }
            longest = longest.max(held.elapsed());
        }
        before = after;
        std::thread::sleep(BETWEEN_CHUNKS);
    }
    delete_moved(intake, cycle.cycle_upto)?;
    tracing::debug!(
        chunks = pieces.len(),
        longest_chunk_ms = longest.as_secs_f64() * 1e3,
        "fold cycle"
    );
    Ok(rows.len())
}

/// Folds every [`FOLD_EVERY`] (at once again while a backlog remains) until the store is
/// dropped, on a thread of its own with its own read connection.
pub(super) fn start_folder(
    path: PathBuf,
    writer: Weak<Mutex<Writer>>,
    intake: Weak<Mutex<IntakeWriter>>,
    one_at_a_time: Arc<Mutex<()>>,
) {
    let spawned = std::thread::Builder::new()
        .name("sqlite-fold".into())
        .spawn(move || {
            let reader = match open_with_intake(&path, SqliteSync::Normal) {
                Ok(conn) => conn,
                Err(err) => {
                    tracing::error!(error = %err, "cannot open the telemetry fold connection; new samples stay unindexed");
                    return;
                }
            };
            let mut backlog = false;
            loop {
                if !backlog {
                    std::thread::sleep(FOLD_EVERY);
                }
                let (Some(writer), Some(intake)) = (writer.upgrade(), intake.upgrade()) else {
                    return;
                };
                let started = std::time::Instant::now();
                backlog = match fold_cycle(&reader, &writer, &intake, &one_at_a_time) {
                    Ok(moved) => {
                        tracing::debug!(
                            moved,
                            ms = started.elapsed().as_secs_f64() * 1e3,
                            "folded the telemetry intake"
                        );
                        moved as i64 >= CYCLE_ROWS
                    }
                    Err(err) => {
                        // Reads still see every sample (in one table or the other); retry.
                        tracing::warn!(error = %err, "folding the telemetry intake failed; will retry");
                        false
                    }
                };
            }
        });
    if let Err(err) = spawned {
        tracing::error!(error = %err, "cannot start the telemetry fold thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(circuit: &str, ts_ms: i64) -> IntakeRow {
        IntakeRow {
            circuit_id: circuit.into(),
            ts_ms,
            utilization_mbps: 0.0,
            received_ms: 0,
        }
    }

    #[test]
    fn chunks_hold_whole_circuits() {
        let mut rows: Vec<IntakeRow> = (0..CHUNK_ROWS as i64 + 10).map(|t| row("A", t)).collect();
        rows.extend((0..5).map(|t| row("B", t)));
        rows.extend((0..CHUNK_ROWS as i64).map(|t| row("C", t)));
        let pieces = chunks(&rows);
        let sizes: Vec<usize> = pieces.iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![CHUNK_ROWS + 10, 5 + CHUNK_ROWS]);
        assert!(chunks(&[]).is_empty());
    }
}
