//! `bench-checkout`'s options: parsed from its arguments, and applied to the platform's
//! settings (kept here, where their tests run).

use std::time::Duration;

use anyhow::Context as _;

/// What one run of `bench-checkout` was asked to do.
pub struct Options {
    /// Concurrent shoppers.
    pub clients: usize,
    /// How long the measured window lasts.
    pub duration: Duration,
    /// How long the platform runs under load before the window opens.
    pub warmup: Duration,
    /// PostgreSQL to use; unset: SQLite files.
    pub database_url: Option<String>,
    /// Redis to carry events; unset: the in-process bus.
    pub redis_url: Option<String>,
    /// Checkouts started per second (open loop); unset: as fast as the clients go.
    pub rate: Option<f64>,
    /// Consumer lanes (`events.lanes`); unset: the default.
    pub lanes: Option<usize>,
    /// How long lingering consumers wait for more events (`events.linger_ms`); unset: the
    /// default.
    pub linger_ms: Option<u64>,
    /// Pool size per context (`database.max_connections`); unset: the default.
    pub db_connections: Option<u32>,
    /// Partitions per Redis stream topic (`events.partitions`); unset: the default.
    pub partitions: Option<u32>,
    /// Products the shoppers buy, one per checkout in turn (1: every checkout reserves the
    /// same stock row, a flash sale's worst case).
    pub products: usize,
    /// Print the latency of each second's checkouts too (to see stalls over time).
    pub timeline: bool,
    /// Print how long each step of the saga took (to see where slow checkouts wait).
    pub hops: bool,
    /// Seconds the simulated carrier takes per step (`fulfillment.step_secs`).
    pub carrier_step: u64,
    /// Services call each other over loopback HTTP, not in process.
    pub over_http: bool,
}

/// What `bench-checkout --help` prints.
pub const USAGE: &str = "\
usage: bench-checkout [options]

  --clients N          concurrent shoppers (32)
  --duration S         measured seconds (20)
  --warmup S           seconds under load before measuring (3)
  --rate R             checkouts started per second (open loop); unset: closed loop
  --database-url URL   PostgreSQL; unset: SQLite files
  --redis-url URL      Redis Streams for events; unset: the in-process bus
  --products N         products bought in turn, 1 to 100 (1: one stock row for all)
  --carrier-step S     seconds per parcel step (3600: parcels stay in the warehouse)
  --lanes N            events.lanes
  --linger MS          events.linger_ms
  --db-connections N   database.max_connections
  --partitions N       events.partitions
  --over-http          services call each other over loopback HTTP
  --timeline           each second's p50/p99 as well
  --hops               how long each step of the saga took
";

/// The options in `args` (the program's arguments, without its name); `Ok(None)` when
/// the arguments ask for the usage text.
pub fn parse_args(args: impl IntoIterator<Item = String>) -> anyhow::Result<Option<Options>> {
    let mut options = Options {
        clients: 32,
        duration: Duration::from_secs(20),
        warmup: Duration::from_secs(3),
        database_url: None,
        redis_url: None,
        rate: None,
        lanes: None,
        linger_ms: None,
        db_connections: None,
        partitions: None,
        products: 1,
        timeline: false,
        hops: false,
        carrier_step: 3600,
        over_http: false,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--clients" => options.clients = value()?.parse()?,
            "--duration" => options.duration = Duration::from_secs(value()?.parse()?),
            "--warmup" => options.warmup = Duration::from_secs(value()?.parse()?),
            "--database-url" => options.database_url = Some(value()?),
            "--redis-url" => options.redis_url = Some(value()?),
            "--rate" => options.rate = Some(value()?.parse()?),
            "--lanes" => options.lanes = Some(value()?.parse()?),
            "--linger" => options.linger_ms = Some(value()?.parse()?),
            // Zero of either would leave the run waiting forever: refused, not clamped.
            "--db-connections" => {
                let connections = value()?.parse()?;
                anyhow::ensure!(connections >= 1, "--db-connections takes 1 or more");
                options.db_connections = Some(connections);
            }
            "--partitions" => {
                let partitions = value()?.parse()?;
                anyhow::ensure!(partitions >= 1, "--partitions takes 1 or more");
                options.partitions = Some(partitions);
            }
            "--timeline" => options.timeline = true,
            "--over-http" => options.over_http = true,
            "--hops" => options.hops = true,
            "--help" | "-h" => return Ok(None),
            "--carrier-step" => {
                options.carrier_step = value()?.parse()?;
                anyhow::ensure!(
                    options.carrier_step >= 1,
                    "--carrier-step takes seconds, at least 1"
                );
            }
            "--products" => {
                options.products = value()?.parse()?;
                anyhow::ensure!((1..=100).contains(&options.products), "--products takes 1 to 100");
            }
            other => anyhow::bail!("unknown argument {other} (--help lists the options)"),
        }
    }
    Ok(Some(options))
}

