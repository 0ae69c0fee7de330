//! A real PostgreSQL 15 (Debian's) for the tests: `initdb` and `pg_ctl` in
//! a temporary directory as the postgres user, on a socket in that
//! directory only (no TCP) that only the postgres user may open: its
//! superuser trusts whoever connects, so nobody else on the machine may
//! (a superuser runs programs as postgres). Stopped (immediately) and
//! removed when dropped. Needs root (to become postgres).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::system;

/// Debian's PostgreSQL 15 programs.
const BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct Postgres {
    dir: tempfile::TempDir,
    pub port: u16,
}

fn as_postgres(program: &str) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "postgres", "--"]).arg(Path::new(BIN).join(program));
    cmd
}

impl Postgres {
    /// A new server with an empty cluster (trust authentication on a
    /// socket only the postgres user can open).
    pub fn start() -> Postgres {
        assert!(
            Path::new(BIN).join("initdb").exists(),
            "PostgreSQL 15 is missing: bash scripts/install-deps.sh"
        );
        let dir = tempfile::Builder::new().prefix("pam-mfa-pg-").tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let data = dir.path().join("data");
        let run = dir.path().join("run");
        for sub in [&data, &run] {
            fs::create_dir(sub).unwrap();
            let status = Command::new("chown").arg("postgres:postgres").arg(sub).status().unwrap();
            assert!(status.success());
        }
        system::run(
            as_postgres("initdb")
                .args(["--auth=trust", "--encoding=UTF8", "--no-sync", "-D"])
                .arg(&data),
        );
        let port = crate::system::free_port();
        let options = format!(
            "-c listen_addresses='' -c port={port} -c unix_socket_directories={} \
             -c unix_socket_permissions=0700 -c fsync=off",
            run.display()
        );
        let out = as_postgres("pg_ctl")
            .args(["-w", "-t", "30", "-D"])
            .arg(&data)
            .arg("-l")
            .arg(data.join("log"))
            .args(["-o", &options, "start"])
            .stdout(Stdio::null())
            .output()
            .unwrap();
        if !out.status.success() {
            let log = fs::read_to_string(data.join("log")).unwrap_or_default();
            panic!("pg_ctl start: {}\n{log}", String::from_utf8_lossy(&out.stderr));
        }
        Postgres { dir, port }
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// A libpq connection string for role `user` on `database` through
    /// the private socket (the test runs as root, which may open it).
    pub fn conninfo(&self, user: &str, database: &str) -> String {
        format!(
            "host={} port={} user={user} dbname={database}",
            self.socket_dir().display(),
            self.port
        )
    }

    /// A client of the superuser on `database`.
    pub fn client(&self, database: &str) -> postgres::Client {
        postgres::Client::connect(&self.conninfo("postgres", database), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to {database}: {e}"))
    }

    /// Runs `sql` (one or more statements, or a script with COPY … FROM
    /// STDIN data in it) with psql as the superuser on `database`; returns
    /// what it printed (unaligned, tuples only). Panics on any error.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = self.psql_as("postgres", database, sql);
        assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs psql as the system user `user` (whatever it prints).
    pub fn psql_as(&self, user: &str, database: &str, sql: &str) -> std::process::Output {
        crate::with_input(
            Command::new("runuser")
                .args(["-u", user, "--"])
                .arg(Path::new(BIN).join("psql"))
                .arg("-h")
                .arg(self.socket_dir())
                .args(["-p", &self.port.to_string(), "-d", database])
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"]),
            sql,
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres("pg_ctl")
            .args(["-m", "immediate", "-D"])
            .arg(self.dir.path().join("data"))
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
