//! The telemetry intake on SQLite, and its fold into the indexed `telemetry` table.
//!
//! A commit of a few dozen single samples into `telemetry` would write one index page per
//! sample (1,000 circuits land on 1,000 different pages), and SQLite's WAL copies whole pages:
//! at 30,000 samples a second that is over 100 MB/s and most of the request's cost. So samples
//! are committed to `telemetry_intake` (append-only, no index: a page or two a commit) and a
//! fold thread moves them to `telemetry` about once a second, sorted by circuit, so each index
//! page is written once per fold instead of once per sample.
//!
//! The fold must not hold the writer long: every sample's commit waits for it. So it reads the
//! rows to move on its own read connection, sorts them, and moves them in chunks of a few
//! circuits, each chunk one short transaction that also records how far the fold has got
//! (`telemetry_fold`). Reads hide the intake rows already moved, so every sample is seen
//! exactly once, and a fold cut off by a crash resumes where its last chunk committed.

use super::Writer;
use rusqlite::{params, Connection, OptionalExtension};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How often the intake is folded.
const FOLD_EVERY: Duration = Duration::from_secs(1);
/// Most intake rows one fold cycle takes.
pub(super) const CYCLE_ROWS: i64 = 50_000;
/// About how many rows one chunk moves (a chunk ends at a circuit boundary). A chunk of 500
/// held the writer up to 3.6 ms, which showed in the single POSTs' p99; 100 holds it under 1 ms.
const CHUNK_ROWS: usize = 100;
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

/// The intake rows a reader must not see (they are in `telemetry` already), as a condition
/// on `telemetry_intake` joined with `telemetry_fold f`.
pub(super) const NOT_YET_FOLDED: &str = "telemetry_intake.id > f.folded_upto
    AND NOT (telemetry_intake.id <= f.cycle_upto AND telemetry_intake.circuit_id < f.done_below)";

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
/// sorted by circuit and time; `None` when nothing waits. Reads one snapshot.
/// Also returns the state as read, which the first chunk's commit checks is unchanged.
fn plan(reader: &Connection) -> rusqlite::Result<Option<(FoldState, FoldState, Vec<IntakeRow>)>> {
    let tx = reader.unchecked_transaction()?;
    let read = state(&tx)?;
    let mut cycle = read.clone();
    if cycle.cycle_upto <= cycle.folded_upto {
        let upto: Option<i64> = tx
            .query_row(
                "SELECT max(id) FROM (SELECT id FROM telemetry_intake WHERE id > ?1
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
            "SELECT circuit_id, ts_ms, utilization_mbps, received_ms FROM telemetry_intake
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
            "INSERT INTO telemetry (circuit_id, ts_ms, utilization_mbps, received_ms)
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
fn delete_moved(writer: &Mutex<Writer>, upto: i64) -> rusqlite::Result<()> {
    loop {
        let Ok(mut guard) = writer.lock() else {
            return Ok(());
        };
        // Lost in a power cut, a delete leaves moved rows that reads already hide.
        let deleted = guard.without_fsync(|w| {
            w.conn.execute(
                "DELETE FROM telemetry_intake WHERE id IN
                   (SELECT id FROM telemetry_intake WHERE id <= ?1 ORDER BY id LIMIT ?2)",
                params![upto, DELETE_ROWS],
            )
        })?;
        if let Some(rows) = guard.intake_rows.as_mut() {
            *rows -= deleted as i64;
        }
        drop(guard);
        if (deleted as i64) < DELETE_ROWS {
            return Ok(());
        }
        std::thread::sleep(BETWEEN_CHUNKS);
    }
}

/// Runs one fold cycle: plans it on `reader`, moves it chunk by chunk through the writer,
/// then deletes what moved from the intake. Returns how many samples moved.
/// `one_at_a_time` is held for the whole cycle: two cycles planned from the same state would
/// race (the second's first commit finds the state changed and stops, but cleanly only then).
pub(super) fn fold_cycle(
    reader: &Connection,
    writer: &Mutex<Writer>,
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
    for (chunk, after) in steps {
        {
            let Ok(mut guard) = writer.lock() else {
                return Ok(0);
            };
            let held = std::time::Instant::now();
            // Lost in a power cut, a fold commit takes its progress with it: its rows are
            // simply still in the intake.
            if !guard.without_fsync(|w| move_chunk(w, chunk, &before, &after))? {
                return Ok(0);
            }
            longest = longest.max(held.elapsed());
        }
        before = after;
        std::thread::sleep(BETWEEN_CHUNKS);
    }
    delete_moved(writer, cycle.cycle_upto)?;
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
    path: std::path::PathBuf,
    writer: Weak<Mutex<Writer>>,
    one_at_a_time: Arc<Mutex<()>>,
) {
    let spawned = std::thread::Builder::new()
        .name("sqlite-fold".into())
        .spawn(move || {
            let reader = match super::open_connection(&path, super::SqliteSync::Normal) {
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
                let Some(writer) = writer.upgrade() else {
                    return;
                };
                let started = std::time::Instant::now();
                backlog = match fold_cycle(&reader, &writer, &one_at_a_time) {
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
