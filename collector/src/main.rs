//! The collector's binary: parses the command line and runs it (everything else is the
//! library, so tests and benchmarks drive the same code).

use clap::Parser;
use netwarden_collector::cli::{self, Cli, Exit};
use std::io::Write;

// A request allocates and frees a few dozen small blocks on whichever worker polls it; glibc's
// malloc spent about 15 % of the ingest path's CPU on that (and consolidating hyper's 8 KiB read
// buffers), mimalloc's per-thread pages far less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Errors are printed whole (`error: context: cause`), without anyhow's debug dump, and exit 1.
fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // Not eprintln!: with stderr closed it would panic and hide the exit code.
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            match err.downcast_ref::<Exit>() {
                Some(exit) => std::process::ExitCode::from(exit.code),
                None => std::process::ExitCode::FAILURE,
            }
        }
    }
}
