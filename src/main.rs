//! The `matrix-instagram` command line: run the bridge, write a config,
//! run one connector action, or check a connector spec.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "matrix-instagram",
    version,
    about = "A Matrix bridge for Instagram direct messages"
)]
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
        /// Address and port the appservice API listens on.
        #[arg(long, default_value = matrix_instagram::config::DEFAULT_LISTEN)]
        listen: std::net::SocketAddr,
        /// URL the homeserver uses to reach the bridge [default: http://LISTEN].
        #[arg(long)]
        address: Option<String>,
        /// Database URL: sqlite://PATH?mode=rwc or postgres://...
        #[arg(long, default_value = matrix_instagram::config::DEFAULT_DATABASE_URL)]
        database_url: String,
    },
    /// Run one connector action and print the normalized result as JSON.
    Action(matrix_instagram::cli::ActionArgs),
    /// Validate a connector spec and report every problem with its location.
    CheckSpec(matrix_instagram::cli::CheckSpecArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => matrix_instagram::bridge::run::main_run(&cli.config),
        Command::Init {
            homeserver_url,
            domain,
            registration,
            force,
            listen,
            address,
            database_url,
        } => {
            let options = matrix_instagram::config::InitOptions {
                config_path: cli.config,
                registration_path: registration,
                homeserver_url,
                domain,
                listen,
                address,
                database_url,
                force,
            };
            match matrix_instagram::config::init(&options) {
                Ok(config) => {
                    println!(
                        "{}",
                        matrix_instagram::config::init_summary(&options, &config)
                    );
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Action(args) => matrix_instagram::cli::run_action(args, &cli.config),
        Command::CheckSpec(args) => matrix_instagram::cli::check_spec(args),
    }
}
