//! shipote: parse arguments, ask the daemon, print, exit with 0/1/2.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // With SHIPOTE_COMPLETE set (by the shells' completion scripts), print
    // completions for the words given and exit; otherwise nothing happens.
    clap_complete::CompleteEnv::with_factory(
        <shipote::client::Cli as clap::CommandFactory>::command,
    )
    .var(shipote::client::complete::ENV)
    .complete();
    let cli = match shipote::client::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap: 0 for --help/--version, 2 for usage errors.
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shipote: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(shipote::client::run(cli));
    ExitCode::from(outcome.code())
}
