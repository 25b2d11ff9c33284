//! The `matrix-instagram` command line: run the bridge, write a config,
//! run one connector action, or check a connector spec.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "matrix-instagram", version, about = "A Matrix bridge for Instagram direct messages")]
struct Cli {
    /// Path of the configuration file.
    #[arg(short, long, global = true, default_value = "config.yaml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the bridge (the default).
    Run,
    /// Write a documented config.yaml and the matching registration.yaml.
    Init {
        /// Homeserver client-server URL.
        #[arg(long, default_value = "http://127.0.0.1:8008")]
        homeserver_url: String,
        /// Homeserver server name.
        #[arg(long, default_value = "localhost")]
        domain: String,
        /// Where to write the registration file.
        #[arg(long, default_value = "registration.yaml")]
        registration: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Run one connector action and print the normalized result as JSON.
    Action(matrix_instagram::connector::cli::ActionArgs),
    /// Validate a connector spec and report every problem with its location.
    CheckSpec(matrix_instagram::connector::cli::CheckSpecArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = cli.config;
    match cli.command.unwrap_or(Command::Run) {
        Command::Action(args) => matrix_instagram::connector::cli::run_action(args),
        Command::CheckSpec(args) => matrix_instagram::connector::cli::check_spec(args),
        Command::Run | Command::Init { .. } => {
            eprintln!("not yet available");
            ExitCode::FAILURE
        }
    }
}
