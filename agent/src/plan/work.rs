//! What the agent runs: its local `agent.toml` merged with its share of the collector's plan.
//!
//! The merge rule (docs/operations.md, "The fleet plan"):
//! - everything in `agent.toml` runs, as it always did;
//! - the plan's work runs beside it, each check group with its own settings;
//! - where both name the same thing, the plan wins: an address the plan probes is dropped
//!   from the local probe list, a discovery site of the same name and a speed test of the
//!   same URL run only as the plan says.
//!
//! So a standalone site needs only its `agent.toml`, and a target moved into the plan is
//! probed once, with the central settings, without editing the agent.

use super::enrolment::{EnrolRule, Enrolled};
use crate::config::{ProbePlan, Settings, Site, SpeedTestPlan};
use crate::probe::tcp::PortPlan;
use futures::StreamExt;
use netwarden_plan::{AgentPlan, TargetAddress};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

/// Every loop the agent runs, each described whole, so two `Work`s compare loop by loop.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Work {
    pub probes: Vec<ProbeWork>,
    pub sites: Vec<Site>,
    pub speedtests: Vec<SpeedTestPlan>,
    /// The plan's `tcp` checks, one loop each (`ports:NAME`).
    pub ports: Vec<PortWork>,
}

/// One `tcp` check's loop. Like a probe loop, it keeps running while its name and settings
/// stay; its targets may change under it.
#[derive(Debug, Clone, PartialEq)]
pub struct PortWork {
    pub name: String,
    pub plan: PortPlan,
}

/// One probe loop: `agent.toml`'s, or one check of the plan (`check:NAME`). A loop keeps
/// running while its name and settings stay; its targets may change under it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeWork {
    pub name: String,
    pub plan: ProbePlan,
}

/// The name of the probe loop of `agent.toml`'s own targets.
pub const LOCAL_PROBES: &str = "agent.toml";

impl Work {
    pub fn target_count(&self) -> usize {
        self.probes
            .iter()
            .map(|p| p.plan.targets.len())
            .sum::<usize>()
            + self
                .ports
                .iter()
                .map(|p| p.plan.targets.len())
                .sum::<usize>()
    }
}

/// The longest a host name look-up may take; a name that does not answer by then is skipped
/// until the next look-up.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Look-ups in flight at once.
const LOOKUPS_AT_ONCE: usize = 32;
/// The longest interval taken from the wire (the collector allows a week).
const MAX_INTERVAL: Duration = Duration::from_secs(7 * 86_400);

/// Looks host names up; a test can answer without DNS.
pub trait Lookup {
    fn lookup(
        &self,
        host: &str,
    ) -> impl std::future::Future<Output = std::io::Result<Vec<IpAddr>>> + Send;
}

/// The system resolver.
pub struct SystemLookup;

impl Lookup for SystemLookup {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        Ok(tokio::net::lookup_host((host, 0))
            .await?
            .map(|a| a.ip())
            .collect())
    }
}

/// Looks up every host name of the plan at once (bounded, each with a timeout).
async fn resolve_names(
    plan: &AgentPlan,
    lookup: &impl Lookup,
) -> HashMap<String, Result<Vec<IpAddr>, String>> {
    let mut names: Vec<String> = plan
        .probes
        .iter()
        .chain(&plan.ports)
        .flat_map(|g| g.targets.iter())
        .filter_map(
            |t| match netwarden_plan::parse_address(&t.address, t.force) {
                Ok(TargetAddress::Host(host)) => Some(host),
                _ => None,
            },
        )
        .collect();
    names.sort();
    names.dedup();
    futures::stream::iter(names)
        .map(|host| async move {
            let found = match tokio::time::timeout(LOOKUP_TIMEOUT, lookup.lookup(&host)).await {
                Err(_) => Err(format!(
                    "{host}: no answer in {} s",
                    LOOKUP_TIMEOUT.as_secs()
                )),
                Ok(Err(e)) => Err(format!("{host}: cannot resolve: {e}")),
                Ok(Ok(mut found)) => {
                    found.sort();
                    found.dedup();
                    // One address, IPv4 first, as ping does: a name is one host.
                    let v4 = found.iter().find(|a| a.is_ipv4()).copied();
                    let v6 = found.iter().find(|a| a.is_ipv6()).copied();
                    v4.or(v6)
                        .map(|a| vec![a])
                        .ok_or_else(|| format!("{host}: the name has no addresses"))
                }
            };
            (host, found)
        })
        .buffer_unordered(LOOKUPS_AT_ONCE)
        .collect()
        .await
}

