//! The `quantlake` binary: everything is in the library (`quantlake::cli`).

fn main() -> std::process::ExitCode {
    quantlake::cli::main()
}
