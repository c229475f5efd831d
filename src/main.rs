//! The `flacstream` binary: check the CPU, parse the command line, then serve
//! (draining on SIGTERM) or run one of the clients (`probe`, `drain`, `key`).

use std::process::ExitCode;

use flacstream::cli::{Cli, Command};
use flacstream::config::legacy_env::LegacyUse;
use flacstream::config::Config;
use flacstream::service::Service;
use flacstream::shutdown::drain_on_signal;

fn main() -> ExitCode {
    // Before anything else runs, so nothing has run code the CPU may lack.
    if let Err(message) = flacstream::cpu::check() {
        eprintln!("flacstream: {message}");
        return ExitCode::FAILURE;
    }
    let (cli, legacy_env) = Cli::parse_with_legacy_env();
    match cli.command {
        Some(Command::Probe(args)) => flacstream::cli::probe::probe(&args),
        Some(Command::Drain(args)) => flacstream::cli::probe::drain(&args),
        Some(Command::Key(args)) => flacstream::auth::keys::print_new_key(&args.id),
        Some(Command::Migrate(args)) => flacstream::cli::migrate::migrate(&args),
        None => match serve(cli.serve, &legacy_env) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("flacstream: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn serve(config: Config, legacy_env: &[LegacyUse]) -> std::io::Result<()> {
    flacstream::logging::init(config.log_format);
    for found in legacy_env {
        log::warn!("{}", found.note());
    }
    let settings = config
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    if let Some((level, notice)) = settings.exposure.notice(settings.bind) {
        log::log!(level, "{notice}");
    }
    actix_web::rt::System::new().block_on(async move {
        let mut service = Service::start(settings)?;
        actix_web::rt::spawn(drain_on_signal(service.stopper()));
        service.run().await
    })
}
