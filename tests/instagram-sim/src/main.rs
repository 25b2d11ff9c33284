//! The `instagram-sim` binary: serves the simulator on a loopback port.
//! `instagram-sim --port N [--seed demo] [--cookies-out FILE]`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use instagram_sim::Simulator;

#[derive(Clone, Copy, ValueEnum)]
enum Seed {
    /// The demo dataset described in README.md.
    Demo,
}

#[derive(Parser)]
#[command(about = "A stateful simulator of Instagram's private API and web login")]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one; the chosen URL is printed).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Load a dataset at start.
    #[arg(long, value_enum)]
    seed: Option<Seed>,
    /// Write the demo account's cookies (a JSON object) to this file; needs --seed demo.
    #[arg(long, requires = "seed")]
    cookies_out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let simulator = Simulator::bind(SocketAddr::from(([127, 0, 0, 1], args.port)))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    if let Some(Seed::Demo) = args.seed {
        let seed = simulator.seed_demo().context("seeding the demo dataset")?;
        if let Some(path) = &args.cookies_out {
            let cookies = serde_json::to_string_pretty(&seed.demo.cookies)?;
            std::fs::write(path, cookies)
                .with_context(|| format!("writing cookies to {}", path.display()))?;
        }
        println!(
            "demo account {} (pk {}), {} threads",
            seed.demo.username,
            seed.demo.pk,
            seed.thread_ids.len()
        );
    }
    println!("instagram-sim listening on {}", simulator.base_url());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
