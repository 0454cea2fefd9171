//! The async runtime the engine runs on.

use anyhow::Context as _;

/// A tokio runtime sized for this machine: on one CPU a single-threaded one, which spares every
/// wake-up a hop between threads.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut builder = if cpus > 1 && std::env::var_os("HVSOCK_SINGLE_THREAD").is_none() {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().context("cannot start the async runtime")
}
