//! A small seeded xorshift generator for randomized tests: a failure prints its seed
//! and `TIERCACHE_TEST_SEED` replays it.

/// Deterministic from its seed.
pub struct Rng(pub u64);

impl Rng {
    /// Seeded from `TIERCACHE_TEST_SEED`, else the clock; prints the seed.
    pub fn from_env_or_clock() -> Rng {
        let seed = std::env::var("TIERCACHE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        }) | 1;
        eprintln!("seed {seed} (TIERCACHE_TEST_SEED={seed} replays it)");
        Rng(seed)
    }

    /// The next number (never ends, so not an `Iterator`).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// In `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}
