//! Operator API tokens and agent certificate revocations on both backends: a token found by
//! its hash until revoked, one unrevoked token per name, and revocations listed as recorded.

use super::store_suite;
use crate::support::at;
use netwarden_collector::storage::tokens::{ApiToken, CertRevocation, Role};
use netwarden_collector::storage::Store;
use std::sync::Arc;

store_suite!(
    a_created_token_is_found_by_its_hash_with_its_name_and_role,
    a_second_unrevoked_token_with_the_same_name_is_refused,
    a_revoked_token_is_no_longer_found_by_its_hash,
    revoking_a_token_frees_its_name,
    tokens_are_listed_oldest_first_revoked_ones_included,
    certificate_revocations_by_serial_and_by_agent_are_listed_oldest_first,
    a_revocation_naming_neither_agent_nor_serial_is_refused,
);

const T: i64 = 1_800_000_000_000;
const HOUR: i64 = 3_600_000;

async fn create(store: &Arc<dyn Store>, name: &str, role: Role, hash: &str, ms: i64) -> ApiToken {
    store
        .create_token(name, role, hash, at(ms))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{name} was refused"))
}

async fn a_created_token_is_found_by_its_hash_with_its_name_and_role(store: Arc<dyn Store>) {
    let noc = create(&store, "noc", Role::Operator, "hash-noc", T).await;
    assert_eq!(
        noc,
        ApiToken {
            id: noc.id,
            name: "noc".into(),
            role: Role::Operator,
            created_at: at(T),
            revoked_at: None,
        }
    );
    let wall = create(&store, "wall", Role::Viewer, "hash-wall", T + 1).await;
    let root = create(&store, "root", Role::Admin, "hash-root", T + 2).await;
    assert!(noc.id != wall.id && wall.id != root.id && noc.id != root.id);
    assert_eq!(store.token_by_hash("hash-noc").await.unwrap(), Some(noc));
    assert_eq!(store.token_by_hash("hash-wall").await.unwrap(), Some(wall));
    let found = store.token_by_hash("hash-root").await.unwrap().unwrap();
    assert_eq!((found.name.as_str(), found.role), ("root", Role::Admin));
    assert_eq!(store.token_by_hash("hash-unknown").await.unwrap(), None);
    assert_eq!(store.token_by_hash("").await.unwrap(), None);
}

async fn a_second_unrevoked_token_with_the_same_name_is_refused(store: Arc<dyn Store>) {
    let first = create(&store, "wall", Role::Viewer, "hash-1", T).await;
    let second = store
        .create_token("wall", Role::Admin, "hash-2", at(T + HOUR))
        .await
        .unwrap();
    assert_eq!(second, None, "the name is taken");
    assert_eq!(store.tokens().await.unwrap(), vec![first.clone()]);
    assert_eq!(store.token_by_hash("hash-2").await.unwrap(), None);
    assert_eq!(store.token_by_hash("hash-1").await.unwrap(), Some(first));
    // Names are compared exactly: another name is another token.
    create(&store, "wall-2", Role::Viewer, "hash-3", T + HOUR).await;
    assert_eq!(store.tokens().await.unwrap().len(), 2);
}

async fn a_revoked_token_is_no_longer_found_by_its_hash(store: Arc<dyn Store>) {
    let token = create(&store, "prom", Role::Viewer, "hash-prom", T).await;
    let other = create(&store, "noc", Role::Operator, "hash-noc", T).await;
    assert!(store.revoke_token(token.id, at(T + HOUR)).await.unwrap());
    assert_eq!(store.token_by_hash("hash-prom").await.unwrap(), None);
    assert_eq!(
        store.token_by_hash("hash-noc").await.unwrap(),
        Some(other),
        "the other token still works"
    );
    // Once revoked, it stays revoked at the first time: a second revocation does nothing.
    assert!(!store
        .revoke_token(token.id, at(T + 2 * HOUR))
        .await
        .unwrap());
    assert!(!store
        .revoke_token(token.id + 1000, at(T + HOUR))
        .await
        .unwrap());
    let listed = store.tokens().await.unwrap();
    let revoked = listed.iter().find(|t| t.id == token.id).unwrap();
    assert_eq!(revoked.revoked_at, Some(at(T + HOUR)));
}

