//! The relay benchmark, both ways: Synapse, the Instagram simulator and the
//! bridge process, with a Matrix user holding a connected Instagram login.
//! Instagram -> Matrix: posts messages across threads in the simulator and
//! prints the bridge's throughput next to a bare appservice client's into the
//! same rooms and the bridge-added latency. Matrix -> Instagram: the user sends
//! messages into the portals and it prints the bridge's throughput next to a
//! bare Instagram client's into the same threads and the bridge-added latency.
//! Then Instagram requests per hour of an idle login and a busy one and the
//! bridge's RSS with many portals.
//!
//! `cargo bench --bench relay` runs the full benchmark (`--quick` and the
//! count flags below change it); `cargo test` runs it as a quick smoke test,
//! which fails when the relay loses or reorders a message either way.

// The end-to-end tests' harness, shared as is; the bench uses part of it.
#[allow(dead_code)]
#[path = "../tests/appservice"]
mod appservice {
    pub mod harness;
}
#[path = "relay/baseline.rs"]
mod baseline;
#[path = "relay/outgoing.rs"]
mod outgoing;
#[path = "relay/stats.rs"]
mod stats;
#[path = "relay/usage.rs"]
mod usage;
#[path = "relay/world.rs"]
mod world;

use std::process::ExitCode;
use std::time::Duration;

use appservice::harness::Synapse;

/// What one run measures, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub quick: bool,
    pub messages: usize,
    /// Throughput rounds (a burst through the bridge, then the bare
    /// client's): the figures are the median round's, since one homeserver's
    /// speed varies from burst to burst.
    pub rounds: usize,
    /// Messages of the paced latency run.
    pub paced: usize,
    pub threads: usize,
    pub portals: usize,
    /// How long the idle and busy logins' requests are observed (the full
    /// run's default spans the idle presence interval, 30 minutes).
    pub idle: Duration,
    /// Run by `cargo test`: report like a test binary.
    pub as_test: bool,
    /// `--list` or a test filter that does not match: run nothing.
    pub skip: bool,
}

