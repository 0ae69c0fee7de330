//! The kernel's CSPRNG, the randomness mfad gives the core.

pub use pam_mfa_core::random::Random;

/// The kernel's CSPRNG (/dev/urandom never blocks once the pool is seeded,
/// which it is long before mfad starts).
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> std::io::Result<()> {
        use std::io::Read;
        std::fs::File::open("/dev/urandom")?.read_exact(buf)
    }
}