/// The addresses of one planned target; a name that did not resolve is skipped until the
/// next look-up (logged), not fatal to its group.
fn addresses(
    target: &netwarden_plan::PlannedTarget,
    names: &HashMap<String, Result<Vec<IpAddr>, String>>,
) -> Result<Vec<IpAddr>, String> {
    match netwarden_plan::parse_address(&target.address, target.force)? {
        TargetAddress::Ip(ip) => Ok(vec![ip]),
        TargetAddress::Prefix(_) => {
            crate::targets::expand(&[&target.address], true).map_err(|e| e.to_string())
        }
        TargetAddress::Host(host) => names
            .get(&host)
            .cloned()
            .unwrap_or_else(|| Err(format!("{host}: not looked up"))),
    }
}

/// A check's settings as a probe loop's (no targets yet); an interval from the wire is capped.
pub fn probe_settings(check: &netwarden_plan::Check) -> ProbePlan {
    ProbePlan {
        targets: Vec::new(),
        count: check.count,
        interval: Duration::from_secs(check.interval_secs).min(MAX_INTERVAL),
        ping_interval: Duration::from_millis(check.ping_interval_ms),
        timeout: Duration::from_millis(check.timeout_ms),
        min_timeout: Duration::from_millis(check.min_timeout_ms),
        degraded_loss_pct: check.degraded_loss_pct,
        degraded_rtt_ms: check.degraded_rtt_ms,
    }
}

/// The addresses of a check group's targets, each once however many names lead to it, within
/// what is left of the agent's `budget` (which they use up). A name that did not resolve is
/// skipped until the next look-up; past the budget, the rest of the group is left out.
fn group_addresses(
    group: &netwarden_plan::ProbeGroup,
    names: &HashMap<String, Result<Vec<IpAddr>, String>>,
    budget: &mut usize,
) -> Vec<IpAddr> {
    let mut targets = Vec::new();
    let mut in_group = HashSet::new();
    for target in &group.targets {
        match addresses(target, names) {
            Ok(found) if found.len() > *budget => {
                tracing::error!(check = %group.check.name, target = %target.name, limit = crate::targets::MAX_TARGETS, "the plan gives this agent more addresses than it probes; this target and the rest of its check are left out");
                break;
            }
            Ok(found) => {
                *budget -= found.len();
                targets.extend(found.into_iter().filter(|ip| in_group.insert(*ip)));
            }
            Err(err) => {
                tracing::warn!(check = %group.check.name, target = %target.name, error = %err, "a planned target is not probed or checked this time")
            }
        }
    }
    targets
}

/// What `agent.toml` says the agent runs.
#[derive(Debug, Clone)]
pub struct Local {
    pub probe: ProbePlan,
    pub sites: Vec<Site>,
    pub speedtest: Option<SpeedTestPlan>,
    /// Shown to the collector's speed-test endpoints by every test, the plan's too.
    pub speedtest_auth: Option<crate::speedtest::SpeedAuth>,
    pub packets_per_second: u32,
}

impl Local {
    pub fn of(settings: &Settings) -> Local {
        Local {
            probe: settings.probe.clone(),
            sites: settings.discovery.sites.clone(),
            speedtest: settings.speedtest.clone(),
            speedtest_auth: settings.speedtest_auth.clone(),
            packets_per_second: settings.packets_per_second,
        }
    }
}

