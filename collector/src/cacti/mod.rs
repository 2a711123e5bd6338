//! Cacti: the HTTP client that logs in and fetches graph exports, the export parser, the
//! `[cacti]` configuration, and the scrape job that turns exports into POI utilisation.

pub mod alerts;
pub mod client;
pub mod config;
pub mod export;
pub mod job;

pub use client::{CactiClient, CactiError, CactiSource, GraphExport, RowLabels, ScrapeReport};
pub use config::{CactiConfig, PoiConfig, ScrapeSettings};
pub use export::{ExportError, ExportHeader, ExportReader, Limits, Row};
pub use job::{Scraper, SourceRun};
