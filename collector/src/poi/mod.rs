//! Points of interconnection: what Cacti graph titles say about them. (The XLSX reference
//! data and the figures per POI come with the rest of issue 4.)

pub mod title;

pub use title::{ParsedTitle, TitleError, TitleParser};