/// Builds the work for `local` and `plan`.
pub async fn merge(
    local: &Local,
    plan: &AgentPlan,
    enrolled: &Enrolled,
    lookup: &impl Lookup,
) -> Work {
    let names = resolve_names(plan, lookup).await;
    let mut work = Work::default();
    let mut planned: HashSet<IpAddr> = HashSet::new();
    // What one agent may be asked to hold in all, whatever the collector allowed.
    let mut budget = crate::targets::MAX_TARGETS as usize;
    for group in &plan.probes {
        let check = &group.check;
        if let Err(errors) = netwarden_plan::validate_check(check) {
            tracing::error!(check = %check.name, %errors, "the plan's check is not valid here; its targets are not probed");
            continue;
        }
        let targets = group_addresses(group, &names, &mut budget);
        // Two checks may probe one address (the plan says so); agent.toml's loop does not.
        planned.extend(targets.iter().copied());
        if targets.is_empty() {
            continue;
        }
        let probe = ProbePlan {
            targets,
            ..probe_settings(check)
        };
        let round = probe.round_length(local.packets_per_second);
        if round > probe.interval {
            tracing::warn!(
                check = %check.name,
                targets = probe.targets.len(),
                round_secs = round.as_secs_f64(),
                interval_secs = probe.interval.as_secs_f64(),
                packets_per_second = local.packets_per_second,
                "a round of this check takes longer than its interval at this agent's packet rate; rounds will start late"
            );
        }
        work.probes.push(ProbeWork {
            name: format!("check:{}", check.name),
            plan: probe,
        });
    }

    for group in &plan.ports {
        let check = &group.check;
        if let Err(errors) = netwarden_plan::validate_check(check) {
            tracing::error!(check = %check.name, %errors, "the plan's tcp check is not valid here; its targets are not checked");
            continue;
        }
        let targets = group_addresses(group, &names, &mut budget);
        if targets.is_empty() {
            continue;
        }
        let plan = PortPlan {
            targets,
            ports: check.ports.clone(),
            interval: Duration::from_secs(check.interval_secs.max(1)).min(MAX_INTERVAL),
            timeout: Duration::from_millis(check.timeout_ms.clamp(1, 60_000)),
        };
        // At worst every connection waits its whole timeout, CONNECTIONS_AT_ONCE at a time.
        let connections = plan.targets.len() * plan.ports.len();
        let worst = plan.timeout.saturating_mul(
            u32::try_from(connections.div_ceil(crate::probe::tcp::CONNECTIONS_AT_ONCE))
                .unwrap_or(u32::MAX),
        );
        if worst > plan.interval {
            tracing::warn!(
                check = %check.name,
                connections,
                worst_secs = worst.as_secs_f64(),
                interval_secs = plan.interval.as_secs_f64(),
                "if its ports do not answer, a round of this tcp check takes longer than its interval; rounds will start late"
            );
        }
        work.ports.push(PortWork {
            name: format!("ports:{}", check.name),
            plan,
        });
    }

    // Hosts the plan's discovery sites enrolled: probed there, not again by agent.toml's loop.
    let mut by_enrolment: HashSet<IpAddr> = HashSet::new();
    let planned_sites: HashSet<&str> = plan.discovery.iter().map(|d| d.name.as_str()).collect();
    work.sites.extend(
        local
            .sites
            .iter()
            .filter(|s| !planned_sites.contains(s.name.as_str()))
            .cloned(),
    );
    for site in &plan.discovery {
        let targets = match crate::targets::expand(&site.cidrs, site.force) {
            Ok(targets) => targets,
            Err(err) => {
                tracing::error!(site = %site.name, error = %err, "a planned discovery site is not swept");
                continue;
            }
        };
        let enrol = match site.enrol.as_ref().map(EnrolRule::from_plan).transpose() {
            Ok(enrol) => enrol,
            Err(err) => {
                tracing::error!(site = %site.name, error = %err, "a planned discovery site's enrolment is not valid here; it is swept without enrolling");
                None
            }
        };
        let ignore: Vec<ipnet::IpNet> = site
            .ignore
            .iter()
            .filter_map(|entry| {
                let net = entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(ipnet::IpNet::from));
                if net.is_err() {
                    tracing::error!(site = %site.name, entry, "an ignore entry is not an address or prefix; left out");
                }
                net.ok()
            })
            .collect();
        if let Some(rule) = &enrol {
            // What the site enrolled under this policy that is still in its prefixes and not
            // ignored, that no target of the plan and no earlier site probes.
            let swept: HashSet<IpAddr> = targets.iter().copied().collect();
            let ignored = |ip: &IpAddr| ignore.iter().any(|net: &ipnet::IpNet| net.contains(ip));
            let hosts: Vec<IpAddr> = enrolled
                .get(&site.name)
                .filter(|(policy, _)| *policy == rule.policy())
                .map(|(_, hosts)| {
                    hosts
                        .iter()
                        .copied()
                        .filter(|ip| {
                            swept.contains(ip)
                                && !ignored(ip)
                                && !planned.contains(ip)
                                && !by_enrolment.contains(ip)
                        })
                        .collect()
                })
                .unwrap_or_default();
            by_enrolment.extend(hosts.iter().copied());
            if !hosts.is_empty() {
                work.probes.push(ProbeWork {
                    name: format!("enrolled:{}", site.name),
                    plan: ProbePlan {
                        targets: hosts,
                        ..rule.settings.clone()
                    },
                });
            }
        }
        work.sites.push(Site {
            name: site.name.clone(),
            targets,
            interval: Duration::from_secs(site.interval_secs.max(1)).min(MAX_INTERVAL),
            enrol,
            ignore,
        });
    }

    // agent.toml's own targets, but for what the plan probes (its targets, its enrolled hosts).
    let mut own = local.probe.clone();
    own.targets
        .retain(|ip| !planned.contains(ip) && !by_enrolment.contains(ip));
    if !own.targets.is_empty() {
        work.probes.insert(
            0,
            ProbeWork {
                name: LOCAL_PROBES.into(),
                plan: own,
            },
        );
    }

    // The same servers in the plan and agent.toml run once, as the plan says.
    let servers = |url: &str, download: &Option<String>, upload: &Option<String>| {
        (
            url.trim_end_matches('/').to_string(),
            download.clone(),
            upload.clone(),
        )
    };
    let planned: HashSet<_> = plan
        .speedtests
        .iter()
        .map(|s| servers(&s.url, &s.download_url, &s.upload_url))
        .collect();
    if let Some(own) = &local.speedtest {
        if !planned.contains(&servers(&own.url, &own.download_url, &own.upload_url)) {
            work.speedtests.push(own.clone());
        }
    }
    for test in &plan.speedtests {
        work.speedtests.push(SpeedTestPlan {
            url: test.url.trim_end_matches('/').to_string(),
            download_url: test.download_url.clone(),
            upload_url: test.upload_url.clone(),
            auth: local.speedtest_auth.clone(),
            interval: Duration::from_secs(test.interval_secs.max(1)).min(MAX_INTERVAL),
            download_bytes: test.download_bytes,
            upload_bytes: test.upload_bytes,
            timeout: Duration::from_secs(test.timeout_secs.clamp(1, 3600)),
        });
    }
    work
}

