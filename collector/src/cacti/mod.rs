//! Cacti: reading its CSV graph exports. (The scraper that logs in and fetches them, and
//! what is done with the figures, come with the rest of issue 4.)

pub mod client;
pub mod export;

pub use client::{CactiClient, CactiError, CactiSource, GraphExport, ScrapeReport};
pub use export::{ExportError, ExportHeader, ExportReader, Limits, Row};
