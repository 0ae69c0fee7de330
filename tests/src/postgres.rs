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
use crate::tls::TestCa;

/// Debian's PostgreSQL 15 programs.
const BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct Postgres {
    dir: tempfile::TempDir,
    pub port: u16,
    /// The server options pg_ctl starts it with.
    options: String,
    /// With [`Postgres::start_tls`]: where its CA and client certificates are.
    pub tls: Option<Tls>,
}

/// A test CA, the server's certificate for 127.0.0.1, and client
/// certificates made on demand (CN = the role, as pg_hba's cert method
/// checks).
pub struct Tls {
    authority: TestCa,
    pub ca: PathBuf,
}

impl Tls {
    fn new(dir: PathBuf) -> Tls {
        let authority = TestCa::in_dir(dir, "pam-mfa test CA");
        authority.issue("server", "localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
        let ca = authority.cert.clone();
        Tls { authority, ca }
    }

    fn dir(&self) -> &Path {
        self.authority.dir()
    }

    /// A client certificate and key for `role`.
    pub fn client(&self, role: &str) -> (PathBuf, PathBuf) {
        self.authority.client_cert(&format!("client-{role}"), role)
    }
}

/// A directory for one server: `data` (for initdb or pg_basebackup) and
/// `run` (its socket), owned by postgres.
fn server_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new().prefix("pam-mfa-pg-").tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    for sub in [&data, &dir.path().join("run")] {
        fs::create_dir(sub).unwrap();
        system::run(Command::new("chown").arg("postgres:postgres").arg(sub));
    }
    // As initdb leaves it (pg_basebackup fills it as it is).
    fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).unwrap();
    (dir, data)
}

