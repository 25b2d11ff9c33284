//! Benchmark: mapping a 50-thread inbox response.
fn main() {}
