//! Which Australian state a POI is in, and so which clock its busy hour runs on. The NBN
//! POI code starts with the state's postcode digit (0 NT, 2 NSW/ACT, 3 VIC, 4 QLD, 5 SA,
//! 6 WA, 7 TAS); a `State` column in the reference workbook overrides it.

use chrono_tz::{Australia, Tz};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Nt,
    Nsw,
    Act,
    Vic,
    Qld,
    Sa,
    Wa,
    Tas,
}

impl State {
    /// From a POI code's first character (its postcode digit). NSW and the ACT share the
    /// digit 2 (and a clock); the code alone says NSW.
    pub fn from_code(code: &str) -> Option<State> {
        Some(match code.as_bytes().first()? {
            b'0' => State::Nt,
            b'2' => State::Nsw,
            b'3' => State::Vic,
            b'4' => State::Qld,
            b'5' => State::Sa,
            b'6' => State::Wa,
            b'7' => State::Tas,
            _ => return None,
        })
    }

    /// From what people write in a workbook: `VIC`, `Vic.`, `Victoria`, `NSW/ACT`.
    pub fn from_name(name: &str) -> Option<State> {
        let key: String = name
            .chars()
            .filter(|c| c.is_ascii_alphabetic() || *c == '/')
            .collect::<String>()
            .to_ascii_lowercase();
        let first = key.split('/').next().unwrap_or("");
        Some(match first {
            "nt" | "northernterritory" => State::Nt,
            "nsw" | "newsouthwales" => State::Nsw,
            "act" | "australiancapitalterritory" => State::Act,
            "vic" | "victoria" => State::Vic,
            "qld" | "queensland" => State::Qld,
            "sa" | "southaustralia" => State::Sa,
            "wa" | "westernaustralia" => State::Wa,
            "tas" | "tasmania" => State::Tas,
            _ => return None,
        })
    }

    pub fn abbreviation(self) -> &'static str {
        match self {
            State::Nt => "NT",
            State::Nsw => "NSW",
            State::Act => "ACT",
            State::Vic => "VIC",
            State::Qld => "QLD",
            State::Sa => "SA",
            State::Wa => "WA",
            State::Tas => "TAS",
        }
    }

    /// The state's clock (with its daylight saving, where it has one).
    pub fn zone(self) -> Tz {
        match self {
            State::Nt => Australia::Darwin,
            State::Nsw | State::Act => Australia::Sydney,
            State::Vic => Australia::Melbourne,
            State::Qld => Australia::Brisbane,
            State::Sa => Australia::Adelaide,
            State::Wa => Australia::Perth,
            State::Tas => Australia::Hobart,
        }
    }
}

/// A POI's state: the reference's `State` when it names one, else the code's digit.
pub fn poi_state(code: &str, reference_state: Option<&str>) -> Option<State> {
    reference_state
        .and_then(State::from_name)
        .or_else(|| State::from_code(code))
}

/// The zone a POI's daily figures and busy hour use (UTC when nothing says a state).
pub fn poi_zone(code: &str, reference_state: Option<&str>) -> Tz {
    poi_state(code, reference_state).map_or(chrono_tz::UTC, State::zone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_digit_is_the_postcode_digit() {
        let zone = |code| poi_zone(code, None);
        assert_eq!(zone("0DAR"), Australia::Darwin);
        assert_eq!(zone("2PAR"), Australia::Sydney);
        assert_eq!(zone("3MEL"), Australia::Melbourne);
        assert_eq!(zone("4IPS"), Australia::Brisbane);
        assert_eq!(zone("5SAL"), Australia::Adelaide);
        assert_eq!(zone("6FRE"), Australia::Perth);
        assert_eq!(zone("7LAU"), Australia::Hobart);
        assert_eq!(zone("1XYZ"), chrono_tz::UTC);
        assert_eq!(State::from_code("").map(State::abbreviation), None);
    }

    #[test]
    fn the_reference_state_overrides_the_digit() {
        // A POI near a border, filed by the operator under the state whose clock it keeps.
        assert_eq!(poi_zone("2ABY", Some("VIC")), Australia::Melbourne);
        assert_eq!(poi_zone("2CBR", Some("ACT")), Australia::Sydney);
        assert_eq!(poi_zone("4IPS", Some(" Queensland ")), Australia::Brisbane);
        assert_eq!(poi_zone("5SAL", Some("S.A.")), Australia::Adelaide);
        assert_eq!(poi_zone("2PAR", Some("NSW/ACT")), Australia::Sydney);
        // Something unreadable falls back to the code.
        assert_eq!(poi_zone("6FRE", Some("??")), Australia::Perth);
    }
}
