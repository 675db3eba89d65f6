//! Benchmark programs that print figures. See the binaries in `src/bin` and `src/main.rs`.

pub mod leftovers;
pub mod subgraphs;
