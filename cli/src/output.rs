//! Printing what the collector answered: a table for people, JSON for scripts.

use comfy_table::{presets, Table};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// A column: its heading and the field it shows.
pub type Column = (&'static str, &'static str);

/// Prints a list: one row per item, or the JSON array as it came.
pub fn list(format: Format, items: &Value, columns: &[Column]) {
    match format {
        Format::Json => json(items),
        Format::Table => {
            let mut table = Table::new();
            table.load_preset(presets::NOTHING);
            table.set_header(columns.iter().map(|(heading, _)| *heading));
            for item in items.as_array().into_iter().flatten() {
                table.add_row(columns.iter().map(|(_, field)| cell(&item[*field])));
            }
            println!("{table}");
        }
    }
}

/// Prints one item: field and value per line, or the JSON as it came.
pub fn one(format: Format, item: &Value) {
    match format {
        Format::Json => json(item),
        Format::Table => {
            let mut table = Table::new();
            table.load_preset(presets::NOTHING);
            if let Some(fields) = item.as_object() {
                for (field, value) in fields {
                    table.add_row([field.clone(), cell(value)]);
                }
            }
            println!("{table}");
        }
    }
}

fn json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// A value as a table cell: text as it is, nothing as `-`, anything nested as compact JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.2}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_read_plainly() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!("10.0.0.2")), "10.0.0.2");
        assert_eq!(cell(&json!(3)), "3");
        assert_eq!(cell(&json!(12.3456)), "12.35");
        assert_eq!(cell(&json!({"a": 1})), r#"{"a":1}"#);
    }
}
