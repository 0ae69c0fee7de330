//! A test certificate authority, made with the `openssl` CLI: the
//! certificates the tests' TLS servers (mfa-web, PostgreSQL) and clients
//! (a fleet host's role) show.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::system;

pub struct TestCa {
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    /// The CA certificate (PEM), for a client or a browser to trust.
    pub cert: PathBuf,
}

impl TestCa {
    /// A new CA named `name` (its subject CN), in a temporary directory.
    pub fn new(name: &str) -> TestCa {
        let temp = tempfile::Builder::new().prefix("pam-mfa-ca-").tempdir().unwrap();
        TestCa::make(temp.path().to_path_buf(), Some(temp), name)
    }

    /// A new CA named `name` whose files are in `dir` (made if need be).
    pub fn in_dir(dir: PathBuf, name: &str) -> TestCa {
        fs::create_dir_all(&dir).unwrap();
        TestCa::make(dir, None, name)
    }

    fn make(dir: PathBuf, temp: Option<tempfile::TempDir>, name: &str) -> TestCa {
        openssl(
            &dir,
            &["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        let cert = dir.join("ca.crt");
        TestCa { dir, _temp: temp, cert }
    }

    /// The directory of its files (`NAME.crt`, `NAME.key`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Issues `name`.crt and `name`.key (mode 0600) for subject CN `cn`,
    /// with `extensions` (lines of an openssl extension file).
    pub fn issue(&self, name: &str, cn: &str, extensions: &str) -> (PathBuf, PathBuf) {
        let dir = &self.dir;
        let (key, csr, crt) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"));
        openssl(
            dir,
            &["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
            &["-keyout", &key, "-out", &csr, "-subj", &format!("/CN={cn}")],
        );
        let ext = dir.join(format!("{name}.ext"));
        fs::write(&ext, extensions).unwrap();
        openssl(
            dir,
            &["x509", "-req", "-in", &csr, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"],
            &["-out", &crt, "-days", "2", "-extfile", &ext.display().to_string()],
        );
        let key = dir.join(key);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        (dir.join(crt), key)
    }

    /// A server certificate and key for the DNS names `hosts` (and
    /// 127.0.0.1); `name` names the files.
    pub fn server_cert(&self, name: &str, hosts: &[&str]) -> (PathBuf, PathBuf) {
        let names: Vec<String> = hosts.iter().map(|h| format!("DNS:{h}")).collect();
        let extensions = format!(
            "subjectAltName={},IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
            names.join(",")
        );
        self.issue(name, hosts[0], &extensions)
    }

    /// A client certificate and key whose subject CN is `cn`.
    pub fn client_cert(&self, name: &str, cn: &str) -> (PathBuf, PathBuf) {
        self.issue(name, cn, "basicConstraints=CA:FALSE\n")
    }
}

fn openssl(dir: &Path, args: &[&str], more: &[&str]) {
    system::run(Command::new("openssl").current_dir(dir).args(args).args(more));
}
