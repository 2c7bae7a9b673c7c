//! The records of `cargo xtask bench --json`: one per measured configuration (workload, engine,
//! threads, parameters), holding its figures. Parsed from the JSON lines every benchmark program
//! prints, checked, and written out as one JSON array.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Value, json};

/// Every engine a record may name, in the order the table shows them. `gemm` (the gemm crate on
/// rayon) and `fma-peak` (the machine's FMA throughput, measured between W1's products as the
/// gauge of the load they met) are the two names the issue's list lacks.
pub const ENGINES: [&str; 10] = [
    "wengert",
    "no-tape",
    "matrixmultiply",
    "matrixmultiply-threaded",
    "gemm",
    "fma-peak",
    "candle",
    "dfdx",
    "pytorch",
    "jax",
];

/// The figures each workload's records must hold (others may be added beside them).
pub fn required_figures(workload: &str) -> Option<&'static [&'static str]> {
    Some(match workload {
        "W1" => &["gflops"],
        "W2" => &["ms_per_step"],
        "W3" => &["record_ns_per_op", "backward_ns_per_op"],
        "W4" => &["seconds", "test_accuracy"],
        "W5" => &["peak_rss_mib", "allocs_per_step"],
        "W6" => &["ms_per_step"],
        "W7" => &["ms_per_step", "reduce_share"],
        _ => return None,
    })
}

/// One measured configuration and its figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// `W1` .. `W7`.
    pub workload: String,
    /// One of [`ENGINES`].
    pub engine: String,
    /// Worker threads the kernels could use.
    pub threads: u64,
    /// The workload's parameters (`n`, `batch`, ...), all whole numbers.
    pub params: BTreeMap<String, u64>,
    /// The measured figures by name.
    pub figures: BTreeMap<String, f64>,
}

