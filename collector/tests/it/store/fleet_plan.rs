//! The fleet plan's versions on both backends: each save takes the next number on top of the
//! version it was edited from, a save on a stale version is a conflict (also when two race),
//! and the history lists who saved what, newest first.

use super::store_suite;
use crate::support::at;
use netwarden_collector::storage::fleet_plan::{NewPlanVersion, SavedPlan};
use netwarden_collector::storage::Store;
use std::sync::Arc;

store_suite!(
    no_plan_is_version_zero,
    each_save_takes_the_next_version_and_keeps_the_document_whole,
    a_save_on_a_stale_version_is_a_conflict_naming_the_current_one,
    of_two_saves_racing_on_one_version_exactly_one_lands,
    the_history_lists_versions_newest_first_with_author_comment_and_summary,
);

const T: i64 = 1_800_000_000_000;

fn version(base: i64, document: &str, author: &str) -> NewPlanVersion {
    NewPlanVersion {
        base,
        document: document.into(),
        author: author.into(),
        comment: format!("edit by {author}"),
        summary: format!("+{} target", base + 1),
        created_at: at(T + base * 1000),
    }
}

async fn save(store: &Arc<dyn Store>, base: i64, document: &str) -> i64 {
    match store
        .save_plan(&version(base, document, "ops"))
        .await
        .unwrap()
    {
        SavedPlan::Saved(info) => info.version,
        other => panic!("save on {base} refused: {other:?}"),
    }
}

async fn no_plan_is_version_zero(store: Arc<dyn Store>) {
    assert_eq!(store.plan_head().await.unwrap(), 0);
    assert_eq!(store.current_plan().await.unwrap(), None);
    assert_eq!(store.plan_version(1).await.unwrap(), None);
    assert!(store.plan_versions(10, 0).await.unwrap().is_empty());
}

async fn each_save_takes_the_next_version_and_keeps_the_document_whole(store: Arc<dyn Store>) {
    // A document with what text columns get wrong: quotes, non-ASCII, a newline.
    let doc = "{\"targets\":[{\"name\":\"Café \\\"core\\\"\\n\",\"address\":\"10.0.0.1\"}]}";
    assert_eq!(save(&store, 0, "{}").await, 1);
    assert_eq!(save(&store, 1, doc).await, 2);
    assert_eq!(store.plan_head().await.unwrap(), 2);
    let current = store.current_plan().await.unwrap().unwrap();
    assert_eq!(current.info.version, 2);
    assert_eq!(current.document, doc);
    assert_eq!(current.info.created_at, at(T + 1000));
    assert_eq!(store.plan_version(1).await.unwrap().unwrap().document, "{}");
}

async fn a_save_on_a_stale_version_is_a_conflict_naming_the_current_one(store: Arc<dyn Store>) {
    save(&store, 0, "{}").await;
    save(&store, 1, "{}").await;
    for stale in [0, 1, 5] {
        assert_eq!(
            store
                .save_plan(&version(stale, "{}", "late"))
                .await
                .unwrap(),
            SavedPlan::Conflict { current: 2 },
            "base {stale}"
        );
    }
    assert_eq!(store.plan_head().await.unwrap(), 2);
}

async fn of_two_saves_racing_on_one_version_exactly_one_lands(store: Arc<dyn Store>) {
    let mut saves = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        saves.push(tokio::spawn(async move {
            store
                .save_plan(&version(0, &format!("{{\"n\":{i}}}"), &format!("op{i}")))
                .await
                .unwrap()
        }));
    }
    let mut landed = 0;
    for save in saves {
        match save.await.unwrap() {
            SavedPlan::Saved(info) => {
                assert_eq!(info.version, 1);
                landed += 1;
            }
            SavedPlan::Conflict { current } => assert_eq!(current, 1),
        }
    }
    assert_eq!(landed, 1);
    assert_eq!(store.plan_versions(10, 0).await.unwrap().len(), 1);
}

async fn the_history_lists_versions_newest_first_with_author_comment_and_summary(
    store: Arc<dyn Store>,
) {
    for base in 0..3 {
        store
            .save_plan(&version(base, "{}", &format!("op{base}")))
            .await
            .unwrap();
    }
    let history = store.plan_versions(2, 0).await.unwrap();
    let lines: Vec<_> = history
        .iter()
        .map(|v| {
            (
                v.version,
                v.author.as_str(),
                v.comment.as_str(),
                v.summary.as_str(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (3, "op2", "edit by op2", "+3 target"),
            (2, "op1", "edit by op1", "+2 target")
        ]
    );
    assert_eq!(history[0].created_at, at(T + 2000));
    let rest = store.plan_versions(2, 2).await.unwrap();
    assert_eq!(rest.iter().map(|v| v.version).collect::<Vec<_>>(), [1]);
}
