//! `GET /metrics` in the Prometheus text format: calls by CPI, action and outcome, their
//! durations, denials, calls in flight, refused connections.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the duration histogram's buckets: a dry run takes microseconds, a VM
/// boot minutes.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    /// (cpi, action, outcome) → calls; the outcome is `ok`, `planned` or the error kind.
    calls: Mutex<BTreeMap<(String, String, String), u64>>,
    durations: Mutex<BTreeMap<(String, String), Histogram>>,
    in_flight: AtomicI64,
    refused_connections: AtomicU64,
    unauthorized: AtomicU64,
}

/// Counts a call in flight from creation to drop.
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    pub fn record(&self, cpi: &str, action: &str, outcome: &str, took: Duration) {
        *lock(&self.calls).entry((cpi.to_string(), action.to_string(), outcome.to_string())).or_default() += 1;
        let mut durations = lock(&self.durations);
        let histogram = durations.entry((cpi.to_string(), action.to_string())).or_default();
        let seconds = took.as_secs_f64();
        for (count, bound) in histogram.counts.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *count += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    pub fn refused_connection(&self) {
        self.refused_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn unauthorized(&self) {
        self.unauthorized.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let calls = lock(&self.calls);
        let _ = writeln!(
            out,
            "# HELP omni_cpi_calls_total Calls answered, by CPI, action and outcome (ok, planned, or the error kind)."
        );
        let _ = writeln!(out, "# TYPE omni_cpi_calls_total counter");
        for ((cpi, action, outcome), n) in calls.iter() {
            let _ = writeln!(
                out,
                "omni_cpi_calls_total{{cpi=\"{}\",action=\"{}\",outcome=\"{}\"}} {n}",
                label(cpi),
                label(action),
                label(outcome)
            );
        }
        let _ = writeln!(
            out,
            "# HELP omni_cpi_denials_total Calls refused because a capability was not granted (outcome denied)."
        );
        let _ = writeln!(out, "# TYPE omni_cpi_denials_total counter");
        let mut denials: BTreeMap<&str, u64> = BTreeMap::new();
        for ((cpi, _, outcome), n) in calls.iter() {
            if outcome == "denied" {
                *denials.entry(cpi).or_default() += n;
            }
        }
        for (cpi, n) in denials {
            let _ = writeln!(out, "omni_cpi_denials_total{{cpi=\"{}\"}} {n}", label(cpi));
        }
        drop(calls);
        let durations = lock(&self.durations);
        let _ = writeln!(out, "# HELP omni_cpi_call_duration_seconds How long calls took, by CPI and action.");
        let _ = writeln!(out, "# TYPE omni_cpi_call_duration_seconds histogram");
        for ((cpi, action), h) in durations.iter() {
            let labels = format!("cpi=\"{}\",action=\"{}\"", label(cpi), label(action));
            for (count, bound) in h.counts.iter().zip(BUCKETS) {
                let _ = writeln!(out, "omni_cpi_call_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(out, "omni_cpi_call_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "omni_cpi_call_duration_seconds_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "omni_cpi_call_duration_seconds_count{{{labels}}} {}", h.count);
        }
        drop(durations);
        let gauges = [
            (
                "omni_cpi_calls_in_flight",
                "gauge",
                "Calls running now.",
                self.in_flight.load(Ordering::Relaxed).to_string(),
            ),
            (
                "omni_cpi_refused_connections_total",
                "counter",
                "Unix-socket connections refused for the peer's uid and gid.",
                self.refused_connections.load(Ordering::Relaxed).to_string(),
            ),
            (
                "omni_cpi_unauthorized_requests_total",
                "counter",
                "TCP requests without a valid bearer token.",
                self.unauthorized.load(Ordering::Relaxed).to_string(),
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
        out
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let metrics = Metrics::default();
        let in_flight = metrics.start();
        metrics.record("podman", "start_container", "ok", Duration::from_millis(30));
        metrics.record("podman", "start_container", "denied", Duration::from_millis(2));
        metrics.record("we\"ird", "a", "ok", Duration::from_secs(400));
        let text = metrics.render();
        assert!(
            text.contains("omni_cpi_calls_total{cpi=\"podman\",action=\"start_container\",outcome=\"ok\"} 1"),
            "{text}"
        );
        assert!(text.contains("omni_cpi_denials_total{cpi=\"podman\"} 1"), "{text}");
        assert!(text.contains(
            "omni_cpi_call_duration_seconds_bucket{cpi=\"podman\",action=\"start_container\",le=\"0.05\"} 2"
        ));
        assert!(text.contains(
            "omni_cpi_call_duration_seconds_bucket{cpi=\"podman\",action=\"start_container\",le=\"0.005\"} 1"
        ));
        assert!(
            text.contains("omni_cpi_call_duration_seconds_bucket{cpi=\"we\\\"ird\",action=\"a\",le=\"+Inf\"} 1"),
            "{text}"
        );
        assert!(text.contains("omni_cpi_calls_in_flight 1"));
        drop(in_flight);
        assert!(metrics.render().contains("omni_cpi_calls_in_flight 0"));
    }
}
