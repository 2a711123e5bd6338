//! Discovery that feeds monitoring: a plan's discovery site may enrol the hosts its sweeps
//! find (all, or those matching its policy), and the agent probes them from its next round.
//! What is enrolled is kept in the buffer's SQLite file, so a host that is down when the agent
//! restarts stays monitored (and shows as down) rather than being forgotten.

use crate::buffer::SharedBuffer;
use crate::config::ProbePlan;
use ipnet::IpNet;
use netwarden_plan::EnrolAssignment;
use netwarden_shared::DiscoveredHost;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Which found hosts a site enrols, and the settings they are probed with.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrolRule {
    pub check: String,
    /// The check's settings (no targets).
    pub settings: ProbePlan,
    pub all: bool,
    pub addresses: Vec<IpNet>,
    /// Lowercase.
    pub vendors: Vec<String>,
    pub ports: Vec<u16>,
    /// Lowercase, without a trailing dot.
    pub suffixes: Vec<String>,
}

impl EnrolRule {
    pub fn from_plan(e: &EnrolAssignment) -> Result<EnrolRule, String> {
        netwarden_plan::validate_check(&e.check).map_err(|errors| errors.to_string())?;
        let addresses = e
            .addresses
            .iter()
            .map(|a| {
                a.parse::<IpNet>()
                    .or_else(|_| a.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("enrol.addresses: {a:?} is not an address or prefix"))
            })
            .collect::<Result<_, _>>()?;
        let c = &e.check;
        Ok(EnrolRule {
            check: c.name.clone(),
            settings: super::work::probe_settings(c),
            all: e.all,
            addresses,
            vendors: e.vendors.iter().map(|v| v.to_lowercase()).collect(),
            ports: e.ports.clone(),
            suffixes: e
                .hostname_suffixes
                .iter()
                .map(|s| s.trim_end_matches('.').to_lowercase())
                .collect(),
        })
    }

    pub fn matches(&self, host: &DiscoveredHost) -> bool {
        if self.all {
            return true;
        }
        let vendor = host.vendor.as_deref().map(str::to_lowercase);
        let hostname = host
            .hostname
            .as_deref()
            .map(|h| h.trim_end_matches('.').to_lowercase());
        self.addresses.iter().any(|n| n.contains(&host.address))
            || vendor.is_some_and(|v| self.vendors.iter().any(|m| v.contains(m.as_str())))
            || host.open_ports.iter().any(|p| self.ports.contains(p))
            || hostname.is_some_and(|h| self.suffixes.iter().any(|s| h.ends_with(s.as_str())))
    }

    /// What decides which hosts are enrolled (not how they are probed): hosts enrolled under
    /// another policy are forgotten and found again by the next sweep.
    pub fn policy(&self) -> String {
        format!(
            "all={} addresses={:?} vendors={:?} ports={:?} suffixes={:?}",
            self.all, self.addresses, self.vendors, self.ports, self.suffixes
        )
    }
}

/// Enrolled hosts by site, each site with the policy that enrolled them.
pub type Enrolled = BTreeMap<String, (String, BTreeSet<IpAddr>)>;

/// The enrolled hosts, shared by the discovery loops (which add) and the plan's follower
/// (which probes them).
#[derive(Clone)]
pub struct Enrolment {
    hosts: Arc<Mutex<Enrolled>>,
    changed: Arc<watch::Sender<u64>>,
    buffer: SharedBuffer,
}

