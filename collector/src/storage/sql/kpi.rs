//! Kpi statements both backends run as written (see [`super`]).

use super::Statement;

pub const KPI_FILES: Statement = statement!(
    "SELECT name, interval_end, size, modified_ms FROM kpi_files WHERE interval_end >= $1"
);

pub const KPI_COMPUTED: Statement = statement!(
    "SELECT start_at FROM kpi_computed WHERE granularity = $1 AND start_at >= $2
     ORDER BY start_at"
);

pub const MARK_KPI_COMPUTED: Statement = statement!(
    "INSERT INTO kpi_computed (granularity, start_at, end_at, computed_at)
     VALUES ($1, $2, $3, $4)
     ON CONFLICT (granularity, start_at) DO UPDATE SET computed_at = excluded.computed_at"
);

pub const DELETE_KPI_ISSUES: Statement =
    statement!("DELETE FROM kpi_issues WHERE interval_end = $1");

pub const KPI_ISSUES: Statement = statement!(
    "SELECT interval_end, file, line, message, recorded_at, reason FROM kpi_issues
     ORDER BY id DESC LIMIT $1"
);

/// Every statement here, by name, for the test that prepares them on both backends.
pub const ALL: &[(&str, Statement)] = &[
    ("kpi::KPI_FILES", KPI_FILES),
    ("kpi::KPI_COMPUTED", KPI_COMPUTED),
    ("kpi::MARK_KPI_COMPUTED", MARK_KPI_COMPUTED),
    ("kpi::DELETE_KPI_ISSUES", DELETE_KPI_ISSUES),
    ("kpi::KPI_ISSUES", KPI_ISSUES),
];
