//! The Markdown report: tables, target verdicts and number formatting.

use std::fmt::Write as _;

/// A Markdown table.
pub struct Table {
    pub title: String,
    pub note: Option<String>,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(title: &str, header: &[&str]) -> Table {
        Table {
            title: title.to_string(),
            note: None,
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn note(mut self, note: &str) -> Table {
        self.note = Some(note.to_string());
        self
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self, out: &mut String) {
        let _ = writeln!(out, "### {}\n", self.title);
        if let Some(note) = &self.note {
            let _ = writeln!(out, "{note}\n");
        }
        let _ = writeln!(out, "| {} |", self.header.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(self.header.len()));
        for r in &self.rows {
            let _ = writeln!(out, "| {} |", r.join(" | "));
        }
        out.push('\n');
    }
}

/// One target of the issue and how this run did against it.
pub struct Verdict {
    pub target: String,
    pub measured: String,
    /// None: not measured in this run (and why is in `measured`).
    pub pass: Option<bool>,
}

/// The whole report.
#[derive(Default)]
pub struct Report {
    pub preamble: Vec<String>,
    pub tables: Vec<Table>,
    pub verdicts: Vec<Verdict>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn verdict(&mut self, target: &str, measured: String, pass: Option<bool>) {
        self.verdicts.push(Verdict {
            target: target.to_string(),
            measured,
            pass,
        });
    }

    pub fn render(&self) -> String {
        let mut out = String::from("## Benchmark (lucent-bench)\n\n");
        for line in &self.preamble {
            let _ = writeln!(out, "- {line}");
        }
        out.push('\n');
        let mut targets = Table::new(
            "Targets (issues 7 and 16; reported, not asserted)",
            &["target", "measured", "verdict"],
        );
        for v in &self.verdicts {
            let verdict = match v.pass {
                Some(true) => "PASS",
                Some(false) => "MISS",
                None => "n/a",
            };
            targets.row(vec![v.target.clone(), v.measured.clone(), verdict.into()]);
        }
        targets.render(&mut out);
        for t in &self.tables {
            t.render(&mut out);
        }
        if !self.notes.is_empty() {
            out.push_str("### Notes\n\n");
            for n in &self.notes {
                let _ = writeln!(out, "- {n}");
            }
            out.push('\n');
        }
        out
    }
}

/// Requests per second with a thin-space thousands separator, e.g. `12 345`.
pub fn rate(v: f64) -> String {
    let digits = (v.round() as u64).to_string();
    // Groups of three from the right: the first group takes the remainder.
    let first = match digits.len() % 3 {
        0 => 3,
        r => r,
    };
    let mut out = String::from(&digits[..first.min(digits.len())]);
    let mut rest = &digits[first.min(digits.len())..];
    while !rest.is_empty() {
        out.push(' ');
        out.push_str(&rest[..3]);
        rest = &rest[3..];
    }
    out
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
}

pub fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

pub fn ratio(v: f64) -> String {
    format!("{v:.2}×")
}

pub fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "–".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(rate(1234567.4), "1 234 567");
        assert_eq!(rate(999.0), "999");
        assert_eq!(ms(0.4321), "0.43 ms");
        assert_eq!(mib(3 * 1_048_576), "3.0 MiB");
        let mut t = Table::new("T", &["a", "b"]);
        t.row(vec!["1".into(), "2".into()]);
        let mut s = String::new();
        t.render(&mut s);
        assert_eq!(s, "### T\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n");
    }
}
