//! `past-node`: the native node's command line, a thin CLI over the `past_node` library (a
//! full Pastry/PAST node of the browsers' network): see `past-node --help` and the README.
//!
//! Exit codes: 0 success; 1 bad usage, configuration or input (unreadable or exposed key
//! file, corrupted or busy store, malformed link); 2 not found; 3 network unavailable (too
//! few nodes, holders unreachable, no signaling server, node stopped); 4 storage full or
//! over quota; 5 refused (not the owner, wrong or missing key); 6 a local file could not
//! be read or written.

mod cli;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() { ExitCode::from(cli::USAGE) } else { ExitCode::SUCCESS };
        }
    };
    cli.init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(cli::IO);
        }
    };
    let json = cli.json;
    match runtime.block_on(cli.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => ExitCode::from(cli::report_error(&err, json)),
    }
}
