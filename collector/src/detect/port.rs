//! TCP port checks (a `tcp` check of the fleet plan): a port that stops accepting connections
//! for `offline_rounds` checks in a row is `port_down`, and `clear_rounds` accepted
//! connections in a row clear it, the device rules' debounce and hysteresis. A port is
//! checked because it is expected open, so any failure counts: refused (nothing listens),
//! timed out (filtered, or the host is away) or unreachable.

use super::device::DeviceRules;
use super::streak::{Reading, Streak};
use super::{firing, Signal};
use crate::domain::alerting::{AnomalyKind, Severity};
use netwarden_shared::{PortCheck, PortState};

/// The subject of a port's anomaly: `agent/address/tcp/port` (an agent id has no '/').
pub fn subject(agent: &str, check: &PortCheck) -> String {
    format!("{agent}/{}/tcp/{}", check.target, check.port)
}

/// The agent, address and port a `port_down` subject names.
pub fn parse_subject(subject: &str) -> Option<(&str, &str, u16)> {
    let (rest, port) = subject.rsplit_once("/tcp/")?;
    let (agent, address) = rest.split_once('/')?;
    Some((agent, address, port.parse().ok()?))
}

/// Judges one check of one port; `state` is that port's run so far.
pub fn observe(
    rules: &DeviceRules,
    state: &mut Streak,
    agent: &str,
    check: &PortCheck,
) -> Option<Signal> {
    let reading = if check.state == PortState::Open {
        Reading::Good
    } else {
        Reading::Bad
    };
    let subject = subject(agent, check);
    match state.step(reading, rules.offline_rounds, rules.clear_rounds)? {
        true => Some(firing(
            AnomalyKind::PortDown,
            &subject,
            agent,
            Severity::High,
            format!(
                "TCP port {} on {} is down ({}) for {} checks",
                check.port,
                check.target,
                check.state.as_str(),
                state.bad()
            ),
            serde_json::json!({
                "address": check.target.to_string(),
                "port": check.port,
                "state": check.state.as_str(),
                "checks": state.bad(),
            }),
        )),
        false => Some(Signal::Clear {
            kind: AnomalyKind::PortDown,
            subject,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(state: PortState) -> PortCheck {
        PortCheck {
            target: "2001:db8::5".parse().unwrap(),
            port: 443,
            state,
            connect_ms: (state == PortState::Open).then_some(1.5),
        }
    }

    #[test]
    fn a_port_is_down_after_the_rounds_and_up_again_with_hysteresis() {
        let rules = DeviceRules::default();
        let mut streak = Streak::default();
        let mut feed = |s| observe(&rules, &mut streak, "branch-1", &check(s));
        assert_eq!(feed(PortState::Open), None);
        assert_eq!(feed(PortState::Refused), None, "one failed check is a blip");
        let Some(Signal::Firing(anomaly)) = feed(PortState::Timeout) else {
            panic!("two failed checks in a row are a port down");
        };
        assert_eq!(anomaly.kind, AnomalyKind::PortDown);
        assert_eq!(anomaly.subject, "branch-1/2001:db8::5/tcp/443");
        assert_eq!(anomaly.group_key.as_deref(), Some("branch-1"));
        assert!(anomaly.summary.contains("(timeout)"), "{}", anomaly.summary);
        assert_eq!(feed(PortState::Unreachable), None, "still down, said once");
        assert_eq!(feed(PortState::Open), None, "one open check is not enough");
        assert!(matches!(
            feed(PortState::Open),
            Some(Signal::Clear {
                kind: AnomalyKind::PortDown,
                ..
            })
        ));
    }

    #[test]
    fn a_subject_names_its_agent_address_and_port() {
        let subject = subject("a", &check(PortState::Open));
        assert_eq!(parse_subject(&subject), Some(("a", "2001:db8::5", 443)));
        assert_eq!(parse_subject("a/10.0.0.1"), None);
        assert_eq!(parse_subject("a/10.0.0.1/tcp/x"), None);
    }
}
