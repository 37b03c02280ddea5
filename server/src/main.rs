//! `sextant`: metrics, logs, traces, alerts and their UI in one binary.

/// mimalloc: indexing allocates many small objects on several threads, where
/// glibc's allocator spends a fifth of the time and contends on its locks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sextant_server::main()
}
