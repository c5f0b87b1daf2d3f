//! The `regatta` command: a thin shell over [`regatta_cli::run`].

use clap::Parser;

// Image pipelines free many large buffers from many threads; glibc's per-thread
// arenas keep them resident. mimalloc returns them, keeping peak memory flat.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,lance_io::object_store=error"),
    )
    .init();
    regatta::proto::install_crypto_provider();
    let cli = regatta_cli::Cli::parse();
    let code = match regatta_cli::run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
