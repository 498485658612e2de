//! The `quantlake` binary: the command line is the `quantlake_cli` library (`lib.rs`), its allocator is set here.

// The pipeline allocates and frees partition-sized buffers all the time; glibc's malloc hands large
// ones back to the kernel and every reuse faults fresh zeroed pages in. mimalloc keeps them, built
// without transparent huge pages (`no_thp`): with them, every refault zeroed a whole 2 MiB page.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e`: the one before `use_numa_nodes`, which
/// libmimalloc-sys names (it does not name this one).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = libmimalloc_sys::mi_option_use_numa_nodes - 1;

fn main() -> std::process::ExitCode {
    // Never hand freed pages back (mimalloc's default purges them after a second): the next
    // partition reuses them instead of faulting zeroed ones in, half the peer job's system time. The
    // process keeps the memory of its busiest moment until it exits.
    // SAFETY: sets a documented option before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    quantlake_cli::main()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_option_set_is_the_purge_delay() {
        // Only the purge delay defaults to 1000 (ms) in mimalloc 3's option table.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) }, 1000);
        }
    }
}
