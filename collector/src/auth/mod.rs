//! Operator authentication: API tokens with roles (viewer, operator, admin), which route needs
//! which role, and per-token rate limits. REST and the WebSocket go through [`guard::enforce`].
//!
//! A token is `nwt_` and 64 hex digits from the OS's random source; only its SHA-256 is
//! stored, so a database dump does not hand out access. SHA-256 without a salt is enough here
//! because the tokens are 256-bit random, not passwords.

pub mod guard;
pub mod policy;

pub use guard::Guard;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::domain::tokens::Role;

/// `[auth]`: who may call the API without a token, and how fast each token may call it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Role of a request that carries no token. Unset (the default): every `/api` call and
    /// `/ws` needs a token. `viewer` suits a wall display on a trusted network.
    pub anonymous_role: Option<Role>,
    /// `/health` answers without a token (for load balancers and systemd checks).
    pub open_health: bool,
    /// `/metrics` answers without a token (for Prometheus).
    pub open_metrics: bool,
    /// Requests per second each token may make, on average (0: no limit).
    pub rate_per_sec: u32,
    /// Requests a token may make at once above the average.
    pub burst: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            anonymous_role: None,
            open_health: true,
            open_metrics: true,
            rate_per_sec: 200,
            burst: 400,
        }
    }
}

impl AuthConfig {
    /// The first problem, as `field: message`.
    pub fn check(&self) -> Result<(), String> {
        if self.rate_per_sec > 0 && self.burst == 0 {
            return Err("auth.burst: must be 1 or more when auth.rate_per_sec is set".into());
        }
        Ok(())
    }
}

pub const TOKEN_PREFIX: &str = "nwt_";

/// A new random token, to be shown once.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex(&bytes))
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        hex.push(DIGITS[usize::from(b >> 4)] as char);
        hex.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    hex
}

/// A token's SHA-256: what is stored (as hex) and what the token cache is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub fn of(token: &str) -> Self {
        TokenDigest(Sha256::digest(token.as_bytes()).into())
    }

    /// Lowercase hex, as the database stores it.
    pub fn hex(&self) -> String {
        hex(&self.0)
    }
}

/// What is stored and looked up for a token.
pub fn hash_token(token: &str) -> String {
    TokenDigest::of(token).hex()
}

/// A token name: 1 to 64 letters, digits, `-`, `_` or `.`.
pub fn check_token_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name: {name:?} must be 1 to 64 letters, digits, '-', '_' or '.'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_to_fixed_hex() {
        let (a, b) = (generate_token(), generate_token());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == 68);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn roles_order_and_parse() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        for role in [Role::Viewer, Role::Operator, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root"
            .parse::<Role>()
            .unwrap_err()
            .contains("viewer, operator, admin"));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_token_name("noc-script_1.v2").is_ok());
        assert!(check_token_name("").is_err());
        assert!(check_token_name("has space").is_err());
        assert!(check_token_name(&"x".repeat(65)).is_err());
    }
}
