//! Tokens statements both backends run as written (see [`super`]).

use const_format::concatcp;

pub const TOKEN_COLUMNS: &str = "id, name, role, created_at, revoked_at";

statements! {
    CERT_REVOCATIONS = "SELECT id, agent_id, serial, revoked_at, reason FROM cert_revocations ORDER BY id";

    TOKEN_BY_HASH = concatcp!(
        "SELECT ",
        TOKEN_COLUMNS,
        " FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL"
    );

    TOKENS = concatcp!(
        "SELECT ",
        TOKEN_COLUMNS,
        " FROM api_tokens ORDER BY id"
    );

    REVOKE_TOKEN = "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";
}
