//! Secret randomness, as an argument: mfad passes the kernel's CSPRNG,
//! tests pass their own.

/// A source of secret random bytes.
pub trait Random: Send + Sync {
    fn fill(&self, buf: &mut [u8]) -> std::io::Result<()>;
}

#[cfg(test)]
pub(crate) mod tests {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Unpredictable enough for tests (std's randomly keyed SipHash of a
    /// counter), and no secret: never used outside the core's tests.
    #[derive(Default)]
    pub struct TestRandom {
        counter: AtomicU64,
        keys: std::collections::hash_map::RandomState,
    }

    impl super::Random for TestRandom {
        fn fill(&self, buf: &mut [u8]) -> std::io::Result<()> {
            for chunk in buf.chunks_mut(8) {
                let mut hasher = self.keys.build_hasher();
                hasher.write_u64(self.counter.fetch_add(1, Ordering::Relaxed));
                let bytes = hasher.finish().to_le_bytes();
                chunk.copy_from_slice(&bytes[..chunk.len()]);
            }
            Ok(())
        }
    }
}