#[cfg(test)]
mod tests {
    use super::*;
    use netwarden_plan::{Check, DiscoveryAssignment, PlannedTarget, ProbeGroup};

    /// Answers from a table, as DNS would.
    struct Table(Vec<(&'static str, Vec<IpAddr>)>);

    impl Lookup for Table {
        async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
            self.0
                .iter()
                .find(|(h, _)| *h == host)
                .map(|(_, a)| a.clone())
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "NXDOMAIN"))
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn local() -> Local {
        Local {
            probe: ProbePlan {
                targets: vec![ip("10.0.0.1"), ip("10.0.0.2")],
                count: 20,
                interval: Duration::from_secs(300),
                ping_interval: Duration::from_secs(1),
                timeout: Duration::from_secs(2),
                min_timeout: Duration::from_millis(500),
                degraded_loss_pct: 5.0,
                degraded_rtt_ms: 250.0,
            },
            sites: vec![
                Site {
                    name: "lan".into(),
                    targets: vec![ip("192.168.0.1")],
                    interval: Duration::from_secs(3600),
                    enrol: None,
                    ignore: Vec::new(),
                },
                Site {
                    name: "dmz".into(),
                    targets: vec![ip("172.16.0.1")],
                    interval: Duration::from_secs(3600),
                    enrol: None,
                    ignore: Vec::new(),
                },
            ],
            speedtest: Some(SpeedTestPlan {
                url: "http://collector:8080".into(),
                download_url: None,
                upload_url: None,
                interval: Duration::from_secs(3600),
                download_bytes: 1000,
                upload_bytes: 1000,
                timeout: Duration::from_secs(60),
                auth: None,
            }),
            speedtest_auth: None,
            packets_per_second: 1000,
        }
    }

    fn target(name: &str, address: &str) -> PlannedTarget {
        PlannedTarget {
            name: name.into(),
            address: address.into(),
            force: false,
        }
    }

    fn fast() -> Check {
        Check {
            name: "fast".into(),
            count: 5,
            interval_secs: 30,
            ..Check::default()
        }
    }

    #[tokio::test]
    async fn with_no_plan_the_local_config_runs_as_it_is() {
        let work = merge(
            &local(),
            &AgentPlan::default(),
            &Enrolled::new(),
            &Table(vec![]),
        )
        .await;
        assert_eq!(work.probes.len(), 1);
        assert_eq!(
            (work.probes[0].name.as_str(), &work.probes[0].plan),
            (LOCAL_PROBES, &local().probe)
        );
        assert_eq!(work.sites, local().sites);
        assert_eq!(work.speedtests, vec![local().speedtest.unwrap()]);
    }

    #[tokio::test]
    async fn the_plan_runs_beside_the_local_config_and_wins_where_both_name_a_thing() {
        let plan = AgentPlan {
            version: 3,
            probes: vec![ProbeGroup {
                check: fast(),
                targets: vec![
                    target("core", "10.0.0.2"),
                    target("by-name", "router.example"),
                    target("gone", "nowhere.example"),
                    target("pair", "10.9.0.0/30"),
                ],
            }],
            discovery: vec![DiscoveryAssignment {
                name: "lan".into(),
                cidrs: vec!["192.168.0.0/30".into()],
                interval_secs: 600,
                force: false,
                enrol: None,
                ignore: Vec::new(),
            }],
            speedtests: vec![netwarden_plan::SpeedTestAssignment {
                name: "st".into(),
                url: "http://collector:8080/".into(),
                download_url: None,
                upload_url: None,
                interval_secs: 900,
                download_bytes: 5,
                upload_bytes: 5,
                timeout_secs: 10,
            }],
            ports: vec![ProbeGroup {
                check: Check {
                    name: "web".into(),
                    kind: netwarden_plan::CheckKind::Tcp,
                    ports: vec![443, 22],
                    interval_secs: 20,
                    timeout_ms: 1500,
                    ..Check::default()
                },
                targets: vec![
                    target("core", "10.0.0.2"),
                    target("by-name", "router.example"),
                    target("gone", "nowhere.example"),
                ],
            }],
        };
        let dns = Table(vec![(
            "router.example",
            vec![ip("2001:db8::1"), ip("10.0.0.9"), ip("10.0.0.8")],
        )]);
        let work = merge(&local(), &plan, &Enrolled::new(), &dns).await;
        // Local first, without the address the plan took; then the plan's group with its own
        // settings: the name as one IPv4 address, an unresolvable name skipped, a /30 expanded.
        assert_eq!(work.probes.len(), 2);
        assert_eq!(work.probes[0].plan.targets, vec![ip("10.0.0.1")]);
        assert_eq!(work.probes[0].plan.count, 20);
        assert_eq!(
            work.probes[1].plan.targets,
            vec![
                ip("10.0.0.2"),
                ip("10.0.0.8"),
                ip("10.9.0.1"),
                ip("10.9.0.2")
            ]
        );
        assert_eq!(
            (work.probes[1].plan.count, work.probes[1].plan.interval),
            (5, Duration::from_secs(30))
        );
        // The site of the same name is the plan's; the other local one stays.
        let sites: Vec<_> = work
            .sites
            .iter()
            .map(|s| (s.name.as_str(), s.targets.len(), s.interval.as_secs()))
            .collect();
        assert_eq!(sites, [("dmz", 1, 3600), ("lan", 2, 600)]);
        // The same server once, as the plan says.
        assert_eq!(work.speedtests.len(), 1);
        assert_eq!(work.speedtests[0].interval, Duration::from_secs(900));
        // The tcp check is a loop of its own, its names resolved as the probes' are; the
        // address it shares with a probe group is checked all the same (another check).
        let [ports] = &work.ports[..] else {
            panic!("one port loop: {:?}", work.ports);
        };
        assert_eq!(ports.name, "ports:web");
        assert_eq!(ports.plan.targets, vec![ip("10.0.0.2"), ip("10.0.0.8")]);
        assert_eq!(ports.plan.ports, vec![443, 22]);
        assert_eq!(
            (ports.plan.interval, ports.plan.timeout),
            (Duration::from_secs(20), Duration::from_millis(1500))
        );
        assert_eq!(work.target_count(), 1 + 4 + 2);
    }

    #[tokio::test]
    async fn an_address_every_plan_target_takes_leaves_no_local_loop() {
        let plan = AgentPlan {
            version: 1,
            probes: vec![ProbeGroup {
                check: fast(),
                targets: vec![target("a", "10.0.0.1"), target("b", "10.0.0.2")],
            }],
            ..AgentPlan::default()
        };
        let work = merge(&local(), &plan, &Enrolled::new(), &Table(vec![])).await;
        assert_eq!(work.probes.len(), 1);
        assert_eq!(work.probes[0].plan.count, 5);
    }

    #[tokio::test]
    async fn a_check_the_agent_cannot_run_is_skipped_not_fatal() {
        let mut bad = fast();
        bad.count = 0;
        let plan = AgentPlan {
            version: 1,
            probes: vec![
                ProbeGroup {
                    check: bad,
                    targets: vec![target("a", "10.1.0.1")],
                },
                ProbeGroup {
                    check: fast(),
                    targets: vec![target("b", "10.1.0.2")],
                },
            ],
            ..AgentPlan::default()
        };
        let work = merge(&local(), &plan, &Enrolled::new(), &Table(vec![])).await;
        let all: Vec<IpAddr> = work
            .probes
            .iter()
            .flat_map(|p| p.plan.targets.clone())
            .collect();
        assert!(all.contains(&ip("10.1.0.2")) && !all.contains(&ip("10.1.0.1")));
    }
}

#[cfg(test)]
mod enrolled_tests {
    use super::*;
    use netwarden_plan::{Check, DiscoveryAssignment, EnrolAssignment, PlannedTarget, ProbeGroup};
    use std::collections::BTreeSet;

