//! What one agent runs of a plan: its probe targets grouped by check, its discovery sites
//! and its speed tests. The collector resolves a plan for each connected agent and sends it
//! only this, so an agent never holds the fleet's inventory.

use crate::model::{Check, Labels, Plan, RunOn, DEFAULT_CHECK};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// One agent's share of a plan, at a plan version (0: no plan).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentPlan {
    pub version: u64,
    /// ICMP rounds, by check name.
    pub probes: Vec<ProbeGroup>,
    pub discovery: Vec<DiscoveryAssignment>,
    pub speedtests: Vec<SpeedTestAssignment>,
    /// TCP port checks (`kind: tcp`), by check name.
    pub ports: Vec<ProbeGroup>,
}

impl AgentPlan {
    pub fn target_count(&self) -> usize {
        self.probes
            .iter()
            .chain(&self.ports)
            .map(|g| g.targets.len())
            .sum()
    }

    /// The same work, whatever the version: whether an agent needs to be sent this.
    pub fn same_work(&self, other: &AgentPlan) -> bool {
        self.probes == other.probes
            && self.ports == other.ports
            && self.discovery == other.discovery
            && self.speedtests == other.speedtests
    }
}

/// Targets probed with one check's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeGroup {
    pub check: Check,
    pub targets: Vec<PlannedTarget>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTarget {
    pub name: String,
    /// An IP address, a CIDR prefix or a host name (see [`crate::parse_address`]).
    pub address: String,
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveryAssignment {
    pub name: String,
    pub cidrs: Vec<String>,
    pub interval_secs: u64,
    pub force: bool,
    /// Which hosts found are probed, and how; none: inventoried only.
    pub enrol: Option<EnrolAssignment>,
    /// Addresses and prefixes neither reported nor enrolled.
    pub ignore: Vec<String>,
}

/// An enrolment policy with its check's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrolAssignment {
    pub check: Check,
    /// Every host found (else those matching any matcher below).
    pub all: bool,
    pub addresses: Vec<String>,
    pub vendors: Vec<String>,
    pub ports: Vec<u16>,
    pub hostname_suffixes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeedTestAssignment {
    pub name: String,
    pub url: String,
    pub download_url: Option<String>,
    pub upload_url: Option<String>,
    pub interval_secs: u64,
    pub download_bytes: u64,
    pub upload_bytes: u64,
    pub timeout_secs: u64,
}

/// A validated plan indexed for resolving many agents: targets that run on their own site's
/// agents are found by site, so resolving one agent does not test every target of the fleet.
/// Built once per plan version and shared by every agent's stream.
pub struct Resolver {
    plan: Arc<Plan>,
    version: u64,
    agents: HashMap<String, AgentFacts>,
    checks: HashMap<String, usize>,
    default_check: Check,
    /// Targets without `run_on`, by their site.
    targets_by_site: HashMap<String, Vec<usize>>,
    /// Targets with `run_on`.
    targets_selected: Vec<usize>,
}

struct AgentFacts {
    site: Option<String>,
    /// The site's labels overlaid with the agent's own.
    labels: Labels,
}

impl Resolver {
    /// `plan` must have passed [`crate::validate`].
    pub fn new(plan: Arc<Plan>, version: u64) -> Self {
        let site_labels: HashMap<&str, &Labels> = plan
            .sites
            .iter()
            .map(|s| (s.name.as_str(), &s.labels))
            .collect();
        let agents = plan
            .agents
            .iter()
            .map(|a| {
                let mut labels = a
                    .site
                    .as_deref()
                    .and_then(|s| site_labels.get(s))
                    .map(|l| (*l).clone())
                    .unwrap_or_default();
                labels.extend(a.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
                (
                    a.name.clone(),
                    AgentFacts {
                        site: a.site.clone(),
                        labels,
                    },
                )
            })
            .collect();
        let mut targets_by_site: HashMap<String, Vec<usize>> = HashMap::new();
        let mut targets_selected = Vec::new();
        for (i, target) in plan.targets.iter().enumerate() {
            match (&target.site, target.run_on.is_empty()) {
                (Some(site), true) => targets_by_site.entry(site.clone()).or_default().push(i),
                _ => targets_selected.push(i),
            }
        }
        let checks = plan
            .checks
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        Resolver {
            plan,
            version,
            agents,
            checks,
            default_check: Check::default(),
            targets_by_site,
            targets_selected,
        }
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    fn runs(&self, agent: &str, run_on: &RunOn, own_site: Option<&str>) -> bool {
        let facts = self.agents.get(agent);
        let site = facts.and_then(|f| f.site.as_deref());
        if run_on.is_empty() {
            return own_site.is_some() && site == own_site;
        }
        (run_on.agents.is_empty() || run_on.agents.iter().any(|a| a == agent))
            && (run_on.site.is_none() || site == run_on.site.as_deref())
            && run_on
                .agent_labels
                .iter()
                .all(|(k, v)| facts.and_then(|f| f.labels.get(k)) == Some(v))
    }

    fn check(&self, name: &str) -> &Check {
        self.checks
            .get(name)
            .map_or(&self.default_check, |&i| &self.plan.checks[i])
    }

    fn enrol(&self, enrol: &crate::model::Enrol) -> Option<EnrolAssignment> {
        use crate::model::EnrolMode;
        let all = match enrol.mode {
            EnrolMode::None => return None,
            EnrolMode::All => true,
            EnrolMode::Matching => false,
        };
        let name = enrol.check.as_deref().unwrap_or(DEFAULT_CHECK);
        let mut check = self.check(name).clone();
        check.name = name.to_string();
        Some(EnrolAssignment {
            check,
            all,
            addresses: enrol.addresses.clone(),
            vendors: enrol.vendors.clone(),
            ports: enrol.ports.clone(),
            hostname_suffixes: enrol.hostname_suffixes.clone(),
        })
    }

    /// What `agent` (a certificate name) runs.
    pub fn resolve(&self, agent: &str) -> AgentPlan {
        let site = self.agents.get(agent).and_then(|f| f.site.as_deref());
        let mut chosen: Vec<usize> = site
            .and_then(|s| self.targets_by_site.get(s))
            .cloned()
            .unwrap_or_default();
        chosen.extend(self.targets_selected.iter().copied().filter(|&i| {
            let t = &self.plan.targets[i];
            self.runs(agent, &t.run_on, t.site.as_deref())
        }));
        chosen.sort_unstable();

        let mut groups: BTreeMap<&str, (Vec<PlannedTarget>, HashSet<&str>)> = BTreeMap::new();
        for i in chosen {
            let target = &self.plan.targets[i];
            let names: Vec<&str> = if target.checks.is_empty() {
                vec![DEFAULT_CHECK]
            } else {
                target.checks.iter().map(String::as_str).collect()
            };
            for check in names {
                let name = if self.checks.contains_key(check) {
                    check
                } else {
                    DEFAULT_CHECK
                };
                let (targets, seen) = groups.entry(name).or_default();
                // One address once per check, whichever targets name it.
                if seen.insert(target.address.as_str()) {
                    targets.push(PlannedTarget {
                        name: target.name.clone(),
                        address: target.address.clone(),
                        force: target.force,
                    });
                }
            }
        }
        let (ports, probes): (Vec<ProbeGroup>, Vec<ProbeGroup>) = groups
            .into_iter()
            .map(|(name, (targets, _))| {
                let mut check = self.check(name).clone();
                check.name = name.to_string();
                ProbeGroup { check, targets }
            })
            .partition(|g| g.check.kind == crate::model::CheckKind::Tcp);

        let discovery = self
            .plan
            .discovery
            .iter()
            .filter(|d| self.runs(agent, &d.run_on, d.site.as_deref()))
            .map(|d| DiscoveryAssignment {
                name: d.name.clone(),
                cidrs: d.cidrs.clone(),
                interval_secs: d.interval_secs,
                force: d.force,
                enrol: self.enrol(&d.enrol),
                ignore: d.ignore.clone(),
            })
            .collect();
        let speedtests = self
            .plan
            .speedtests
            .iter()
            .filter(|s| self.runs(agent, &s.run_on, s.site.as_deref()))
            .map(|s| SpeedTestAssignment {
                name: s.name.clone(),
                url: s.url.clone(),
                download_url: s.download_url.clone(),
                upload_url: s.upload_url.clone(),
                interval_secs: s.interval_secs,
                download_bytes: s.download_bytes,
                upload_bytes: s.upload_bytes,
                timeout_secs: s.timeout_secs,
            })
            .collect();
        AgentPlan {
            version: self.version,
            probes,
            discovery,
            speedtests,
            ports,
        }
    }
}
