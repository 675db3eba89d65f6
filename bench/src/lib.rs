//! Benchmark programs that print figures. See the binaries in `src/bin` and `src/main.rs`.

pub mod checkout;
pub mod leftovers;
pub mod machine;
pub mod subgraphs;