impl Record {
    /// A record of `figures` for one configuration.
    pub fn new(
        workload: &str,
        engine: &str,
        threads: usize,
        params: &[(&str, u64)],
        figures: &[(&str, f64)],
    ) -> Self {
        Record {
            workload: workload.to_string(),
            engine: engine.to_string(),
            threads: threads as u64,
            params: params.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            figures: figures.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    /// The record as JSON, in the issue's format.
    pub fn to_json(&self) -> Value {
        json!({
            "workload": self.workload,
            "engine": self.engine,
            "threads": self.threads,
            "params": self.params,
            "figures": self.figures,
        })
    }

    /// Parses and checks one record.
    pub fn from_json(value: &Value) -> Result<Record, String> {
        let obj = value.as_object().ok_or("a record is not a JSON object")?;
        let text = |key: &str| -> Result<String, String> {
            obj.get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or(format!("record field '{key}' is missing or not a string"))
        };
        let record = Record {
            workload: text("workload")?,
            engine: text("engine")?,
            threads: obj
                .get("threads")
                .and_then(Value::as_u64)
                .ok_or("record field 'threads' is missing or not a whole number")?,
            params: whole_numbers(obj.get("params"), "params")?,
            figures: numbers(obj.get("figures"))?,
        };
        record.check()?;
        Ok(record)
    }

    /// Checks the names and the values against the issue's format.
    pub fn check(&self) -> Result<(), String> {
        let required = required_figures(&self.workload)
            .ok_or(format!("unknown workload '{}'", self.workload))?;
        if !ENGINES.contains(&self.engine.as_str()) {
            return Err(format!(
                "{}: unknown engine '{}'",
                self.workload, self.engine
            ));
        }
        if self.threads == 0 {
            return Err(format!("{} {}: threads is 0", self.workload, self.engine));
        }
        for figure in required {
            let value = self.figures.get(*figure).ok_or(format!(
                "{} {}: figure '{figure}' is missing",
                self.workload, self.engine
            ))?;
            if !value.is_finite() || *value < 0.0 {
                return Err(format!(
                    "{} {}: figure '{figure}' is {value}",
                    self.workload, self.engine
                ));
            }
        }
        if let Some(acc) = self.figures.get("test_accuracy")
            && !(0.0..=1.0).contains(acc)
        {
            return Err(format!(
                "{} {}: test_accuracy {acc} is not in [0, 1]",
                self.workload, self.engine
            ));
        }
        Ok(())
    }

    /// `n=512`, `batch=128`: the parameters as the table shows them.
    pub fn params_label(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.params {
            if !s.is_empty() {
                s.push(' ');
            }
            let _ = write!(s, "{k}={v}");
        }
        if s.is_empty() { "-".to_string() } else { s }
    }
}

fn whole_numbers(value: Option<&Value>, field: &str) -> Result<BTreeMap<String, u64>, String> {
    let obj = value.and_then(Value::as_object).ok_or(format!(
        "record field '{field}' is missing or not an object"
    ))?;
    obj.iter()
        .map(|(k, v)| {
            v.as_u64()
                .map(|n| (k.clone(), n))
                .ok_or(format!("{field}.{k} is not a whole number"))
        })
        .collect()
}

fn numbers(value: Option<&Value>) -> Result<BTreeMap<String, f64>, String> {
    let obj: &Map<String, Value> = value
        .and_then(Value::as_object)
        .ok_or("record field 'figures' is missing or not an object")?;
    if obj.is_empty() {
        return Err("a record has no figures".to_string());
    }
    obj.iter()
        .map(|(k, v)| {
            v.as_f64()
                .map(|n| (k.clone(), n))
                .ok_or(format!("figure '{k}' is not a number"))
        })
        .collect()
}

/// Parses JSON lines printed by a benchmark program; lines that are not JSON objects (progress
/// messages) are passed to `other`.
pub fn parse_lines(text: &str, mut other: impl FnMut(&str)) -> Result<Vec<Record>, String> {
    let mut records = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if !line.starts_with('{') {
            if !line.is_empty() {
                other(line);
            }
            continue;
        }
        let value: Value =
            serde_json::from_str(line).map_err(|e| format!("bad record line '{line}': {e}"))?;
        records.push(Record::from_json(&value)?);
    }
    Ok(records)
}

/// The records as a JSON array, one record per line.
pub fn to_json_text(records: &[Record]) -> String {
    let mut out = String::from("[\n");
    for (i, r) in records.iter().enumerate() {
        out.push_str("  ");
        out.push_str(&r.to_json().to_string());
        out.push_str(if i + 1 < records.len() { ",\n" } else { "\n" });
    }
    out.push_str("]\n");
    out
}

/// Checks a file written by `--json`: a JSON array of valid records, with wengert measured on
/// every workload in it. Returns the records.
pub fn check_json_text(text: &str) -> Result<Vec<Record>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let items = value.as_array().ok_or("not a JSON array of records")?;
    if items.is_empty() {
        return Err("no records".to_string());
    }
    let records = items
        .iter()
        .map(Record::from_json)
        .collect::<Result<Vec<_>, _>>()?;
    for workload in ["W1", "W2", "W3", "W4", "W5", "W6"] {
        let present = records.iter().any(|r| r.workload == workload);
        let wengert = records
            .iter()
            .any(|r| r.workload == workload && r.engine == "wengert");
        if present && !wengert {
            return Err(format!("{workload} has records but none for wengert"));
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::record_json;

    #[test]
    fn the_issues_example_record_round_trips() {
        let text = r#"{"workload": "W2", "engine": "wengert", "threads": 2, "params": {"batch": 128}, "figures": {"ms_per_step": 10.5}}"#;
        let record = Record::from_json(&serde_json::from_str(text).unwrap()).unwrap();
        assert_eq!(
            record,
            Record::new(
                "W2",
                "wengert",
                2,
                &[("batch", 128)],
                &[("ms_per_step", 10.5)]
            )
        );
        let back = Record::from_json(&record.to_json()).unwrap();
        assert_eq!(back, record);
        assert_eq!(record.params_label(), "batch=128");
    }

    #[test]
    fn lines_from_other_programs_parse_and_progress_passes_through() {
        let text = format!(
            "progress line\n{}\n\n{}\n",
            record_json("W1", "gemm", 2, &[("n", 512)], &[("gflops", 70.0)]),
            record_json("W1", "fma-peak", 1, &[("n", 512)], &[("gflops", 40.0)]),
        );
        let mut seen = Vec::new();
        let records = parse_lines(&text, |l| seen.push(l.to_string())).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(seen, ["progress line"]);
    }

    #[test]
    fn bad_records_are_refused_with_a_reason() {
        let cases = [
            (
                r#"{"workload":"W9","engine":"wengert","threads":1,"params":{},"figures":{"x":1}}"#,
                "unknown workload",
            ),
            (
                r#"{"workload":"W1","engine":"torch","threads":1,"params":{},"figures":{"gflops":1}}"#,
                "unknown engine",
            ),
            (
                r#"{"workload":"W1","engine":"wengert","threads":0,"params":{},"figures":{"gflops":1}}"#,
                "threads",
            ),
            (
                r#"{"workload":"W3","engine":"wengert","threads":1,"params":{},"figures":{"record_ns_per_op":1}}"#,
                "backward_ns_per_op",
            ),
            (
                r#"{"workload":"W2","engine":"wengert","threads":1,"params":{"batch":1.5},"figures":{"ms_per_step":1}}"#,
                "whole number",
            ),
            (
                r#"{"workload":"W2","engine":"wengert","threads":1,"params":{},"figures":{"ms_per_step":null}}"#,
                "not a number",
            ),
            (
                r#"{"workload":"W4","engine":"wengert","threads":1,"params":{},"figures":{"seconds":1,"test_accuracy":97}}"#,
                "test_accuracy",
            ),
        ];
        for (text, reason) in cases {
            let err = Record::from_json(&serde_json::from_str(text).unwrap()).unwrap_err();
            assert!(err.contains(reason), "{text}: {err}");
        }
    }

    #[test]
    fn a_written_file_checks_and_a_file_without_wengert_does_not() {
        let records = vec![
            Record::new("W1", "wengert", 1, &[("n", 128)], &[("gflops", 30.0)]),
            Record::new(
                "W1",
                "matrixmultiply",
                1,
                &[("n", 128)],
                &[("gflops", 31.0)],
            ),
        ];
        let text = to_json_text(&records);
        assert_eq!(check_json_text(&text).unwrap(), records);
        let text = to_json_text(&records[1..]);
        assert!(check_json_text(&text).unwrap_err().contains("wengert"));
        assert!(check_json_text("[]").is_err());
        assert!(check_json_text("{").is_err());
    }
}
