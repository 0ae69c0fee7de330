//! Secret randomness: the kernel's CSPRNG, behind a trait so tests can script it.

/// A source of secret random bytes.
pub trait Random: Send + Sync {
    fn fill(&self, buf: &mut [u8]) -> std::io::Result<()>;
}

/// The kernel's CSPRNG (/dev/urandom never blocks once the pool is seeded,
/// which it is long before mfad starts).
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> std::io::Result<()> {
        use std::io::Read;
        std::fs::File::open("/dev/urandom")?.read_exact(buf)
    }
}
