//! Circuit telemetry: samples posted by REST (single or batch), checked field by field
//! (`sample`), stored through a group committer (`committer`). Every sample is kept, also for
//! circuit ids not known yet (they are listed, not dropped).

pub mod backfill;
pub mod committer;
pub mod detector;
pub mod import;
pub mod retention;
pub mod sample;
pub mod simulate;
pub mod timeline;

pub use committer::TelemetryCommitter;
pub use sample::{FieldError, TelemetrySample};
