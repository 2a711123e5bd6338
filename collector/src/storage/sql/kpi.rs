//! Kpi statements both backends run as written (see [`super`]).

statements! {
    KPI_FILES = "SELECT name, interval_end, size, modified_ms FROM kpi_files WHERE interval_end >= $1";

    KPI_COMPUTED = "SELECT start_at FROM kpi_computed WHERE granularity = $1 AND start_at >= $2
         ORDER BY start_at";

    MARK_KPI_COMPUTED = "INSERT INTO kpi_computed (granularity, start_at, end_at, computed_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (granularity, start_at) DO UPDATE SET computed_at = excluded.computed_at";

    DELETE_KPI_ISSUES = "DELETE FROM kpi_issues WHERE interval_end = $1";

    KPI_ISSUES = "SELECT interval_end, file, line, message, recorded_at, reason FROM kpi_issues
         ORDER BY id DESC LIMIT $1";
}
