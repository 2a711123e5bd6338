//! The fleet plan on the agent: pulled from the collector ([`pull`]), cached in the buffer
//! file, merged with `agent.toml` ([`work`]) and run without a restart ([`runner`]).

pub mod enrolment;
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

/// Runs the merged work until `stop`, applying each new plan as it comes. `known`: the first
/// plan is one the agent had (cached) or needs none (plans off); else the first plan is only a
/// placeholder until the collector answers, and enrolled hosts are not forgotten for it.
pub async fn follow(
    local: Local,
    mut plans: watch::Receiver<netwarden_plan::AgentPlan>,
    known: bool,
    enrolment: enrolment::Enrolment,
    mut runner: Runner,
    stop: CancellationToken,
) {
    let mut enrolled = enrolment.subscribe();
    let mut authoritative = known;
    loop {
        let plan = plans.borrow_and_update().clone();
        if authoritative {
            // Sites that no longer enrol (or enrol other hosts) forget what they enrolled.
            let policies = plan
                .discovery
                .iter()
                .filter_map(|d| {
                    let rule = enrolment::EnrolRule::from_plan(d.enrol.as_ref()?).ok()?;
                    Some((d.name.clone(), rule.policy()))
                })
                .collect();
            enrolment.retain(&policies).await;
        }
        // After the forgetting above, which would otherwise wake this loop once more.
        enrolled.mark_unchanged();
        // Host names are looked up here (bounded, with timeouts); a stop does not wait for them.
        let enrolled_now = enrolment.snapshot();
        let work = tokio::select! {
            _ = stop.cancelled() => break,
            work = merge(&local, &plan, &enrolled_now, &SystemLookup) => work,
        };
        let targets = work.target_count();
        let applied = runner.apply(work);
        if applied.started + applied.stopped + applied.retargeted > 0 {
            tracing::info!(
                plan_version = plan.version,
                targets,
                started = applied.started,
                stopped = applied.stopped,
                retargeted = applied.retargeted,
                kept = applied.kept,
                "running the plan"
            );
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            changed = plans.changed() => {
                if changed.is_err() {
                    // The pull ended (plans off): keep running what there is until stopped.
                    stop.cancelled().await;
                    break;
                }
                authoritative = true;
            }
            _ = enrolled.changed() => {}
            _ = tokio::time::sleep(LOOKUP_EVERY) => {}
        }
    }
    runner.stop_all().await;
}
