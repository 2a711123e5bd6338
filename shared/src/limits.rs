//! Process limits set at start. A collector holds a file descriptor per agent connection,
//! HTTP client and database file; the soft limit many systems give a process (1,024) runs out
//! long before the connection budgets do, and then nobody can connect. The hard limit is
//! usually far higher (systemd: 524,288; the units set `LimitNOFILE=65536`), so the soft
//! limit is raised to it, as Go's runtime does for every program.

/// Raises the soft open-files limit to the hard limit; returns the limit now in force
/// (`None` where there is no such limit or it cannot be read).
#[cfg(unix)]
pub fn raise_open_files() -> Option<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    // Some containers give an "unlimited" hard limit; a million is plenty.
    let target = hard.min(1 << 20);
    if soft >= target {
        return Some(soft);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
        Ok(()) => Some(target),
        Err(err) => {
            tracing::warn!(soft, hard, error = %err, "cannot raise the open-files limit");
            Some(soft)
        }
    }
}

#[cfg(not(unix))]
pub fn raise_open_files() -> Option<u64> {
    None
}

#[cfg(all(test, unix))]
mod tests {
    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        use nix::sys::resource::{getrlimit, Resource};
        let now = super::raise_open_files().unwrap();
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(now, soft);
        assert!(
            soft == hard.min(1 << 20) || soft > hard.min(1 << 20),
            "{soft} {hard}"
        );
    }
}
