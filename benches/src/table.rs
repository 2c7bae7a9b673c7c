//! The results table: for each workload and figure, one row per configuration (parameters and
//! threads), one column per engine, then wengert's ratio to each other engine. Printed as a
//! Markdown table, so the terminal output pastes into `docs/BENCHMARKS.md` unchanged.

use std::collections::BTreeMap;

use crate::record::{ENGINES, Record, required_figures};

/// Whether a larger value of `figure` is better.
pub fn higher_is_better(figure: &str) -> bool {
    figure.contains("gflops")
        || matches!(figure, "test_accuracy" | "samples_per_s" | "conv_over_w1")
}

/// Formats a figure with about four significant digits.
pub fn format_value(v: f64) -> String {
    if !v.is_finite() {
        return "-".to_string();
    }
    let a = v.abs();
    if a >= 1000.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 10.0 {
        format!("{v:.2}")
    } else if a >= 1.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.4}")
    }
}

type RowKey = (u64, Vec<(String, u64)>, String);

/// The whole table, every workload present in `records`, in order W1..W7.
pub fn render(records: &[Record]) -> String {
    let mut out = String::new();
    for workload in ["W1", "W2", "W3", "W4", "W5", "W6", "W7"] {
        let rows: Vec<&Record> = records.iter().filter(|r| r.workload == workload).collect();
        if rows.is_empty() {
            continue;
        }
        let mut figures: Vec<String> = required_figures(workload)
            .unwrap_or(&[])
            .iter()
            .map(|s| s.to_string())
            .collect();
        for r in &rows {
            for f in r.figures.keys() {
                if !figures.contains(f) {
                    figures.push(f.clone());
                }
            }
        }
        for figure in figures {
            render_figure(&mut out, workload, &figure, &rows);
        }
    }
    out
}

fn render_figure(out: &mut String, workload: &str, figure: &str, records: &[&Record]) {
    let mut rows: BTreeMap<RowKey, BTreeMap<&str, f64>> = BTreeMap::new();
    for r in records {
        let Some(&v) = r.figures.get(figure) else {
            continue;
        };
        let sort: Vec<(String, u64)> = r.params.iter().map(|(k, v)| (k.clone(), *v)).collect();
        rows.entry((r.threads, sort, r.params_label()))
            .or_default()
            .insert(r.engine.as_str(), v);
    }
    if rows.is_empty() {
        return;
    }
    let engines: Vec<&str> = ENGINES
        .iter()
        .copied()
        .filter(|e| rows.values().any(|row| row.contains_key(e)))
        .collect();
    let others: Vec<&str> = engines
        .iter()
        .copied()
        .filter(|e| *e != "wengert")
        .collect();
    let better = if higher_is_better(figure) {
        "higher is better"
    } else {
        "lower is better"
    };
    out.push_str(&format!(
        "\n{workload} {figure} ({better}; ratios are wengert ÷ engine)\n\n"
    ));
    let mut header = vec!["params".to_string(), "threads".to_string()];
    header.extend(engines.iter().map(|e| e.to_string()));
    header.extend(others.iter().map(|e| format!("÷ {e}")));
    let mut lines = vec![header];
    for ((threads, _, label), row) in &rows {
        let mut line = vec![label.clone(), threads.to_string()];
        line.extend(
            engines
                .iter()
                .map(|e| row.get(e).map_or("-".to_string(), |v| format_value(*v))),
        );
        let ours = row.get("wengert");
        line.extend(others.iter().map(|e| match (ours, row.get(e)) {
            (Some(a), Some(b)) if *b != 0.0 => format!("{:.2}", a / b),
            _ => "-".to_string(),
        }));
        lines.push(line);
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (i, line) in lines.iter().enumerate() {
        out.push('|');
        for (cell, w) in line.iter().zip(&widths) {
            let pad = w - cell.chars().count();
            out.push_str(&format!(" {cell}{} |", " ".repeat(pad)));
        }
        out.push('\n');
        if i == 0 {
            out.push('|');
            for w in &widths {
                out.push_str(&format!("{}|", "-".repeat(w + 2)));
            }
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_columns_and_ratios() {
        let records = vec![
            Record::new("W1", "wengert", 1, &[("n", 128)], &[("gflops", 30.0)]),
            Record::new(
                "W1",
                "matrixmultiply",
                1,
                &[("n", 128)],
                &[("gflops", 40.0)],
            ),
            Record::new("W1", "fma-peak", 1, &[("n", 128)], &[("gflops", 60.0)]),
            Record::new(
                "W3",
                "wengert",
                2,
                &[],
                &[("record_ns_per_op", 50.0), ("backward_ns_per_op", 20.0)],
            ),
        ];
        let table = render(&records);
        assert!(table.contains("W1 gflops (higher is better"), "{table}");
        let row = table.lines().find(|l| l.starts_with("| n=128")).unwrap();
        assert!(
            row.contains("30.00") && row.contains("40.00") && row.contains("60.00"),
            "{row}"
        );
        assert!(row.contains("0.75") && row.contains("0.50"), "{row}");
        assert!(table.contains("W3 record_ns_per_op (lower is better"));
        assert!(table.contains("W3 backward_ns_per_op"));
    }

    #[test]
    fn values_keep_about_four_digits() {
        assert_eq!(format_value(12345.6), "12346");
        assert_eq!(format_value(123.456), "123.5");
        assert_eq!(format_value(1.23456), "1.235");
        assert_eq!(format_value(0.012345), "0.0123");
        assert_eq!(format_value(f64::NAN), "-");
    }
}
