//! The whole machine's CPU time over a benchmark's window, from `/proc/stat` (Linux): what the
//! platform, PostgreSQL and Redis spent together, and what the hypervisor took for other
//! guests (steal). A run with much steal ran on fewer cores than it seems, so its latencies are
//! not comparable with a run without; printing it beside the figures says which kind a run was.

/// `/proc/stat` counts in USER_HZ, which Linux fixes at 100 per second for user space.
const TICKS_PER_SECOND: u64 = 100;

/// Cumulative CPU ticks of all cores, as read at one moment.
#[derive(Debug, Clone, Copy)]
pub struct CpuTicks {
    busy: u64,
    idle: u64,
    steal: u64,
}

impl CpuTicks {
    /// The counters now; `None` where `/proc/stat` cannot be read (not Linux).
    pub fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        Self::parse(stat.lines().find(|l| l.starts_with("cpu "))?)
    }

    /// Parses the aggregate `cpu` line: user nice system idle iowait irq softirq steal ….
    fn parse(line: &str) -> Option<Self> {
        let fields: Vec<u64> =
            line.split_whitespace().skip(1).map(str::parse).collect::<Result<_, _>>().ok()?;
        let field = |i: usize| fields.get(i).copied().unwrap_or(0);
        Some(Self {
            busy: field(0) + field(1) + field(2) + field(5) + field(6),
            idle: field(3) + field(4),
            steal: field(7),
        })
    }

    /// One line for the report: busy and stolen shares since `earlier`, and busy CPU time
    /// per item (`per` items, checkouts say) in milliseconds.
    pub fn since(&self, earlier: &Self, per: usize, what: &str) -> String {
        let busy = self.busy.saturating_sub(earlier.busy);
        let steal = self.steal.saturating_sub(earlier.steal);
        let total = (busy + steal + self.idle.saturating_sub(earlier.idle)).max(1);
        let per_item = busy as f64 * 1e3 / TICKS_PER_SECOND as f64 / per.max(1) as f64;
        format!(
            "machine CPU (all processes): busy {:.0}%, stolen by the hypervisor {:.0}%, {per_item:.1} ms busy per {what}",
            busy as f64 * 100.0 / total as f64,
            steal as f64 * 100.0 / total as f64,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::CpuTicks;

    #[test]
    fn shares_and_time_per_item_come_from_the_differences() {
        let before = CpuTicks::parse("cpu  100 0 50 800 10 0 0 40 0 0").unwrap();
        let after = CpuTicks::parse("cpu  250 0 100 850 10 0 0 90 0 0").unwrap();
        // busy +200, idle +50, steal +50 of 300 ticks; 200 ticks = 2 s over 100 items.
        assert_eq!(
            after.since(&before, 100, "checkout"),
            "machine CPU (all processes): busy 67%, stolen by the hypervisor 17%, 20.0 ms busy per checkout"
        );
        assert!(CpuTicks::parse("cpu  not numbers").is_none());
    }
}