/// Applies the run's settings from `options` to the platform's `settings`.
pub fn configure(options: &Options, settings: &mut kernel::config::Settings) {
    settings.fulfillment.step_secs = options.carrier_step;
    if let Some(partitions) = options.partitions {
        settings.events.partitions = partitions;
    }
    if let Some(connections) = options.db_connections {
        settings.database.max_connections = Some(connections);
    }
    if let Some(lanes) = options.lanes {
        settings.events.lanes = lanes;
    }
    if let Some(linger) = options.linger_ms {
        settings.events.linger_ms = linger;
    }
    settings.server.in_process_calls = !options.over_http;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(args: &[&str]) -> kernel::config::Settings {
        let options = parse_args(args.iter().map(|a| a.to_string()))
            .expect("valid arguments")
            .expect("options, not the usage text");
        let mut settings = kernel::config::Settings::default();
        configure(&options, &mut settings);
        settings
    }

    #[test]
    fn the_carrier_takes_an_hour_a_step_unless_told_otherwise() {
        // The platform's own default is the demo's ten seconds: the run must not inherit it,
        // or every parcel ships within the run and its moves are measured as checkout work.
        assert_eq!(kernel::config::Settings::default().fulfillment.step_secs, 10);
        assert_eq!(configured(&[]).fulfillment.step_secs, 3600);
        assert_eq!(configured(&["--carrier-step", "10"]).fulfillment.step_secs, 10);
    }

    #[test]
    fn the_tuning_options_reach_the_platform() {
        let settings = configured(&[
            "--partitions",
            "4",
            "--db-connections",
            "7",
            "--lanes",
            "2",
            "--linger",
            "250",
            "--over-http",
        ]);
        assert_eq!(settings.events.partitions, 4);
        assert_eq!(settings.database.max_connections, Some(7));
        assert_eq!(settings.events.lanes, 2);
        assert_eq!(settings.events.linger_ms, 250);
        assert!(!settings.server.in_process_calls);
    }

    #[test]
    fn a_carrier_step_of_zero_is_refused() {
        assert!(parse_args(["--carrier-step".to_string(), "0".to_string()]).is_err());
    }

    #[test]
    fn help_asks_for_the_usage_which_names_every_option() {
        assert!(parse_args(["--help".to_string()]).expect("help is an answer").is_none());
        // Every option the usage names is one the parser takes (a flag, or with a value).
        let options: Vec<&str> = USAGE
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .filter(|word| word.starts_with("--") && *word != "--help")
            .collect();
        assert_eq!(options.len(), 15);
        for option in options {
            let with_value = [option.to_string(), "1".to_string()];
            let alone = [option.to_string()];
            let taken = parse_args(with_value).is_ok() || parse_args(alone).is_ok();
            assert!(taken, "{option} is in the usage but the parser refuses it");
        }
        let unknown = parse_args(["--nope".to_string()]).err().expect("refused");
        assert!(unknown.to_string().contains("--help"));
    }
}
