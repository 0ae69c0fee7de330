//! The file store passes the core's conformance suite, on a real
//! directory (each case a fresh temp dir, mode 0700, as mfad's).

use pam_mfa_core::conformance::Subject;

pam_mfa_core::storage_conformance!(|| {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let store = pam_mfa_storage::file::open(&dir.path().join("state"))
        .unwrap_or_else(|e| panic!("open: {e}"));
    Subject::new(store, dir)
});
