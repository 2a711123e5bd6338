//! Points of interconnection: what Cacti graph titles say about them. (The XLSX reference
//! data and the figures per POI come with the rest of issue 4.)

pub mod reference;
pub mod title;
pub mod utilisation;

pub use reference::{PoiReference, ReferenceError, ReferenceFile, ReferenceLayout};
pub use title::{parse_capacity, ParsedTitle, TitleError, TitleParser};