async fn revoking_a_token_frees_its_name(store: Arc<dyn Store>) {
    let old = create(&store, "wall", Role::Viewer, "hash-old", T).await;
    assert!(store.revoke_token(old.id, at(T + HOUR)).await.unwrap());
    let new = create(&store, "wall", Role::Operator, "hash-new", T + 2 * HOUR).await;
    assert_ne!(new.id, old.id);
    assert_eq!(
        (new.role, new.created_at, new.revoked_at),
        (Role::Operator, at(T + 2 * HOUR), None)
    );
    assert_eq!(store.token_by_hash("hash-new").await.unwrap(), Some(new));
    assert_eq!(store.token_by_hash("hash-old").await.unwrap(), None);
    assert_eq!(
        store
            .create_token("wall", Role::Viewer, "hash-third", at(T + 3 * HOUR))
            .await
            .unwrap(),
        None,
        "the new token holds the name now"
    );
}

async fn tokens_are_listed_oldest_first_revoked_ones_included(store: Arc<dyn Store>) {
    assert!(store.tokens().await.unwrap().is_empty());
    let a = create(&store, "a", Role::Admin, "hash-a", T).await;
    let b = create(&store, "b", Role::Viewer, "hash-b", T + 1_000).await;
    let c = create(&store, "c", Role::Operator, "hash-c", T + 2_000).await;
    assert!(store.revoke_token(b.id, at(T + HOUR)).await.unwrap());
    let revoked_b = ApiToken {
        revoked_at: Some(at(T + HOUR)),
        ..b
    };
    assert_eq!(store.tokens().await.unwrap(), vec![a, revoked_b, c]);
}

fn revocation(agent: Option<&str>, serial: Option<&str>, ms: i64, reason: &str) -> CertRevocation {
    CertRevocation {
        id: 0,
        agent: agent.map(String::from),
        serial: serial.map(String::from),
        revoked_at: at(ms),
        reason: reason.into(),
    }
}

async fn certificate_revocations_by_serial_and_by_agent_are_listed_oldest_first(
    store: Arc<dyn Store>,
) {
    assert!(store.cert_revocations().await.unwrap().is_empty());
    let by_serial = revocation(None, Some("0a1b2c3d4e5f"), T, "stolen");
    let by_agent = revocation(Some("branch-1"), None, T + HOUR, "retired");
    let both = revocation(Some("branch-2"), Some("ff00"), T + 2 * HOUR, "");
    let mut stored = Vec::new();
    for wanted in [&by_serial, &by_agent, &both] {
        let got = store.revoke_certificate(wanted).await.unwrap();
        // Everything as given, with the id the store assigned.
        assert_eq!(
            got,
            CertRevocation {
                id: got.id,
                ..wanted.clone()
            }
        );
        stored.push(got);
    }
    assert!(stored[0].id < stored[1].id && stored[1].id < stored[2].id);
    assert_eq!(store.cert_revocations().await.unwrap(), stored);

    // An agent retired twice is two revocations, listed in the order recorded.
    let again = store
        .revoke_certificate(&revocation(Some("branch-1"), None, T - HOUR, "again"))
        .await
        .unwrap();
    let listed = store.cert_revocations().await.unwrap();
    assert_eq!(listed.len(), 4);
    assert_eq!(listed.last(), Some(&again));
    assert_eq!(listed[3].revoked_at, at(T - HOUR));
}

async fn a_revocation_naming_neither_agent_nor_serial_is_refused(store: Arc<dyn Store>) {
    let kept = store
        .revoke_certificate(&revocation(None, Some("abcd"), T, "stolen"))
        .await
        .unwrap();
    assert!(store
        .revoke_certificate(&revocation(None, None, T, "nothing named"))
        .await
        .is_err());
    assert_eq!(store.cert_revocations().await.unwrap(), vec![kept]);
}
