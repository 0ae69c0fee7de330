//! The TOTP of the fleet store, computed inside a real PostgreSQL 15 with
//! pgcrypto (`storage/sql/001-totp.sql`), agrees with the Rust one that
//! mfad uses: RFC 6238 Appendix B (SHA1/256/512, 8 digits, and the same
//! vectors cut to 6 and 7), and 10,000 random (secret, time, algorithm,
//! digits, period). A host will have codes checked by the database and
//! never read a secret (issue 15): both sides must say the same code.
//! Root: the server runs as the postgres user.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::fmt::Write as _;

use pam_mfa_config::schema::Algorithm;
use pam_mfa_core::totp::{code_at, Params};
use pam_mfa_tests::postgres::Postgres;
use pam_mfa_tests::system::require_root;
use pam_mfa_tests::workspace;

fn schema() -> String {
    std::fs::read_to_string(workspace().join("storage/sql/001-totp.sql")).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One case: (secret, algorithm, digits, period, unix time).
type Case = (Vec<u8>, Algorithm, u8, u64, u64);

/// Each case's code from the database, in order.
fn codes_in_sql(pg: &Postgres, cases: &[Case]) -> Vec<String> {
    let mut script = String::from(
        "CREATE TEMP TABLE c (n int, secret text, algorithm text, digits int, period bigint, at bigint);\n\
         COPY c FROM STDIN;\n",
    );
    for (n, (secret, algorithm, digits, period, at)) in cases.iter().enumerate() {
        let _ = writeln!(
            script,
            "{n}\t{}\t{}\t{digits}\t{period}\t{at}",
            hex(secret),
            algorithm.as_str()
        );
    }
    script.push_str(
        "\\.\nSELECT mfa.totp_code(decode(secret, 'hex'), algorithm, digits, period, at) FROM c ORDER BY n;\n",
    );
    pg.psql("postgres", &script).lines().map(str::to_string).collect()
}

fn code_in_rust((secret, algorithm, digits, period, at): &Case) -> String {
    code_at(secret, Params { algorithm: *algorithm, digits: *digits, period: *period }, *at)
}

#[test]
fn the_database_and_mfad_compute_the_same_codes() {
    require_root();
    let pg = Postgres::start();
    pg.psql("postgres", &schema());
    // Applying the schema again changes nothing and fails nothing.
    pg.psql("postgres", &schema());

    // RFC 6238 Appendix B.
    let seed = |len: usize| b"1234567890".iter().copied().cycle().take(len).collect::<Vec<u8>>();
    let vectors: [(u64, [&str; 3]); 6] = [
        (59, ["94287082", "46119246", "90693936"]),
        (1111111109, ["07081804", "68084774", "25091201"]),
        (1111111111, ["14050471", "67062674", "99943326"]),
        (1234567890, ["89005924", "91819424", "93441116"]),
        (2000000000, ["69279037", "90698825", "38618901"]),
        (20000000000, ["65353130", "77737706", "47863826"]),
    ];
    let algorithms = [(Algorithm::Sha1, 20), (Algorithm::Sha256, 32), (Algorithm::Sha512, 64)];
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for (t, codes) in vectors {
        for ((algorithm, len), code) in algorithms.iter().zip(codes) {
            for digits in [8u8, 7, 6] {
                cases.push((seed(*len), *algorithm, digits, 30, t));
                // A shorter code is the 8-digit value modulo 10^digits.
                expected.push(code[8 - usize::from(digits)..].to_string());
            }
        }
    }
    assert_eq!(codes_in_sql(&pg, &cases), expected, "the RFC's vectors, in SQL");
    let rust: Vec<String> = cases.iter().map(code_in_rust).collect();
    assert_eq!(rust, expected, "the RFC's vectors, in Rust");

    // 10,000 random cases.
    let mut random = vec![0u8; 10_000 * 48];
    use std::io::Read;
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut random).unwrap();
    let cases: Vec<Case> = random
        .chunks(48)
        .map(|r| {
            let algorithm = algorithms[usize::from(r[0]) % 3].0;
            let digits = 6 + r[1] % 3;
            let period = [15u64, 30, 60, 300][usize::from(r[2]) % 4];
            let at = u64::from_le_bytes(r[8..16].try_into().unwrap()) % 4_102_444_800;
            let len = 10 + usize::from(r[3]) % 31;
            (r[16..16 + len.min(32)].to_vec(), algorithm, digits, period, at)
        })
        .collect();
    let sql = codes_in_sql(&pg, &cases);
    assert_eq!(sql.len(), cases.len());
    let mut differ = 0;
    for (case, from_sql) in cases.iter().zip(&sql) {
        if code_in_rust(case) != *from_sql {
            differ += 1;
            eprintln!("differs: {case:?}: Rust {} SQL {from_sql}", code_in_rust(case));
        }
    }
    assert_eq!(differ, 0, "of {} random cases", cases.len());
}

#[test]
fn nobody_but_postgres_can_reach_the_test_server() {
    require_root();
    let pg = Postgres::start();
    // Its superuser trusts whoever connects: another user must not get in
    // (no TCP listener, a socket only postgres may open).
    let out = pg.psql_as("nobody", "postgres", "SELECT 1;");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "nobody connected: {}", String::from_utf8_lossy(&out.stdout));
    assert!(err.contains("Permission denied"), "{err}");
    assert_eq!(pg.psql("postgres", "SELECT 1;").trim(), "1");
    let tcp = std::net::TcpStream::connect(("127.0.0.1", pg.port));
    assert!(tcp.is_err(), "the server listens on 127.0.0.1:{}", pg.port);
}
