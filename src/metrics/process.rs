//! The standard `process_*` metrics every Prometheus client library
//! exports, read from Linux's `/proc` when the recorder is installed and
//! then at every upkeep ([`super::UPKEEP_INTERVAL_SECONDS`]), so a scrape
//! sees them at most that old. Elsewhere than Linux they are left out.
//!
//! Read here rather than with the `metrics-process` crate: six numbers
//! from three text files do not need `procfs` and its dependencies.

/// CPU time used, user and system, in seconds. A gauge, though Prometheus
/// calls it a counter: the facade's counters take whole numbers, and whole
/// seconds would make `rate()` of an idle process useless.
pub const CPU_SECONDS: &str = "process_cpu_seconds_total";
/// Resident memory, in bytes.
pub const RESIDENT_MEMORY_BYTES: &str = "process_resident_memory_bytes";
/// Virtual memory, in bytes.
pub const VIRTUAL_MEMORY_BYTES: &str = "process_virtual_memory_bytes";
/// Open file descriptors.
pub const OPEN_FDS: &str = "process_open_fds";
/// The soft limit on open file descriptors (`ulimit -n`).
pub const MAX_FDS: &str = "process_max_fds";
/// When the process started, in seconds since the Unix epoch.
pub const START_TIME_SECONDS: &str = "process_start_time_seconds";

/// Every process metric's name, unit and help text.
pub const ALL: [(&str, metrics::Unit, &str); 6] = [
    (
        CPU_SECONDS,
        metrics::Unit::Seconds,
        "Total user and system CPU time spent in seconds.",
    ),
    (
        RESIDENT_MEMORY_BYTES,
        metrics::Unit::Bytes,
        "Resident memory size in bytes.",
    ),
    (
        VIRTUAL_MEMORY_BYTES,
        metrics::Unit::Bytes,
        "Virtual memory size in bytes.",
    ),
    (
        OPEN_FDS,
        metrics::Unit::Count,
        "Number of open file descriptors.",
    ),
    (
        MAX_FDS,
        metrics::Unit::Count,
        "Maximum number of open file descriptors.",
    ),
    (
        START_TIME_SECONDS,
        metrics::Unit::Seconds,
        "Start time of the process since unix epoch in seconds.",
    ),
];

/// Clock ticks per second of `/proc/<pid>/stat`'s times: `USER_HZ`, which
/// Linux fixes at 100 in its user ABI on every architecture (the kernel's
/// own tick rate is scaled to it), so no `sysconf` call is needed.
const USER_HZ: f64 = 100.0;

/// Bytes in a kB of `/proc/<pid>/status` (it means KiB).
const KIB: f64 = 1024.0;

/// One reading of the process's numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// CPU seconds, user and system.
    pub cpu_seconds: f64,
    /// Resident bytes.
    pub resident_bytes: f64,
    /// Virtual bytes.
    pub virtual_bytes: f64,
    /// Open descriptors.
    pub open_fds: f64,
    /// Descriptor limit.
    pub max_fds: f64,
    /// Start, seconds since the epoch.
    pub start_time_seconds: f64,
}

/// Describes the metrics and sets them from a first reading.
pub fn install() {
    for (name, unit, help) in ALL {
        metrics::describe_gauge!(name, unit, help);
    }
    record();
}

/// Sets the metrics from a new reading, if `/proc` can be read.
pub fn record() {
    let Some(s) = read() else {
        return;
    };
    metrics::gauge!(CPU_SECONDS).set(s.cpu_seconds);
    metrics::gauge!(RESIDENT_MEMORY_BYTES).set(s.resident_bytes);
    metrics::gauge!(VIRTUAL_MEMORY_BYTES).set(s.virtual_bytes);
    metrics::gauge!(OPEN_FDS).set(s.open_fds);
    metrics::gauge!(MAX_FDS).set(s.max_fds);
    metrics::gauge!(START_TIME_SECONDS).set(s.start_time_seconds);
}

/// Reads `/proc`; `None` where there is none.
pub fn read() -> Option<Sample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
    parse(&stat, &status, &limits, &boot, open_fds)
}

/// The numbers from the texts of `/proc/self/stat`, `/proc/self/status`,
/// `/proc/self/limits` and `/proc/stat`.
pub fn parse(stat: &str, status: &str, limits: &str, boot: &str, open_fds: f64) -> Option<Sample> {
    // The command name (field 2) is in parentheses and may hold spaces and
    // parentheses itself: fields are counted after its last ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Field n of proc(5) is fields[n - 3] here (state, field 3, is first).
    let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    let cpu_seconds = (field(14)? + field(15)?) / USER_HZ;
    let start_ticks = field(22)?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse::<f64>()
            .ok()
            .map(|v| v * KIB)
    };
    let max_fds = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()
        .and_then(|soft| match soft {
            "unlimited" => Some(f64::INFINITY),
            n => n.parse().ok(),
        })?;
    let btime = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse::<f64>()
        .ok()?;
    Some(Sample {
        cpu_seconds,
        resident_bytes: kib("VmRSS:")?,
        virtual_bytes: kib("VmSize:")?,
        open_fds,
        max_fds,
        start_time_seconds: btime + start_ticks / USER_HZ,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;

    /// Now, in seconds since the epoch.
    fn now_seconds() -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }

    #[test]
    fn parses_procs_texts() {
        let stat = "24679 (a (b) c) R 24674 24674 13211 0 -1 4194304 99 0 0 0 250 50 0 0 20 0 \
                    1 0 5652608 3133440 412 18446744073709551615";
        let status = "Name:\tcat\nVmSize:\t    3892 kB\nVmRSS:\t    2040 kB\n";
        let limits = "Limit Soft Limit Hard Limit Units\n\
                      Max open files            20000                40000                files\n";
        let boot = "cpu  1 2 3\nbtime 1796638234\n";
        let s = parse(stat, status, limits, boot, 7.0).unwrap();
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.resident_bytes, 2040.0 * 1024.0);
        assert_eq!(s.virtual_bytes, 3892.0 * 1024.0);
        assert_eq!(s.open_fds, 7.0);
        assert_eq!(s.max_fds, 20000.0);
        assert_eq!(s.start_time_seconds, 1796638234.0 + 56526.08);
    }

    #[test]
    fn reads_this_process() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            return;
        }
        let s = read().unwrap();
        assert!(s.resident_bytes > 0.0 && s.virtual_bytes >= s.resident_bytes);
        assert!(s.open_fds >= 1.0 && s.max_fds >= s.open_fds);
        let now = now_seconds();
        assert!(s.start_time_seconds <= now + 1.0 && s.start_time_seconds > now - 86_400.0 * 365.0);
    }
}
