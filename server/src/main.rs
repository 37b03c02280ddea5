//! `sextant`: metrics, logs, traces, alerts and their UI in one binary.

fn main() -> std::process::ExitCode {
    sextant_server::main()
}
