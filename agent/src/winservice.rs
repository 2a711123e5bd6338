//! The Windows service control protocol. The MSI registers the service to start
//! `netwarden-agent.exe service --config <ProgramData>\Netwarden\agent.toml`; start, stop and
//! shutdown map to the agent's own lifecycle, so a stop drains the buffer to the collector
//! (for up to `uplink.drain_timeout_secs`) before the service reports stopped. Logs go to
//! `agent.log` beside the config: a service has no console.

use crate::config::Settings;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use windows_service::service::{
    ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::{define_windows_service, service_dispatcher};

/// The service's name in the service manager (and in the MSI's ServiceInstall row).
pub const SERVICE_NAME: &str = "NetwardenAgent";

static CONFIG: OnceLock<PathBuf> = OnceLock::new();

define_windows_service!(ffi_service_main, service_main);

/// Hands the process to the service manager; returns when the service has stopped. Fails at
/// once when not started by the service manager (run from a console, use `run`).
pub fn run(config: PathBuf) -> Result<(), windows_service::Error> {
    let _ = CONFIG.set(config);
    service_dispatcher::start(SERVICE_NAME, ffi_service_main)
}

fn service_main(_arguments: Vec<OsString>) {
    let Some(config) = CONFIG.get().cloned() else {
        return;
    };
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let handler = move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown | ServiceControl::Preshutdown => {
            stop.cancel();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let Ok(status) = service_control_handler::register(SERVICE_NAME, handler) else {
        return;
    };
    let report = |state: ServiceState, exit: u32, wait: Duration| {
        let accepted = if state == ServiceState::Running {
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
        } else {
            ServiceControlAccept::empty()
        };
        let _ = status.set_service_status(ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: accepted,
            exit_code: if exit == 0 {
                ServiceExitCode::Win32(0)
            } else {
                ServiceExitCode::ServiceSpecific(exit)
            },
            checkpoint: 0,
            wait_hint: wait,
            process_id: None,
        });
    };
    report(ServiceState::StartPending, 0, Duration::from_secs(10));
    let exit = match serve(&config, shutdown, &report) {
        Ok(()) => 0,
        Err(err) => {
            tracing::error!(error = %err, "the agent service failed");
            1
        }
    };
    report(ServiceState::Stopped, exit, Duration::ZERO);
}

fn serve(
    config: &std::path::Path,
    shutdown: CancellationToken,
    report: &dyn Fn(ServiceState, u32, Duration),
) -> anyhow::Result<()> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.with_file_name("agent.log"));
    let settings = match Settings::load(config) {
        Ok(settings) => settings,
        Err(err) => {
            // Before logging is set up: the operator's only clue is this line in agent.log.
            if let Ok(mut file) = log {
                use std::io::Write;
                let _ = writeln!(
                    file,
                    "{} ERROR not started: {err}",
                    chrono::Utc::now().to_rfc3339()
                );
            }
            return Err(err.into());
        }
    };
    match log {
        Ok(file) => netwarden_shared::logging::init_to_file(&settings.log, file),
        Err(_) => netwarden_shared::logging::init(&settings.log),
    }
    let drain = Duration::from_secs(settings.uplink.drain_timeout_secs + 5);
    let runtime = tokio::runtime::Runtime::new()?;
    report(ServiceState::Running, 0, Duration::ZERO);
    runtime.block_on(async {
        let stopping = shutdown.clone();
        let mut agent = tokio::spawn(crate::run(settings, shutdown));
        tokio::select! {
            // Ended by itself (it could not start): report that, not a hang.
            ended = &mut agent => return Ok::<(), anyhow::Error>(ended??),
            _ = stopping.cancelled() => {}
        }
        tracing::info!("stop requested by the service manager; draining the buffer");
        report(ServiceState::StopPending, 0, drain);
        agent.await??;
        Ok(())
    })?;
    Ok(())
}

/// The Windows Firewall rule's name, as the MSI adds and removes it.
pub const FIREWALL_RULE: &str = "Netwarden Agent ICMP echo reply";

/// Adds (or removes) the inbound rule for ICMPv4 echo replies (type 0) with netsh.
pub fn firewall(add: bool) -> anyhow::Result<()> {
    let name = format!("name={FIREWALL_RULE}");
    let mut args = vec!["advfirewall", "firewall"];
    if add {
        args.extend([
            "add",
            "rule",
            &name,
            "dir=in",
            "action=allow",
            "protocol=icmpv4:0,any",
        ]);
    } else {
        args.extend(["delete", "rule", &name]);
    }
    let out = std::process::Command::new("netsh").args(&args).output()?;
    if !out.status.success() {
        anyhow::bail!(
            "netsh {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    println!(
        "firewall rule {FIREWALL_RULE:?} {}",
        if add { "added" } else { "removed" }
    );
    Ok(())
}