impl Options {
    /// `cargo bench` passes `--bench`: the full run; anything else (`cargo
    /// test`) is the quick smoke run. Unknown arguments (a test filter) are
    /// reported and ignored.
    fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
        let args: Vec<String> = args.collect();
        let as_test = !args.iter().any(|a| a == "--bench");
        let quick = as_test || args.iter().any(|a| a == "--quick");
        let mut options = if quick {
            Options {
                as_test,
                skip: false,
                quick,
                messages: 40,
                rounds: 1,
                paced: 8,
                threads: 4,
                portals: 10,
                // Three active poll intervals with their jitter: the busy login polls at least twice.
                idle: Duration::from_secs(12),
            }
        } else {
            Options {
                as_test,
                skip: false,
                quick,
                messages: 1000,
                rounds: 3,
                paced: 300,
                threads: 20,
                portals: 100,
                idle: Duration::from_secs(1900),
            }
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut number = |name: &str| -> Result<usize, String> {
                args.next()
                    .and_then(|value| value.parse().ok())
                    .ok_or_else(|| format!("{name} needs a number"))
            };
            match arg.as_str() {
                "--bench" | "--quick" => {}
                "--messages" => options.messages = number("--messages")?,
                "--rounds" => options.rounds = number("--rounds")?.max(1),
                "--paced" => options.paced = number("--paced")?,
                "--threads" => options.threads = number("--threads")?,
                "--portals" => options.portals = number("--portals")?,
                "--idle-secs" => options.idle = Duration::from_secs(number("--idle-secs")? as u64),
                "--list" => {
                    println!("relay: bench");
                    options.skip = true;
                }
                // A test filter, as libtest reads it: a substring of the name.
                filter if !filter.starts_with('-') => options.skip |= !"relay".contains(filter),
                other => eprintln!("relay bench: ignoring argument {other:?}"),
            }
        }
        if options.threads == 0 || options.messages < options.threads {
            return Err("need at least one thread and one message per thread".to_owned());
        }
        if options.portals < options.threads + world::IDLE_THREADS {
            return Err(format!(
                "--portals must be at least --threads + {} (the idle login's)",
                world::IDLE_THREADS
            ));
        }
        Ok(options)
    }
}

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("relay bench: {message}");
            return ExitCode::FAILURE;
        }
    };
    if options.skip {
        return ExitCode::SUCCESS;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    let outcome = runtime.block_on(run(&options));
    if let Err(message) = &outcome {
        eprintln!("relay bench FAILED: {message}");
    }
    if options.as_test {
        // The line .ci/run's summary counts, as libtest prints it.
        let (result, passed, failed) = match outcome {
            Ok(()) => ("ok", 1, 0),
            Err(_) => ("FAILED", 0, 1),
        };
        println!("test result: {result}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out");
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

async fn run(options: &Options) -> Result<(), String> {
    let venv = Synapse::venv();
    if !venv.join("bin/synapse_homeserver").exists() {
        return Err(format!(
            "Synapse is not installed in {} (set SYNAPSE_VENV to a venv holding matrix-synapse, \
             or run `bash scripts/synapse/install.sh`)",
            venv.display()
        ));
    }
    let mode = if options.quick {
        "quick smoke run"
    } else {
        "full run"
    };
    println!(
        "relay bench ({mode}): {} messages across {} threads, {} portals",
        options.messages, options.threads, options.portals
    );
    let mut world = world::World::start(options).await?;
    let result = measure(&mut world, options).await;
    if result.is_err() {
        eprintln!("==== bridge log tail ====\n{}", world.log_tail(60));
    }
    result
}

/// The wait between two posts of the paced latency run: with the 3 s active
/// poll interval a poll carries at most one new item per room.
const PACE: Duration = Duration::from_millis(300);

/// Messages per thread each way before anything is measured.
const WARM_UP_PER_THREAD: usize = 5;

/// Items whose poll responses arrived this close together came with one
/// poll (its thread fetches run in parallel; polls are seconds apart).
const POLL_WINDOW: Duration = Duration::from_millis(1000);

async fn measure(world: &mut world::World, options: &Options) -> Result<(), String> {
    // A few messages each way first: the homeserver's caches and the
    // bridge's connections are warm for whichever is measured first.
    let warm_up = options.threads * WARM_UP_PER_THREAD;
    let warm_bridge = world.relay(warm_up, "warm", None).await?;
    let warm_bare = baseline::run(world, warm_up, "warmbare").await?;
    let mut rounds = Vec::with_capacity(options.rounds);
    for round in 0..options.rounds {
        let before = world.usage()?;
        let burst = world
            .relay(options.messages, &format!("bench{round}"), None)
            .await?;
        let between = world.usage()?;
        let bare = baseline::run(world, options.messages, &format!("bare{round}")).await?;
        let (burst_usage, bare_usage) = (between.since(&before), world.usage()?.since(&between));
        rounds.push(Round {
            burst,
            bare,
            burst_usage,
            bare_usage,
        });
    }
    let paced = world.relay(options.paced, "paced", Some(PACE)).await?;
    let solo = baseline::one_at_a_time(world, options.paced).await?;
    let poll_batches = paced.batches(POLL_WINDOW);
    let batched = baseline::in_batches(world, &poll_batches).await?;
    for (bodies, who) in [
        (&warm_bridge.bodies, "the bridge (warming up)"),
        (&warm_bare.bodies, "the bare client (warming up)"),
        (&paced.bodies, "the bridge (paced)"),
        (&solo.bodies, "the bare client (one at a time)"),
        (&batched.bodies, "the bare client (the paced run's batches)"),
    ] {
        world.verify_rooms(bodies, who).await?;
    }
    for round in &rounds {
        world
            .verify_rooms(&round.burst.bodies, "the bridge")
            .await?;
        world
            .verify_rooms(&round.bare.bodies, "the bare client")
            .await?;
    }
    let mut by_ratio: Vec<&Round> = rounds.iter().collect();
    by_ratio.sort_by(|a, b| a.relaying_ratio().total_cmp(&b.relaying_ratio()));
    let median = by_ratio[by_ratio.len() / 2];
    let (burst, bare) = (&median.burst, &median.bare);
    let percentiles = |samples: &[u64]| stats::Percentiles::of(samples.iter().copied());
    let since_poll = |burst: &world::Burst| {
        percentiles(
            &burst
                .latencies
                .iter()
                .map(|l| l.since_poll_us)
                .collect::<Vec<_>>(),
        )
    };
    let burst_own = percentiles(
        &burst
            .latencies
            .iter()
            .map(|l| l.relay_us)
            .collect::<Vec<_>>(),
    );

    let out = measure_outgoing(world, options).await?;

    let rss = world.grow_portals(options.portals).await?;
    let rates = world.request_rates(options).await?;

    println!();
    let mode = if options.quick { "quick" } else { "full" };
    println!("== Instagram -> Matrix relay ({mode}) ==");
    println!(
        "throughput: {} messages across {} threads, posted at once in the simulator; {} round(s) \
         of a burst through the bridge and then the bare client's",
        options.messages,
        options.threads,
        rounds.len()
    );
    for (index, round) in rounds.iter().enumerate() {
        println!(
            "  round {}: ratio {:.2} relaying alone, {:.2} end to end; the homeserver's CPU time \
             {:.2} s in the bridge's burst, {:.2} s in the bare client's",
            index + 1,
            round.relaying_ratio(),
            round.end_to_end_ratio(),
            round.burst_usage.homeserver.as_secs_f64(),
            round.bare_usage.homeserver.as_secs_f64()
        );
    }
    println!("  the median round:");
    println!(
        "  bridge:      {:8.1} msg/s  ({:.2} s from the first post to the last message in Synapse)",
        rate(options.messages, burst.elapsed),
        burst.elapsed.as_secs_f64()
    );
    println!(
        "  bare client: {:8.1} msg/s  ({:.2} s; PUT /send as the puppets, one sequential sender per room, rooms in parallel)",
        rate(options.messages, bare.elapsed),
        bare.elapsed.as_secs_f64()
    );
    println!(
        "  CPU time of the bridge's burst: {}; of the bare client's: {}",
        median.burst_usage, median.bare_usage
    );
    let relaying = burst.relaying();
    println!(
        "  bridge, relaying alone: {:8.1} msg/s  ({:.2} s from the first poll response \
         that carried the burst to the last message in Synapse)",
        rate(options.messages, relaying),
        relaying.as_secs_f64()
    );
    println!(
        "  ratio bridge/bare: {:.2} relaying alone (goal >= 0.9); {:.2} end to end, with the wait \
         for the next poll (polling.active_interval_ms)",
        median.relaying_ratio(),
        median.end_to_end_ratio()
    );
    let paced_total = since_poll(&paced);
    let bare_batches = percentiles(&batched.send_us);
    println!(
        "latency, poll response -> homeserver answer:\n  \
         paced ({} messages, one every {} ms, at most one new item per room per poll; {} polls \
         carried them, {:.1} items a poll): {}",
        options.paced,
        PACE.as_millis(),
        poll_batches.len(),
        options.paced as f64 / poll_batches.len().max(1) as f64,
        percentiles_text(&paced_total)
    );
    println!(
        "    the bare client sending each poll's items at once into the same rooms, at the \
         polls' times: {}",
        percentiles_text(&bare_batches)
    );
    println!(
        "  bridge-added latency (the bridge's less the bare client's, percentile by \
         percentile; goal p99 < 25 ms): p50 {} p99 {}",
        stats::ms_signed(paced_total.p50 as i64 - bare_batches.p50 as i64),
        stats::ms_signed(paced_total.p99 as i64 - bare_batches.p99 as i64),
    );
    print_stages(&paced.latencies);
    let paced_bridge_only = percentiles(
        &paced
            .latencies
            .iter()
            .map(|l| l.since_poll_us.saturating_sub(l.homeserver_us))
            .collect::<Vec<_>>(),
    );
    println!(
        "    the bridge's own work (the same, less the time the worker waited for the \
         homeserver's answers): {}",
        percentiles_text(&paced_bridge_only)
    );
    println!(
        "    homeserver alone (bare client, one send at a time): {}",
        percentiles_text(&percentiles(&solo.send_us))
    );
    println!(
        "  in the burst (an item also waits behind its room's earlier items): {}",
        percentiles_text(&since_poll(burst))
    );
    print_stages(&burst.latencies);
    println!(
        "    each item's own relaying (bridge + homeserver send): {}; a bare send under the same load: {}",
        percentiles_text(&burst_own),
        percentiles_text(&percentiles(&bare.send_us))
    );
    out.print(options);
    println!("{rates}");
    println!(
        "bridge RSS with {} portals: {:.1} MB (VmRSS; peak VmHWM {:.1} MB; goal < 40 MB)",
        options.portals,
        rss.rss_kb as f64 / 1024.0,
        rss.hwm_kb as f64 / 1024.0
    );
    Ok(())
}

/// Where the items' time since their poll response went, stage by stage
/// (each stage's own percentiles: they do not add up).
fn print_stages(latencies: &[world::Latency]) {
    let stage = |of: fn(&world::Latency) -> u64| {
        percentiles_text(&stats::Percentiles::of(latencies.iter().map(of)))
    };
    println!(
        "    by stage: waiting for the portal's worker {}; its preparation (ensure_portal, \
         thread state) {}; the update's earlier items (relayed before it) {}; \
         the item's own relaying (relay_message, send included) {}",
        stage(|l| l.queued_us),
        stage(|l| l.prepared_us),
        stage(|l| l.earlier_us),
        stage(|l| l.relay_us),
    );
    println!(
        "    the homeserver's answers the worker waited for since it took the update up: {}; \
         in the item's own relaying: {}",
        stage(|l| l.homeserver_us),
        stage(|l| l.relay_homeserver_us),
    );
}

/// One throughput round: the bridge's burst and the bare client's, with
/// what the processes used during each.
struct Round {
    burst: world::Burst,
    bare: baseline::Bare,
    burst_usage: usage::Usage,
    bare_usage: usage::Usage,
}

impl Round {
    /// The bridge's rate from the poll response that carried the burst,
    /// against the bare client's.
    fn relaying_ratio(&self) -> f64 {
        self.bare.elapsed.as_secs_f64() / self.burst.relaying().as_secs_f64()
    }

    /// The same from the first post, with the wait for the next poll.
    fn end_to_end_ratio(&self) -> f64 {
        self.bare.elapsed.as_secs_f64() / self.burst.elapsed.as_secs_f64()
    }
}

fn rate(messages: usize, elapsed: Duration) -> f64 {
    messages as f64 / elapsed.as_secs_f64()
}

fn percentiles_text(p: &stats::Percentiles) -> String {
    format!("p50 {} p99 {}", stats::ms(p.p50), stats::ms(p.p99))
}

/// What the Matrix -> Instagram part measured.
struct OutgoingFigures {
    burst: outgoing::Bridged,
    bare: outgoing::Bare,
    paced: outgoing::Bridged,
    solo: outgoing::Bare,
}

/// alice joins her portals and sends through the bridge (a burst, then one
/// at a time); then the bare Instagram client sends the same while the bridge
/// is stopped (so it does not relay those sends back to Matrix meanwhile),
/// and the bench waits for the bridge to relay them once it continues.
async fn measure_outgoing(
    world: &mut world::World,
    options: &Options,
) -> Result<OutgoingFigures, String> {
    world.join_portals().await?;
    let burst = outgoing::through_bridge(world, options.messages, "out").await?;
    let paced = outgoing::paced(world, options.paced, "outpaced").await?;
    world.signal_bridge("STOP")?;
    let bare = outgoing::bare(world, options.messages, "igbare").await;
    let solo = match &bare {
        Ok(_) => outgoing::bare_one_at_a_time(world, options.paced, "igsolo").await,
        Err(e) => Err(e.clone()),
    };
    world.signal_bridge("CONT")?;
    let (bare, solo) = (bare?, solo?);
    for (bodies, who) in [
        (&burst.bodies, "the bridge"),
        (&paced.bodies, "the bridge (paced)"),
        (&bare.bodies, "the bare Instagram client"),
        (&solo.bodies, "the bare Instagram client (one at a time)"),
    ] {
        outgoing::verify_threads(world, bodies, who)?;
    }
    let sent_by_bare = bare.items.union(&solo.items).cloned().collect();
    world.await_relayed(&sent_by_bare).await?;
    Ok(OutgoingFigures {
        burst,
        bare,
        paced,
        solo,
    })
}

impl OutgoingFigures {
    fn print(&self, options: &Options) {
        let percentiles = |samples: &[u64]| stats::Percentiles::of(samples.iter().copied());
        let since_accepted = |run: &outgoing::Bridged| {
            percentiles(
                &run.latencies
                    .iter()
                    .map(|l| l.since_accepted_us)
                    .collect::<Vec<_>>(),
            )
        };
        let bridge_own = |run: &outgoing::Bridged| {
            percentiles(
                &run.latencies
                    .iter()
                    .map(|l| l.since_accepted_us.saturating_sub(l.instagram_us))
                    .collect::<Vec<_>>(),
            )
        };
        let bridge_rate = options.messages as f64 / self.burst.elapsed.as_secs_f64();
        let bare_rate = options.messages as f64 / self.bare.elapsed.as_secs_f64();
        let mode = if options.quick { "quick" } else { "full" };
        println!("== Matrix -> Instagram relay ({mode}) ==");
        println!(
            "throughput: {} messages across {} threads, sent at once by alice through Synapse's \
             client API, one sequential sender per room, rooms in parallel",
            options.messages, options.threads
        );
        println!(
            "  bridge:      {bridge_rate:8.1} msg/s  ({:.2} s from the first send to the last \
             message in the simulator's threads)",
            self.burst.elapsed.as_secs_f64()
        );
        println!(
            "    of which alice's sends until Synapse answered the last: {:.2} s",
            self.burst.matrix_sends.as_secs_f64()
        );
        println!(
            "  bare client: {bare_rate:8.1} msg/s  ({:.2} s; POST broadcast/text/ as alice's \
             session, one sequential sender per thread, threads in parallel)",
            self.bare.elapsed.as_secs_f64()
        );
        println!("  ratio bridge/bare: {:.2}", bridge_rate / bare_rate);
        println!(
            "bridge-added latency, event accepted by the transaction handler -> Instagram's answer:\n  \
             paced ({} messages, one at a time, each once the previous one is out; Synapse \
             answered alice's sends in {:.2} s in all): {}",
            options.paced,
            self.paced.matrix_sends.as_secs_f64(),
            percentiles_text(&since_accepted(&self.paced))
        );
        println!(
            "    the bridge's own work (the same, less the time Instagram took to answer the \
             send): {}",
            percentiles_text(&bridge_own(&self.paced))
        );
        println!(
            "    Instagram alone (bare client, one send at a time): {}",
            percentiles_text(&percentiles(&self.solo.send_us))
        );
        println!(
            "  in the burst (an event also waits behind its room's earlier events): {}; the \
             bridge's own work: {}",
            percentiles_text(&since_accepted(&self.burst)),
            percentiles_text(&bridge_own(&self.burst))
        );
        println!(
            "    a bare send in the bare client's burst: {}",
            percentiles_text(&percentiles(&self.bare.send_us))
        );
    }
}
