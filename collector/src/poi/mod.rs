//! Points of interconnection: what Cacti graph titles say about them, the XLSX reference,
//! the state (and clock) each POI is in, and the utilisation maths.

pub mod reference;
pub mod state;
pub mod title;
pub mod utilisation;

pub use reference::{PoiReference, ReferenceError, ReferenceFile, ReferenceLayout};
pub use state::{poi_state, poi_zone, State};
pub use title::{parse_capacity, ParsedTitle, TitleError, TitleParser};
