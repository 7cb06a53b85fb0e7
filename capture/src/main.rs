//! `capture` binary: see the library for everything.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = capture::cli::Cli::parse();
    match capture::cli::main(cli).map_err(anyhow::Error::from) {
        Ok(report) => {
            eprintln!("{report}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
