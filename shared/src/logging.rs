//! Tracing setup shared by both binaries: `RUST_LOG` wins over the configured level.

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a full filter such as `info,tower=warn`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Installs the global subscriber; logs go to stderr so stdout stays for command output.
pub fn init(config: &LogConfig) {
    use std::io::IsTerminal;
    install(config, std::io::stderr, std::io::stderr().is_terminal());
}

/// Like `init`, but appends to `file`: a Windows service has no console to write to.
pub fn init_to_file(config: &LogConfig, file: std::fs::File) {
    install(config, std::sync::Mutex::new(file), false);
}

/// A writer whose failures are dropped. When stderr is closed, full or a broken pipe,
/// tracing-subscriber reports the failed write with `eprintln!`, which panics on the same
/// broken stderr and takes the process down (a SIGTERM's "stop requested" line was enough).
/// A log line that cannot be written is lost; the process goes on.
struct Forgiving<M>(M);

struct ForgivingWriter<W>(W);

impl<W: std::io::Write> std::io::Write for ForgivingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}

impl<'a, M: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a>
    for Forgiving<M>
{
    type Writer = ForgivingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        ForgivingWriter(self.0.make_writer())
    }
}

fn install<W>(config: &LogConfig, writer: W, ansi: bool)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let writer = Forgiving(writer);
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let result = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    // A second init (tests, embedded use) keeps the first subscriber.
    let _ = result;
}
