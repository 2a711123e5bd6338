//! The plan's parsers on damaged input: the shipped example and the NetBox exports, each byte
//! flipped, dropped, duplicated or cut at random (a fixed seed, so a failure reproduces), must
//! give a plan or an error, never a panic; a plan that parses must validate or say why, and what
//! validates must resolve for an agent. (Coverage-guided fuzzing of the collector's other
//! parsers lives in collector/fuzz; this runs in every `cargo test`.)

use netwarden_plan::csv::{targets_from_csv, CsvOptions};
use netwarden_plan::{from_yaml, validate, Resolver};

/// xorshift64*: enough randomness to damage files, the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn damage(input: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        if out.is_empty() {
            break;
        }
        let at = rng.below(out.len());
        match rng.below(5) {
            0 => out[at] = rng.next() as u8,
            1 => {
                out.remove(at);
            }
            2 => {
                let byte = out[at];
                out.insert(at, byte);
            }
            3 => out.truncate(at),
            _ => {
                // Characters parsers care about.
                let special = b":-[]{},\"'#\n\r\t;/\\&*!|>%@`";
                out.insert(at, special[rng.below(special.len())]);
            }
        }
    }
    out
}

#[test]
fn damaged_plan_files_give_a_plan_or_an_error_never_a_panic() {
    let example = include_bytes!("../../deploy/examples/plan.yaml");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut parsed, mut valid) = (0, 0);
    for _ in 0..3000 {
        let bytes = damage(example, &mut rng);
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        if let Ok(plan) = from_yaml(text) {
            parsed += 1;
            if validate(&plan).is_ok() {
                valid += 1;
                let resolver = Resolver::new(std::sync::Arc::new(plan), 1);
                resolver.resolve("agent-parra");
                resolver.resolve("agent-syd-1");
            }
        }
    }
    // The damage is real: many files no longer parse, some still do and validate.
    assert!(parsed > 100 && parsed < 3000, "{parsed} parsed");
    assert!(valid > 10, "{valid} valid");
}

#[test]
fn damaged_inventory_files_give_targets_or_an_error_never_a_panic() {
    let dir = format!("{}/tests/corpus/netbox", env!("CARGO_MANIFEST_DIR"));
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let mut read = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "csv") {
            continue;
        }
        let original = std::fs::read(&path).unwrap();
        for _ in 0..500 {
            let bytes = damage(&original, &mut rng);
            if targets_from_csv(bytes.as_slice(), "damaged.csv", &CsvOptions::default()).is_ok() {
                read += 1;
            }
        }
    }
    assert!(read > 100, "{read} damaged files still read");
}
