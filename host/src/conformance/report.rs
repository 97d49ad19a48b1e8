//! How a conformance run is shown: a line per check as it finishes, a summary table, and files
//! for CI (JUnit XML, JSON).

use std::fmt::Write as _;

use super::{CheckResult, Report, Verdict};

/// The live line for one check, with the failure's details indented below it.
pub fn progress_line(result: &CheckResult) -> String {
    let status = match &result.verdict {
        Verdict::Passed => "PASS",
        Verdict::Failed(_) => "FAIL",
        Verdict::Skipped { .. } => "SKIP",
    };
    let level = match result.level {
        super::Level::Must => "MUST",
        super::Level::Should => "SHOULD",
    };
    let mut line =
        format!("{status} {:16} {level:6} {} ({:.1}s)", result.id, result.statement, result.duration.as_secs_f64());
    match &result.verdict {
        Verdict::Skipped { reason } => {
            let _ = write!(line, "\n       skipped: {reason}");
        }
        Verdict::Failed(failure) => {
            let _ = write!(line, "\n       expected: {}\n       got:      {}", failure.expected, failure.got);
            if let Some(call) = &failure.call {
                let _ = write!(line, "\n       call:     {} {}", call.action, call.params);
                for argv in &call.processes {
                    let _ = write!(line, "\n       ran:      {}", shell_words(argv));
                }
                let _ = write!(line, "\n       outcome:  {}", call.outcome);
            }
        }
        Verdict::Passed => {}
    }
    line
}

fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c)) {
                a.clone()
            } else {
                crate::json::template::shell_quote(a)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The summary table printed after the run.
pub fn summary(report: &Report) -> String {
    let passed = report.count(|v| matches!(v, Verdict::Passed));
    let failed = report.count(|v| matches!(v, Verdict::Failed(_)));
    let skipped = report.count(|v| matches!(v, Verdict::Skipped { .. }));
    let mut out = format!(
        "\nconformance of {} ({} CPI), run prefix {}, {:.1}s\n\n{:16} {:6} {}\n",
        report.cpi,
        report.kind.as_str(),
        report.prefix,
        report.duration.as_secs_f64(),
        "check",
        "level",
        "result"
    );
    for r in &report.results {
        let level = match r.level {
            super::Level::Must => "MUST",
            super::Level::Should => "SHOULD",
        };
        let result = match &r.verdict {
            Verdict::Passed => "passed".to_string(),
            Verdict::Failed(f) => format!("FAILED: expected {}", f.expected),
            Verdict::Skipped { reason } => format!("skipped: {reason}"),
        };
        let _ = writeln!(out, "{:16} {level:6} {result}", r.id);
    }
    let _ = write!(
        out,
        "\n{passed} passed, {failed} failed, {skipped} skipped: {}\n",
        if report.conformant() { "conformant (every MUST check passed)" } else { "NOT conformant" }
    );
    out
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry most control characters at all.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML, as CI systems read it: one test case per check, MUST/SHOULD as the class name.
pub fn junit(report: &Report) -> String {
    let failures = report.count(|v| matches!(v, Verdict::Failed(_)));
    let skipped = report.count(|v| matches!(v, Verdict::Skipped { .. }));
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"omni-cpi conformance\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{:.3}\">",
        report.results.len(),
        report.duration.as_secs_f64()
    );
    let _ = writeln!(
        xml,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{:.3}\">",
        xml_escape(&report.cpi),
        report.results.len(),
        report.duration.as_secs_f64()
    );
    for r in &report.results {
        let class = match r.level {
            super::Level::Must => "conformance.MUST",
            super::Level::Should => "conformance.SHOULD",
        };
        let _ = write!(
            xml,
            "    <testcase classname=\"{class}\" name=\"{} {}\" time=\"{:.3}\"",
            r.id,
            xml_escape(r.statement),
            r.duration.as_secs_f64()
        );
        match &r.verdict {
            Verdict::Passed => xml.push_str("/>\n"),
            Verdict::Skipped { reason } => {
                let _ = writeln!(xml, ">\n      <skipped message=\"{}\"/>\n    </testcase>", xml_escape(reason));
            }
            Verdict::Failed(_) => {
                let details = progress_line(r);
                let message = match &r.verdict {
                    Verdict::Failed(f) => format!("expected {}; got {}", f.expected, f.got),
                    _ => String::new(),
                };
                let _ = writeln!(
                    xml,
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                    xml_escape(&message),
                    xml_escape(&details)
                );
            }
        }
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{Failure, Level};
    use crate::json::spec::CpiKind;
    use std::time::Duration;

    fn report() -> Report {
        let result = |id, verdict| CheckResult {
            id,
            level: Level::Must,
            statement: "does <things> & more",
            verdict,
            duration: Duration::from_millis(1500),
        };
        Report {
            cpi: "t_cpi".into(),
            kind: CpiKind::Container,
            prefix: "omni-conf-t-1".into(),
            results: vec![
                result("C-A-01", Verdict::Passed),
                result(
                    "C-B-01",
                    Verdict::Failed(Failure { expected: "x \"quoted\"".into(), got: "y\u{1}".into(), call: None }),
                ),
                result("C-C-01", Verdict::Skipped { reason: "unsupported".into() }),
            ],
            duration: Duration::from_secs(2),
        }
    }

    #[test]
    fn junit_is_escaped_and_counts_outcomes() {
        let xml = junit(&report());
        assert!(xml.contains("tests=\"3\" failures=\"1\" skipped=\"1\""), "{xml}");
        assert!(xml.contains("name=\"C-A-01 does &lt;things&gt; &amp; more\" time=\"1.500\"/>"), "{xml}");
        assert!(xml.contains("<failure message=\"expected x &quot;quoted&quot;; got y\\u{1}\">"), "{xml}");
        assert!(xml.contains("<skipped message=\"unsupported\"/>"), "{xml}");
    }

    #[test]
    fn summary_names_the_verdict() {
        let text = summary(&report());
        assert!(text.contains("1 passed, 1 failed, 1 skipped: NOT conformant"), "{text}");
    }
}
