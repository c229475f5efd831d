//! The `flacstream` binary: check the CPU, parse the command line, then serve
//! (draining on SIGTERM) or run one of the clients (`probe`, `drain`, `key`).

use std::process::ExitCode;

use clap::Parser;
use flacstream::cli::{Cli, Command};
use flacstream::config::Config;
use flacstream::service::Service;
use flacstream::shutdown::drain_on_signal;

fn main() -> ExitCode {
    // Before anything else runs, so nothing has run code the CPU may lack.
    if let Err(message) = flacstream::cpu::check() {
        eprintln!("flacstream: {message}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Probe(args)) => flacstream::cli::probe::probe(&args),
        Some(Command::Drain(args)) => flacstream::cli::probe::drain(&args),
        Some(Command::Key(args)) => flacstream::auth::keys::print_new_key(&args.id),
        Some(Command::Migrate(args)) => flacstream::cli::migrate::migrate(&args),
        None => match serve(cli.serve) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("flacstream: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn serve(config: Config) -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let settings = config
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    actix_web::rt::System::new().block_on(async move {
        let mut service = Service::start(settings)?;
        actix_web::rt::spawn(drain_on_signal(service.stopper()));
        service.run().await
    })
}
