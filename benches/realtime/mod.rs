//! "x real time" for audio benches, printed after criterion's own report.
//!
//! Audio benches set `Throughput::Elements` to samples per channel, so
//! criterion prints samples/s; x real time is that divided by the sample
//! rate. Criterion has no hook for derived units, so this reads back the
//! estimates it saved for each case in this run and prints one table with
//! both numbers. Cases that were filtered out, or runs that only test
//! (`cargo test --benches`), save no estimates and print nothing.
//!
//! Included by each audio bench with `mod realtime;`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Cases of one bench run whose x real time is worth printing.
pub struct RealTime {
    /// What ran, for the table's title (`one encoder thread`, …).
    setting: &'static str,
    started: SystemTime,
    cases: Vec<Case>,
}

struct Case {
    /// Criterion's full id: `group/function/parameter`.
    full_id: String,
    sample_rate: u32,
}

impl RealTime {
    /// Starts collecting; call before criterion runs anything. `setting`
    /// says what did the work, for the table's title.
    pub fn new(setting: &'static str) -> Self {
        Self {
            setting,
            started: SystemTime::now(),
            cases: Vec::new(),
        }
    }

    /// Notes a case whose throughput is in samples per channel at `sample_rate`.
    pub fn note(&mut self, group: &str, function: &str, parameter: &str, sample_rate: u32) {
        self.cases.push(Case {
            full_id: format!("{group}/{function}/{parameter}"),
            sample_rate,
        });
    }

    /// Prints a table of samples/s and x real time for every noted case that
    /// criterion measured in this run.
    pub fn print(&self) {
        let saved = saved_estimates(&criterion_dir(), self.started);
        let rows: Vec<(String, f64, f64)> = self
            .cases
            .iter()
            .filter_map(|case| {
                let (_, elements, nanos) = saved.iter().find(|s| s.0 == case.full_id)?;
                let per_second = elements / (nanos * 1e-9);
                Some((
                    case.full_id.clone(),
                    per_second,
                    per_second / f64::from(case.sample_rate),
                ))
            })
            .collect();
        if rows.is_empty() {
            return;
        }
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        println!(
            "\nx real time = samples per channel per second ÷ sample rate ({}):",
            self.setting
        );
        for (id, per_second, realtime) in rows {
            println!(
                "  {id:<width$}  {:>8.2} M samples/s  {realtime:>8.1} x real time",
                per_second / 1e6
            );
        }
    }
}

/// Where criterion saves its estimates, found the way criterion finds it
/// (short of asking `cargo metadata`).
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("criterion")
}

/// (full id, elements per iteration, nanoseconds per iteration) of every case
/// with element throughput that criterion saved since `since`.
fn saved_estimates(dir: &Path, since: SystemTime) -> Vec<(String, f64, f64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.ends_with("new/benchmark.json") {
                let fresh = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t >= since);
                if fresh {
                    if let Some(case) = read_case(&path) {
                        out.push(case);
                    }
                }
            }
        }
    }
    out
}

fn read_case(benchmark_json: &Path) -> Option<(String, f64, f64)> {
    let read = |p: &Path| -> Option<serde_json::Value> {
        serde_json::from_slice(&std::fs::read(p).ok()?).ok()
    };
    let benchmark = read(benchmark_json)?;
    let estimates = read(&benchmark_json.with_file_name("estimates.json"))?;
    let full_id = benchmark["full_id"].as_str()?.to_string();
    let elements = benchmark["throughput"]["Elements"].as_f64()?;
    // Criterion reports the slope for linear sampling and the mean for flat.
    let nanos = estimates["slope"]["point_estimate"]
        .as_f64()
        .or_else(|| estimates["mean"]["point_estimate"].as_f64())?;
    Some((full_id, elements, nanos))
}
