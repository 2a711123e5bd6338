//! Poi statements both backends run as written (see [`super`]).

use const_format::concatcp;

pub const GRAPH_COLUMNS: &str =
    "source, graph_id, title, pattern, poi_code, poi_name, circuit_id, capacity_bps,
    capacity_from, traffic_class, direction, timezone, first_seen, last_seen,
    step_secs";

pub const POI_COLUMNS: &str =
    "code, name, state, latitude, longitude, provider, capacity_bps, notes,
    in_reference";

pub const MAXOUT_COLUMNS: &str =
    "id, source, graph_id, poi_code, circuit_id, direction, start_at, end_at, samples,
    peak_bps, peak_pct, capacity_bps, detected_at, alerted_at";

statements! {
    SAMPLES = "SELECT ts, in_bps, out_bps, in_pct, out_pct FROM poi_samples
         WHERE source = $1 AND graph_id = $2 AND ts >= $3 AND ts < $4 ORDER BY ts";

    OVERLAPPING_MAXOUTS = concatcp!(
        "SELECT ",
        MAXOUT_COLUMNS,
        " FROM poi_maxouts
                   WHERE source = $1 AND graph_id = $2 AND direction = $3
                     AND start_at <= $4 AND end_at >= $5
                   ORDER BY start_at, id"
    );

    DELETE_MAXOUT = "DELETE FROM poi_maxouts WHERE id = $1";

    UPDATE_MAXOUT = "UPDATE poi_maxouts SET start_at = $2, end_at = $3, samples = $4,
             peak_bps = $5, peak_pct = $6, capacity_bps = $7,
             poi_code = $8, circuit_id = $9
         WHERE id = $1";

    INSERT_MAXOUT = concatcp!(
        "INSERT INTO poi_maxouts (source, graph_id, poi_code, circuit_id,
                       direction, start_at, end_at, samples, peak_bps, peak_pct,
                       capacity_bps, detected_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                   RETURNING ",
        MAXOUT_COLUMNS
    );

    SAVE_SCRAPE_RUN = "INSERT INTO scrape_runs (source, started_at, finished_at, fetched, samples, skipped,
             failed)
         VALUES ($1, $2, $3, $4, $5, $6, $7)";

    UNALERTED_MAXOUTS = concatcp!(
        "SELECT ",
        MAXOUT_COLUMNS,
        " FROM poi_maxouts
                   WHERE alerted_at IS NULL ORDER BY id LIMIT $1"
    );

    MARK_MAXOUT_ALERTED = "UPDATE poi_maxouts SET alerted_at = $2 WHERE id = $1";

    POIS = concatcp!(
        "SELECT ",
        POI_COLUMNS,
        " FROM pois
                   WHERE code IN (SELECT poi_code FROM cacti_graphs) ORDER BY code"
    );

    POI = concatcp!(
        "SELECT ",
        POI_COLUMNS,
        " FROM pois WHERE code = $1"
    );

    POI_GRAPHS = concatcp!(
        "SELECT ",
        GRAPH_COLUMNS,
        " FROM cacti_graphs WHERE poi_code = $1
                   ORDER BY source, graph_id"
    );

    SCRAPE_RUNS = "SELECT source, started_at, finished_at, fetched, samples, skipped, failed
         FROM scrape_runs ORDER BY id DESC LIMIT $1";

    RELEASE_JOB = "DELETE FROM job_leases WHERE name = $1 AND holder = $2";

    CLAIM_JOB = "INSERT INTO job_leases (name, holder, until) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
         WHERE job_leases.holder = excluded.holder OR job_leases.until < $4";
}
