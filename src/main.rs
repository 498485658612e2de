//! The `quantlake` binary: everything is in the library (`quantlake::cli`).

// The pipeline allocates and frees partition-sized buffers all the time; glibc's malloc hands large
// ones back to the kernel and every reuse faults fresh zeroed pages in. mimalloc keeps them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    quantlake::cli::main()
}
