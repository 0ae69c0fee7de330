//! A fleet of hosts on one PostgreSQL database, for the fleet tests: the
//! database set up with `mfa-db`, and per host a private bus, an mfad
//! with its own config and role (TLS with a client certificate of its
//! own) and a PAM service through it.

use std::process::Command;

use crate::postgres::Postgres;
use crate::system::require_root;
use crate::{bin, Bus, Mfad, PamService};

pub const HOSTS: [&str; 3] = ["fleet_a", "fleet_b", "fleet_c"];

/// One host: its bus, its mfad, its PAM service (pam-harness).
pub struct Host {
    pub role: &'static str,
    pub mfad: Mfad,
    pub pam: PamService,
    pub bus: Bus,
}

pub struct Fleet {
    pub hosts: Vec<Host>,
    pub pg: Postgres,
}

/// Runs `mfa-db ARGS` as the database's administrator; what it said.
pub fn mfa_db(pg: &Postgres, args: &[&str]) -> String {
    succeeded(
        Command::new(bin("mfa-db"))
            .args(args)
            .args(["--connection", &pg.conninfo("postgres", "mfa")]),
    )
}

/// Runs `mfa-db ARGS --config` of `host` (its own [store]); what it said.
pub fn mfa_db_in(host: &Host, args: &[&str]) -> String {
    succeeded(Command::new(bin("mfa-db")).args(args).arg("--config").arg(&host.mfad.config))
}

/// What `cmd` printed, which must have succeeded.
fn succeeded(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?}: {text}");
    text
}

/// Creates the database `mfa` on `pg` and sets it up with `mfa-db`.
pub fn set_up(pg: &Postgres) {
    pg.psql("postgres", "CREATE DATABASE mfa");
    let said = mfa_db(pg, &["setup"]);
    let latest = pam_mfa_storage::schema::latest();
    let all: Vec<String> = (1..=latest).map(|v| v.to_string()).collect();
    let applied = format!("version {latest} (applied now: {})", all.join(", "));
    assert!(said.contains(&applied), "{said}");
    assert!(mfa_db(pg, &["setup"]).contains("already"), "setup again does nothing");
}

/// A host `role` of the database on `pg` (whose TLS makes the host's
/// certificate), reaching it at the servers on 127.0.0.1 `ports` (the
/// first writable one), with `extra` config too (keys of a `[store]` in it
/// join the host's).
pub fn host(pg: &Postgres, role: &'static str, ports: &[u16], extra: &str) -> Host {
    assert!(mfa_db(pg, &["add-host", role]).contains("is a host's role"));
    let tls = pg.tls.as_ref().unwrap();
    let (cert, key) = tls.client(role);
    let bus = Bus::start();
    let hosts = vec!["127.0.0.1"; ports.len()].join(",");
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    let store = format!(
        "[store]\nbackend = \"postgres\"\ntimeout_ms = 800\n\
         connection = \"host={hosts} port={} dbname=mfa user={role} target_session_attrs=read-write\"\n\
         ca_file = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\n",
        ports.join(","),
        tls.ca.display(),
        cert.display(),
        key.display()
    );
    let config = if extra.contains("[store]\n") {
        extra.replacen("[store]\n", &store, 1)
    } else {
        format!("{extra}\n{store}")
    };
    // The module's bus timeout in the tests is 1000 ms; the store's is
    // 800 ms (mfad refuses a config where it is not below).
    let mfad = Mfad::start(&bus, &config);
    let pam = PamService::new(&format!("max_prompts=1 config={}", mfad.config.display()));
    Host { role, mfad, pam, bus }
}

/// The three hosts of [`HOSTS`] on one server, each mfad with `extra` too.
pub fn fleet(extra: &str) -> Fleet {
    require_root();
    let pg = Postgres::start_tls();
    set_up(&pg);
    let hosts = HOSTS.iter().map(|role| host(&pg, role, &[pg.port], extra)).collect();
    Fleet { hosts, pg }
}

impl Fleet {
    /// Rows of the audit of `user`: (host, service, result), in order.
    pub fn audit(&self, user: &str) -> Vec<(String, String, String)> {
        audit(&self.pg, user)
    }
}

/// Rows of the audit of `user` on `pg`: (host, service, result), in order.
pub fn audit(pg: &Postgres, user: &str) -> Vec<(String, String, String)> {
    let rows = pg.psql(
        "mfa",
        &format!(
            "SELECT host, service, result FROM mfa.audit WHERE username = '{user}' ORDER BY id"
        ),
    );
    rows.lines()
        .filter_map(|l| {
            let mut f = l.split('|').map(str::to_string);
            Some((f.next()?, f.next()?, f.next()?))
        })
        .collect()
}
