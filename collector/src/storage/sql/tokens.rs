//! Tokens statements both backends run as written (see [`super`]).

use super::Statement;
use const_format::concatcp;

pub const TOKEN_COLUMNS: &str = "id, name, role, created_at, revoked_at";

pub const CERT_REVOCATIONS: Statement =
    statement!("SELECT id, agent_id, serial, revoked_at, reason FROM cert_revocations ORDER BY id");

pub const TOKEN_BY_HASH: Statement = statement!(concatcp!(
    "SELECT ",
    TOKEN_COLUMNS,
    " FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL"
));

pub const TOKENS: Statement = statement!(concatcp!(
    "SELECT ",
    TOKEN_COLUMNS,
    " FROM api_tokens ORDER BY id"
));

pub const REVOKE_TOKEN: Statement =
    statement!("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL");

/// Every statement here, by name, for the test that prepares them on both backends.
pub const ALL: &[(&str, Statement)] = &[
    ("tokens::CERT_REVOCATIONS", CERT_REVOCATIONS),
    ("tokens::TOKEN_BY_HASH", TOKEN_BY_HASH),
    ("tokens::TOKENS", TOKENS),
    ("tokens::REVOKE_TOKEN", REVOKE_TOKEN),
];
