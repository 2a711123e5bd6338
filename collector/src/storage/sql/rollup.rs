//! Rollup statements both backends run as written (see [`super`]).

statements! {
    RAW_ROUNDS = "SELECT device_id, ts, sent, received, rtts FROM probe_results
         WHERE ts >= $1 AND ts < $2";

    OLDEST_RAW_ROUND = "SELECT MIN(ts) FROM probe_results";

    ROLLUPS = "SELECT bucket, rounds, answered, sent, received, rtt_min, rtt_mean, rtt_max, rtt_p95
         FROM probe_rollups
         WHERE resolution = $1 AND device_id = $2 AND bucket >= $3 AND bucket < $4
         ORDER BY bucket LIMIT $5";

    ROLLUP_WATERMARK = "SELECT done_at FROM rollup_watermarks WHERE resolution = $1";

    SET_ROLLUP_WATERMARK = "INSERT INTO rollup_watermarks (resolution, done_at) VALUES ($1, $2)
         ON CONFLICT (resolution) DO UPDATE SET done_at = excluded.done_at";
}
