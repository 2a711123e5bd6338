//! The fleet plan on the agent: pulled from the collector ([`pull`]), cached in the buffer
//! file, merged with `agent.toml` ([`work`]) and run without a restart ([`runner`]).

pub mod pull;
pub mod runner;
pub mod work;

use runner::Runner;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use work::{merge, Local, SystemLookup};

/// Host names in the plan are looked up again this often (and at every new plan).
pub const LOOKUP_EVERY: Duration = Duration::from_secs(300);

/// Runs the merged work until `stop`, applying each new plan as it comes.
pub async fn follow(
    local: Local,
    mut plans: watch::Receiver<netwarden_plan::AgentPlan>,
    mut runner: Runner,
    stop: CancellationToken,
) {
    loop {
        let plan = plans.borrow_and_update().clone();
        let work = merge(&local, &plan, &SystemLookup).await;
        let targets = work.target_count();
        let applied = runner.apply(work);
        if applied.started + applied.stopped > 0 {
            tracing::info!(
                plan_version = plan.version,
                targets,
                started = applied.started,
                stopped = applied.stopped,
                kept = applied.kept,
                "running the plan"
            );
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            changed = plans.changed() => if changed.is_err() {
                // The pull ended (plans off): keep running what there is until stopped.
                stop.cancelled().await;
                break;
            },
            _ = tokio::time::sleep(LOOKUP_EVERY) => {}
        }
    }
    runner.stop_all().await;
}
