//! `better-store`: run the platform. See `better-store --help`.

use clap::Parser;

// The gateway runs in this process too; see gateway/src/main.rs for why mimalloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = better_store::cli::Cli::parse();
    match better_store::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = ?err, "better-store stopped with an error");
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
