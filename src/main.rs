use clap::Parser;
use library_api::cli::{self, Cli};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One line, naming what went wrong; the details are in the log above it.
            eprintln!("library-api: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