/// The server options: a private socket in `dir`/run only postgres may
/// open; with `tls` (its certificates' directory and CA) also 127.0.0.1,
/// TLS with this server's key (in its data directory).
fn options(dir: &Path, port: u16, tls: Option<(&Path, &PathBuf)>) -> String {
    let mut options = format!(
        "-c port={port} -c unix_socket_directories={} -c unix_socket_permissions=0700 -c fsync=off",
        dir.join("run").display()
    );
    match tls {
        Some((certs, ca)) => options.push_str(&format!(
            " -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file={} -c ssl_key_file={} -c ssl_ca_file={}",
            certs.join("server.crt").display(),
            dir.join("data/server.key").display(),
            ca.display()
        )),
        None => options.push_str(" -c listen_addresses=''"),
    }
    options
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
        Postgres::start_with(false)
    }

    /// A server that also listens on 127.0.0.1, TLS only, where a role
    /// logs in with a client certificate whose CN is its name (pg_hba's
    /// cert method); the superuser keeps its private socket.
    pub fn start_tls() -> Postgres {
        Postgres::start_with(true)
    }

    /// As [`Postgres::start_tls`], with fsync on (as shipped): for
    /// benchmarks, where the tests' fsync=off would flatter the database.
    pub fn start_tls_durable() -> Postgres {
        let mut server = Postgres::start_cluster(true, &[]);
        server.stop();
        server.options = server.options.replace("-c fsync=off", "-c fsync=on");
        server.start_again();
        server
    }

    fn start_with(tls: bool) -> Postgres {
        Postgres::start_cluster(tls, &[])
    }

    /// A primary (TLS as [`Postgres::start_tls`]) whose commits wait for
    /// any one of the synchronous standbys named `standbys`
    /// (`synchronous_standby_names = 'ANY 1 (...)'`); make them with
    /// [`Postgres::standby`].
    pub fn start_primary(standbys: &[&str]) -> Postgres {
        Postgres::start_cluster(true, standbys)
    }

    fn start_cluster(tls: bool, standbys: &[&str]) -> Postgres {
        assert!(
            Path::new(BIN).join("initdb").exists(),
            "PostgreSQL 15 is missing: bash scripts/install-deps.sh"
        );
        let (dir, data) = server_dir();
        system::run(
            as_postgres("initdb")
                .args(["--auth=trust", "--encoding=UTF8", "--no-sync", "-D"])
                .arg(&data),
        );
        let port = crate::system::free_port();
        let tls = tls.then(|| {
            let tls = Tls::new(dir.path().join("tls"));
            let server_key = data.join("server.key");
            fs::copy(tls.dir().join("server.key"), &server_key).unwrap();
            system::run(Command::new("chown").arg("postgres:postgres").arg(&server_key));
            fs::set_permissions(&server_key, fs::Permissions::from_mode(0o600)).unwrap();
            // Only these: initdb's file also trusts TCP from 127.0.0.1.
            fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nlocal replication all trust\nhostssl all all 127.0.0.1/32 cert\n",
            )
            .unwrap();
            tls
        });
        if !standbys.is_empty() {
            let mut conf =
                fs::OpenOptions::new().append(true).open(data.join("postgresql.conf")).unwrap();
            std::io::Write::write_all(
                &mut conf,
                format!(
                    "\nwal_level = replica\nmax_wal_senders = 10\n\
                     synchronous_standby_names = 'ANY 1 ({})'\n",
                    standbys.join(", ")
                )
                .as_bytes(),
            )
            .unwrap();
        }
        let server = Postgres {
            options: options(dir.path(), port, tls.as_ref().map(|t| (t.dir(), &t.ca))),
            dir,
            port,
            tls,
        };
        server.start_again();
        server
    }

    /// A streaming standby of this server (pg_basebackup -R), named
    /// `name` (its application_name), started; TLS as this server's.
    pub fn standby(&self, name: &str) -> Postgres {
        let (dir, data) = server_dir();
        let source = format!(
            "host={} port={} user=postgres application_name={name}",
            self.socket_dir().display(),
            self.port
        );
        system::run(
            as_postgres("pg_basebackup")
                .args(["-R", "-X", "stream", "-c", "fast", "-d", &source, "-D"])
                .arg(&data),
        );
        let port = crate::system::free_port();
        let tls = self.tls.as_ref().map(|t| (t.dir(), &t.ca));
        let server = Postgres { options: options(dir.path(), port, tls), dir, port, tls: None };
        server.start_again();
        server
    }

    /// Makes this standby the primary.
    pub fn promote(&self) {
        system::run(
            as_postgres("pg_ctl")
                .args(["-w", "-D"])
                .arg(self.dir.path().join("data"))
                .arg("promote"),
        );
    }

    /// Makes this standby stream from `primary` from now on (its new
    /// timeline included: a standby behind the promoted one follows it).
    pub fn follow(&self, primary: &Postgres, name: &str) {
        self.psql(
            "postgres",
            &format!(
                "ALTER SYSTEM SET primary_conninfo = 'host={} port={} user=postgres application_name={name}';
                 SELECT pg_reload_conf();",
                primary.socket_dir().display(),
                primary.port
            ),
        );
    }

    /// How far this server has received (or written) the WAL, in bytes.
    pub fn wal_position(&self) -> u128 {
        let text = self.psql(
            "postgres",
            "SELECT pg_wal_lsn_diff(coalesce(pg_last_wal_receive_lsn(), pg_current_wal_lsn()), '0/0')::bigint",
        );
        text.trim().parse().unwrap()
    }

    /// Ends the server as a crash would (no checkpoint, sessions cut).
    pub fn crash(&self) {
        system::run(
            as_postgres("pg_ctl")
                .args(["-w", "-m", "immediate", "-D"])
                .arg(self.dir.path().join("data"))
                .arg("stop"),
        );
    }

    /// Stops the server (fast: sessions are ended).
    pub fn stop(&self) {
        system::run(
            as_postgres("pg_ctl")
                .args(["-w", "-m", "fast", "-D"])
                .arg(self.dir.path().join("data"))
                .arg("stop"),
        );
    }

    /// Starts it (again, after [`Postgres::stop`]) as it was.
    pub fn start_again(&self) {
        let data = self.dir.path().join("data");
        let out = as_postgres("pg_ctl")
            .args(["-w", "-t", "30", "-D"])
            .arg(&data)
            .arg("-l")
            .arg(self.dir.path().join("run/log"))
            .args(["-o", &self.options, "start"])
            .stdout(Stdio::null())
            .output()
            .unwrap();
        if !out.status.success() {
            let log = fs::read_to_string(self.dir.path().join("run/log")).unwrap_or_default();
            panic!("pg_ctl start: {}\n{log}", String::from_utf8_lossy(&out.stderr));
        }
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) every process of the server:
    /// connections are accepted by the kernel and never answered, as
    /// with a server that hangs or a network that drops packets.
    pub fn freeze(&self, frozen: bool) {
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let pid_file = fs::read_to_string(self.dir.path().join("data/postmaster.pid")).unwrap();
        let postmaster = pid_file.lines().next().unwrap().trim().to_string();
        let children = Command::new("pgrep").args(["-P", &postmaster]).output().unwrap();
        let mut pids: Vec<String> = String::from_utf8_lossy(&children.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        pids.push(postmaster);
        system::run(Command::new("kill").arg(signal).args(&pids));
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