impl Enrolment {
    /// Loads what earlier runs enrolled.
    pub async fn open(buffer: SharedBuffer) -> Enrolment {
        let mut hosts = Enrolled::new();
        match buffer.with(|b| b.enrolled()).await {
            Ok(rows) => {
                for (site, policy, address) in rows {
                    if let Ok(ip) = address.parse::<IpAddr>() {
                        let entry = hosts
                            .entry(site)
                            .or_insert_with(|| (policy.clone(), BTreeSet::new()));
                        if entry.0 == policy {
                            entry.1.insert(ip);
                        }
                    }
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot read the enrolled hosts; the next sweeps enrol them again")
            }
        }
        Enrolment {
            hosts: Arc::new(Mutex::new(hosts)),
            changed: Arc::new(watch::channel(0).0),
            buffer,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Enrolled> {
        self.hosts.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn snapshot(&self) -> Enrolled {
        self.lock().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Adds what a sweep of `site` found that its policy enrols; returns how many are new.
    pub async fn enrol(&self, site: &str, policy: &str, found: Vec<IpAddr>) -> usize {
        let fresh: Vec<IpAddr> = {
            let mut hosts = self.lock();
            let entry = hosts
                .entry(site.to_string())
                .or_insert_with(|| (policy.to_string(), BTreeSet::new()));
            if entry.0 != policy {
                *entry = (policy.to_string(), BTreeSet::new());
            }
            found.into_iter().filter(|ip| entry.1.insert(*ip)).collect()
        };
        if fresh.is_empty() {
            return 0;
        }
        tracing::info!(
            site,
            hosts = fresh.len(),
            "hosts enrolled: probed from the next round"
        );
        let rows: Vec<String> = fresh.iter().map(ToString::to_string).collect();
        let (site_name, policy_text) = (site.to_string(), policy.to_string());
        if let Err(err) = self
            .buffer
            .with(move |b| b.enrol(&site_name, &policy_text, &rows))
            .await
        {
            tracing::error!(error = %err, "cannot keep the enrolled hosts; they are probed until the agent restarts");
        }
        self.changed.send_modify(|n| *n += 1);
        fresh.len()
    }

    /// Forgets every site not in `current` (site, policy): the plan dropped its enrolment or
    /// changed which hosts it takes.
    pub async fn retain(&self, current: &BTreeMap<String, String>) {
        let gone: Vec<String> = {
            let mut hosts = self.lock();
            let gone: Vec<String> = hosts
                .iter()
                .filter(|(site, (policy, _))| current.get(*site) != Some(policy))
                .map(|(site, _)| site.clone())
                .collect();
            for site in &gone {
                hosts.remove(site);
            }
            gone
        };
        if gone.is_empty() {
            return;
        }
        tracing::info!(sites = ?gone, "enrolled hosts forgotten: the plan no longer enrols them so");
        if let Err(err) = self.buffer.with(move |b| b.forget_enrolled(&gone)).await {
            tracing::error!(error = %err, "cannot forget enrolled hosts in the buffer file");
        }
        self.changed.send_modify(|n| *n += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netwarden_plan::Check;
    use netwarden_shared::DiscoveryMethod;

    fn host(
        address: &str,
        vendor: Option<&str>,
        name: Option<&str>,
        ports: &[u16],
    ) -> DiscoveredHost {
        DiscoveredHost {
            address: address.parse().unwrap(),
            mac: None,
            vendor: vendor.map(Into::into),
            hostname: name.map(Into::into),
            open_ports: ports.to_vec(),
            rtt_ms: None,
            method: DiscoveryMethod::Icmp,
            site: None,
            local: false,
        }
    }

    fn rule(all: bool) -> EnrolRule {
        EnrolRule::from_plan(&EnrolAssignment {
            check: Check::default(),
            all,
            addresses: vec!["10.0.5.0/24".into(), "10.0.9.9".into()],
            vendors: vec!["Cisco".into()],
            ports: vec![22],
            hostname_suffixes: vec![".MGMT.example.net.".into()],
        })
        .unwrap()
    }

    #[test]
    fn a_host_is_enrolled_by_any_matcher_in_any_case() {
        let r = rule(false);
        assert!(r.matches(&host("10.0.5.7", None, None, &[])));
        assert!(r.matches(&host("10.0.9.9", None, None, &[])));
        assert!(r.matches(&host("10.1.0.1", Some("Cisco Systems, Inc"), None, &[])));
        assert!(r.matches(&host("10.1.0.2", Some("CISCO-LINKSYS"), None, &[])));
        assert!(r.matches(&host("10.1.0.3", None, None, &[80, 22])));
        assert!(r.matches(&host("10.1.0.4", None, Some("sw1.mgmt.example.net."), &[])));
        assert!(!r.matches(&host(
            "10.1.0.5",
            Some("Apple, Inc."),
            Some("laptop.lan"),
            &[80]
        )));
        assert!(rule(true).matches(&host("10.1.0.5", None, None, &[])));
        assert_ne!(rule(true).policy(), rule(false).policy());
    }

    #[tokio::test]
    async fn enrolled_hosts_survive_a_restart_and_a_new_policy_forgets_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.db");
        let open = || SharedBuffer::new(crate::buffer::Buffer::open(&path, 10_000).unwrap());
        let enrolment = Enrolment::open(open()).await;
        let mut changes = enrolment.subscribe();
        let ips = |list: &[&str]| {
            list.iter()
                .map(|a| a.parse().unwrap())
                .collect::<Vec<IpAddr>>()
        };
        assert_eq!(
            enrolment
                .enrol("lan", "p1", ips(&["10.0.0.2", "10.0.0.3"]))
                .await,
            2
        );
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        // The same sweep again adds nothing and wakes nobody.
        assert_eq!(enrolment.enrol("lan", "p1", ips(&["10.0.0.3"])).await, 0);
        assert!(!changes.has_changed().unwrap());
        drop(enrolment);

        let again = Enrolment::open(open()).await;
        assert_eq!(again.snapshot()["lan"].1.len(), 2);
        let mut keep = BTreeMap::new();
        keep.insert("lan".to_string(), "p2".to_string());
        again.retain(&keep).await;
        assert!(again.snapshot().is_empty());
        drop(again);
        assert!(Enrolment::open(open()).await.snapshot().is_empty());
    }
}
