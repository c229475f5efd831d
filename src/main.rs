//! The `flacstream` binary: parse configuration, serve, drain on SIGTERM.

use clap::Parser;
use flacstream::config::Config;
use flacstream::server::Service;
use flacstream::shutdown::drain_on_signal;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let settings = Config::parse()
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut service = Service::start(settings)?;
    actix_web::rt::spawn(drain_on_signal(service.stopper()));
    service.run().await
}
