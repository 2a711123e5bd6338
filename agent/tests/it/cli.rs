//! The agent CLI's answers to bad input: a clear message naming what is wrong, exit code 2,
//! and nothing sent. No privileges needed.

use std::process::Command;

fn agent(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_netwarden-agent"))
        .args(args)
        .output()
        .expect("run the agent");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_invalid_cidr_is_named() {
    for bad in ["10.0.0.0/33", "10.0.0.300/24", "banana"] {
        let (code, err) = agent(&["discover", bad]);
        assert_eq!(code, Some(2), "{bad}: {err}");
        assert!(
            err.contains(&format!("{bad:?}")) && err.contains("CIDR"),
            "{err}"
        );
    }
}

#[test]
fn a_slash_8_needs_force() {
    let (code, err) = agent(&["discover", "10.0.0.0/8"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("16777214 addresses") && err.contains("--force"),
        "{err}"
    );
    let (code, err) = agent(&["probe", "10.0.0.0/8"]);
    assert_eq!(code, Some(2), "{err}");
    // Forced, it is still bounded.
    let (code, err) = agent(&["discover", "10.0.0.0/8", "--force"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("at most"), "{err}");
}

#[test]
fn an_unknown_port_name_is_named_with_the_known_ones() {
    let (code, err) = agent(&["discover", "192.0.2.0/30", "--ports", "ssh,gopherx"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("\"gopherx\"") && err.contains("https"),
        "{err}"
    );
    let (code, err) = agent(&["discover", "192.0.2.0/30", "--ports", "90-80"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("reversed"), "{err}");
}

#[test]
fn out_of_range_options_are_refused() {
    let (code, err) = agent(&["probe", "192.0.2.1", "--count", "0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--count"), "{err}");
    let (code, err) = agent(&["discover", "192.0.2.0/30", "--rate", "0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--rate"), "{err}");
}

#[test]
fn ports_reports_each_port_as_a_tcp_check_sees_it() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().port();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_netwarden-agent"))
        .args([
            "ports",
            "127.0.0.1",
            "--ports",
            &format!("{open},{closed}"),
            "--json",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let state = |port: u16| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["port"] == port)
            .map(|r| r["state"].as_str().unwrap().to_string())
    };
    assert_eq!(state(open).as_deref(), Some("open"), "{rows}");
    assert_eq!(state(closed).as_deref(), Some("refused"), "{rows}");
    assert!(
        err.contains("2 checks of 1 hosts: 1 open, 1 refused"),
        "{err}"
    );

    let (code, err) = agent(&["ports", "192.0.2.1", "--ports", "gopherx"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("\"gopherx\""), "{err}");
    let (code, err) = agent(&["ports", "192.0.2.1", "--ports", "22", "--timeout-ms", "0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--timeout-ms"), "{err}");
}
