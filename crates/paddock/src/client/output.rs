//! Printing answers: aligned tables for people, JSON or YAML for scripts.

use anyhow::Result;
use clap::ValueEnum;
use serde::Serialize;
use std::io::Write;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// Prints `value` as JSON/YAML, or as the table `rows` makes of it.
pub fn print<T: Serialize>(
    format: Format,
    value: &T,
    header: &[&str],
    rows: impl FnOnce(&T) -> Vec<Vec<String>>,
) -> Result<()> {
    show(format, value, |v| table(header, &rows(v)))
}

/// Prints `value` as JSON/YAML, or as the text `text` makes of it for people.
pub fn show<T: Serialize>(format: Format, value: &T, text: impl FnOnce(&T) -> String) -> Result<()> {
    let out = render(format, value, text)?;
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}

fn render<T: Serialize>(format: Format, value: &T, text: impl FnOnce(&T) -> String) -> Result<String> {
    Ok(match format {
        Format::Json => serde_json::to_string_pretty(value)? + "\n",
        // Through JSON's data model, so YAML says exactly what the JSON does:
        // serde_yaml_ng would write an enum variant as a YAML tag (`!flag`),
        // which other YAML tools cannot read and `-f` files do not use.
        Format::Yaml => serde_yaml_ng::to_string(&serde_json::to_value(value)?)?,
        Format::Table => text(value),
    })
}

/// Columns padded to their widest cell, like kubectl.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// `Label: value` lines, the values aligned (a detail view, like `kubectl describe`).
pub fn fields(lines: &[(&str, String)]) -> String {
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    lines.iter().map(|(k, v)| format!("{:<width$} {v}\n", format!("{k}:"))).collect()
}

/// A titled table after a detail view's fields; nothing when there are no rows.
pub fn section(title: &str, header: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() { String::new() } else { format!("\n{title}:\n{}", table(header, rows)) }
}

/// An optional value for a table cell.
pub fn cell(v: Option<impl ToString>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn yaml_is_plain_yaml_as_the_json_is() {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        enum Generate {
            Flag { format: String },
        }
        let v = vec![Generate::Flag { format: "FLAG{%s}".into() }];
        let yaml = super::render(super::Format::Yaml, &v, |_| String::new()).unwrap();
        assert!(!yaml.contains('!'), "no YAML tags: {yaml}");
        let back: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(back, serde_json::json!([{"flag": {"format": "FLAG{%s}"}}]));
    }

    #[test]
    fn tables_align() {
        let t = super::table(
            &["NAME", "PHASE"],
            &[vec!["a-long-name".into(), "Running".into()], vec!["b".into(), "-".into()]],
        );
        assert_eq!(t, "NAME          PHASE\na-long-name   Running\nb             -\n");
    }
}
