//! The `flacstream` binary: check the CPU, parse configuration, serve, drain
//! on SIGTERM.

use clap::Parser;
use flacstream::config::Config;
use flacstream::server::Service;
use flacstream::shutdown::drain_on_signal;

fn main() -> std::io::Result<()> {
    // Before the runtime starts, so nothing has run code the CPU may lack.
    if let Err(message) = flacstream::cpu::check() {
        eprintln!("flacstream: {message}");
        std::process::exit(1);
    }
    serve()
}

#[actix_web::main]
async fn serve() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let settings = Config::parse()
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut service = Service::start(settings)?;
    actix_web::rt::spawn(drain_on_signal(service.stopper()));
    service.run().await
}