    struct NoDns;

    impl Lookup for NoDns {
        async fn lookup(&self, _: &str) -> std::io::Result<Vec<IpAddr>> {
            Err(std::io::ErrorKind::NotFound.into())
        }
    }

    #[tokio::test]
    async fn enrolled_hosts_are_probed_with_the_policy_check_unless_a_target_probes_them() {
        let enrol = EnrolAssignment {
            check: Check {
                name: "fast".into(),
                count: 4,
                interval_secs: 20,
                ..Check::default()
            },
            all: true,
            addresses: vec![],
            vendors: vec![],
            ports: vec![],
            hostname_suffixes: vec![],
        };
        let rule = EnrolRule::from_plan(&enrol).unwrap();
        let plan = AgentPlan {
            version: 2,
            probes: vec![ProbeGroup {
                check: Check::default(),
                targets: vec![PlannedTarget {
                    name: "gw".into(),
                    address: "10.0.0.1".into(),
                    force: false,
                }],
            }],
            discovery: vec![DiscoveryAssignment {
                name: "lan".into(),
                cidrs: vec!["10.0.0.0/29".into()],
                interval_secs: 60,
                force: false,
                enrol: Some(enrol),
                ignore: vec!["10.0.0.6".into(), "bogus".into()],
            }],
            ports: vec![],
            speedtests: vec![],
        };
        let local = Local {
            probe: ProbePlan {
                targets: vec![],
                count: 1,
                interval: Duration::from_secs(60),
                ping_interval: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
                min_timeout: Duration::from_millis(100),
                degraded_loss_pct: 5.0,
                degraded_rtt_ms: 250.0,
            },
            sites: vec![],
            speedtest: None,
            speedtest_auth: None,
            packets_per_second: 1000,
        };
        let mut enrolled = Enrolled::new();
        // .6 is ignored now and 10.0.1.1 is outside the site's prefix: enrolled under an
        // earlier form of the site, neither is probed any more.
        let hosts: BTreeSet<IpAddr> = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.6", "10.0.1.1"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let mut local = local;
        local.probe.targets = vec!["10.0.0.3".parse().unwrap(), "10.9.9.9".parse().unwrap()];
        enrolled.insert("lan".into(), (rule.policy(), hosts.clone()));
        let work = merge(&local, &plan, &enrolled, &NoDns).await;
        let group = work
            .probes
            .iter()
            .find(|p| p.name == "enrolled:lan")
            .expect("an enrolled group");
        // The gateway is a planned target: probed there, with its own check, not twice.
        assert_eq!(
            group.plan.targets,
            vec![
                "10.0.0.2".parse::<IpAddr>().unwrap(),
                "10.0.0.3".parse().unwrap()
            ]
        );
        assert_eq!((group.plan.count, group.plan.interval.as_secs()), (4, 20));
        // agent.toml's loop leaves the enrolled host to the enrolment: probed once.
        let own = work.probes.iter().find(|p| p.name == LOCAL_PROBES).unwrap();
        assert_eq!(
            own.plan.targets,
            vec!["10.9.9.9".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(work.sites[0].enrol.as_ref(), Some(&rule));
        // The bad ignore entry is left out, the good one kept.
        assert_eq!(work.sites[0].ignore.len(), 1);

        // Hosts enrolled under another policy are not probed under this one.
        enrolled.insert("lan".into(), ("another".into(), hosts));
        let work = merge(&local, &plan, &enrolled, &NoDns).await;
        assert!(work.probes.iter().all(|p| p.name != "enrolled:lan"));
    }
}
