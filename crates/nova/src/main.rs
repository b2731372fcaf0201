//! The `nova` binary: a thin shell over the library.

/// jemalloc returns memory to the system steadily under Nova's allocation pattern (many small
/// long-lived index entries built on several threads); with the system allocator or mimalloc
/// the resident size after a catalog load was 35% higher (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    nova::cli::main()
}
