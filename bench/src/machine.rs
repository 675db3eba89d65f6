//! The whole machine's CPU time over a benchmark's window, from `/proc/stat` (Linux): what the
//! platform, PostgreSQL and Redis spent together, and what the hypervisor took for other
//! guests (steal). A run with much steal ran on fewer cores than it seems, so its latencies are
//! not comparable with a run without; printing it beside the figures says which kind a run was.
//! [`ProcessTicks`] splits the busy time by process (from `/proc/<pid>/stat`): this process,
//! PostgreSQL's and Redis' servers, to see which side a change made cheaper; and counts their
//! context switches (from each thread's `/proc/<pid>/task/<tid>/status`): on a virtual machine
//! a wake-up costs more than most statements, so how often each side is woken (a voluntary
//! switch: it waited) or pushed off a core (an involuntary one) says what a change saved where
//! CPU time is too noisy to.

/// `/proc/stat` counts in USER_HZ, which Linux fixes at 100 per second for user space.
const TICKS_PER_SECOND: u64 = 100;

/// `ticks` of CPU time shared over `per` items, in milliseconds each.
fn ms_each(ticks: u64, per: usize) -> f64 {
    ticks as f64 * 1e3 / TICKS_PER_SECOND as f64 / per.max(1) as f64
}

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
        let per_item = ms_each(busy, per);
        format!(
            "machine CPU (all processes): busy {:.0}%, stolen by the hypervisor {:.0}%, {per_item:.1} ms busy per {what}",
            busy as f64 * 100.0 / total as f64,
            steal as f64 * 100.0 / total as f64,
        )
    }
}

/// Cumulative CPU ticks (user and system) of the processes a benchmark shares the machine
/// with, as read at one moment: this process (the platform and its load generator), every
/// process named `postgres` (the server and its backends), and `redis-server`. A backend that
/// ends within the window takes its ticks with it, so the PostgreSQL share is a floor.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessTicks {
    this: u64,
    postgres: u64,
    redis: u64,
    /// Context switches (voluntary, involuntary) of this process's, PostgreSQL's and Redis'
    /// threads, in that order.
    switches: [Switches; 3],
}

/// Context switches of some threads: (voluntary, involuntary).
type Switches = (u64, u64);

impl ProcessTicks {
    /// The counters now; `None` where `/proc` cannot be read (not Linux).
    pub fn now() -> Option<Self> {
        let own = std::process::id();
        let mut ticks = Self::default();
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            // A process may end between the listing and the read: skipped.
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            let Some((name, used)) = Self::parse(&stat) else { continue };
            let side = match name {
                _ if pid == own => 0,
                "postgres" => 1,
                "redis-server" => 2,
                _ => continue,
            };
            match side {
                0 => ticks.this += used,
                1 => ticks.postgres += used,
                _ => ticks.redis += used,
            }
            let (voluntary, involuntary) = Self::switches_of(&entry.path());
            ticks.switches[side].0 += voluntary;
            ticks.switches[side].1 += involuntary;
        }
        Some(ticks)
    }

    /// The context switches of every thread of the process at `dir` (`/proc/<pid>`); a thread
    /// that ends meanwhile is skipped.
    fn switches_of(dir: &std::path::Path) -> Switches {
        let Ok(tasks) = std::fs::read_dir(dir.join("task")) else { return (0, 0) };
        let mut total = (0, 0);
        for task in tasks.flatten() {
            if let Ok(status) = std::fs::read_to_string(task.path().join("status")) {
                let (voluntary, involuntary) = Self::parse_switches(&status);
                total = (total.0 + voluntary, total.1 + involuntary);
            }
        }
        total
    }

    /// The `voluntary_ctxt_switches` and `nonvoluntary_ctxt_switches` of a thread's `status`.
    fn parse_switches(status: &str) -> Switches {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|value| value.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        (field("voluntary_ctxt_switches"), field("nonvoluntary_ctxt_switches"))
    }

    /// A `/proc/<pid>/stat` line: the name (in parentheses, may hold spaces) and the user and
    /// system ticks (the 14th and 15th fields).
    fn parse(stat: &str) -> Option<(&str, u64)> {
        let (open, close) = (stat.find('(')?, stat.rfind(')')?);
        let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
        // After the name come the state (the 3rd field), so the 14th is at index 11.
        let used = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some((stat.get(open + 1..close)?, used))
    }

    /// One line for the report: each side's CPU time per item since `earlier`, in
    /// milliseconds.
    pub fn since(&self, earlier: &Self, per: usize, what: &str) -> String {
        let ms = |now: u64, then: u64| ms_each(now.saturating_sub(then), per);
        format!(
            "CPU per {what} by process: this one (platform + load) {:.1} ms, PostgreSQL {:.1} ms, Redis {:.1} ms",
            ms(self.this, earlier.this),
            ms(self.postgres, earlier.postgres),
            ms(self.redis, earlier.redis),
        )
    }

    /// One line for the report: each side's context switches per item since `earlier`,
    /// voluntary (it waited: for a statement, a reply, the disk) + involuntary (pushed off a
    /// core by another runnable thread).
    pub fn switches_since(&self, earlier: &Self, per: usize, what: &str) -> String {
        let each = |now: u64, then: u64| now.saturating_sub(then) as f64 / per.max(1) as f64;
        let side = |i: usize| {
            let (now, then) = (self.switches[i], earlier.switches[i]);
            format!("{:.1} + {:.1}", each(now.0, then.0), each(now.1, then.1))
        };
        format!(
            "context switches per {what} (voluntary + involuntary): this one {}, PostgreSQL {}, Redis {}",
            side(0),
            side(1),
            side(2),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{CpuTicks, ProcessTicks};

    #[test]
    fn ticks_are_read_by_process_name_and_split_per_item() {
        let stat = "4242 (redis-server) S 1 4242 4242 0 -1 4194560 100 0 0 0 300 120 0 0 20 0 5";
        assert_eq!(ProcessTicks::parse(stat), Some(("redis-server", 420)));
        // A name with spaces and parentheses still splits at the last `)`.
        let odd = "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 5 6 0 0";
        assert_eq!(ProcessTicks::parse(odd), Some(("a (b) c", 11)));
        assert_eq!(ProcessTicks::parse("7 (short) R 1"), None);
        let before = ProcessTicks { this: 100, postgres: 50, redis: 10, ..Default::default() };
        let after = ProcessTicks {
            this: 300,
            postgres: 150,
            redis: 30,
            switches: [(1_000, 500), (8_000, 400), (2_000, 0)],
        };
        assert_eq!(
            after.since(&before, 100, "checkout"),
            "CPU per checkout by process: this one (platform + load) 20.0 ms, PostgreSQL 10.0 ms, Redis 2.0 ms"
        );
        assert_eq!(
            after.switches_since(&before, 100, "checkout"),
            "context switches per checkout (voluntary + involuntary): this one 10.0 + 5.0, PostgreSQL 80.0 + 4.0, Redis 20.0 + 0.0"
        );
    }

    #[test]
    fn switches_are_read_from_a_threads_status() {
        let status = "Name:\tpostgres\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t1234\n\
                      nonvoluntary_ctxt_switches:\t56\n";
        assert_eq!(ProcessTicks::parse_switches(status), (1234, 56));
        assert_eq!(ProcessTicks::parse_switches("Name:\tx\n"), (0, 0));
    }

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
