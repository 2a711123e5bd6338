//! Fleet plan statements both backends run as written (see [`super`]).

use const_format::concatcp;

pub const INFO_COLUMNS: &str = "version, author, created_at, comment, summary";

statements! {
    PLAN_HEAD = "SELECT COALESCE(MAX(version), 0) FROM plan_versions";

    PLAN_VERSION = concatcp!(
        "SELECT ",
        INFO_COLUMNS,
        ", document FROM plan_versions WHERE version = $1"
    );

    PLAN_VERSIONS = concatcp!(
        "SELECT ",
        INFO_COLUMNS,
        " FROM plan_versions ORDER BY version DESC LIMIT $1 OFFSET $2"
    );

    /// Takes a version number once: a concurrent save of the same number inserts nothing.
    PLAN_INSERT = "INSERT INTO plan_versions (version, document, author, created_at, comment, summary)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (version) DO NOTHING";
}
