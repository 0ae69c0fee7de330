//! End to end, as root: what a user who has the password and a shell tries
//! against a real `sudo`. A fake `io.github.pam_mfa` that says yes to
//! everything (tests/src/bin/fake-mfad.rs) gives root when the module
//! believes it (the control); every way the user can make the module talk
//! to it is refused, and the module's syslog line says why.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pam_mfa_tests::system::{
    ensure_user, require_root, run, set_password, Scratch, SudoService, Syslog,
};
use pam_mfa_tests::{bin, in_this_session, wait_for};

const USER: &str = "mfa-attacker";
const PASSWORD: &str = "attacker's password";

/// A dbus-daemon that lets anyone own any name, run by `user`.
struct OpenBus {
    address: String,
    child: Child,
}

impl OpenBus {
    fn start(dir: &Path, user: &str) -> OpenBus {
        fs::create_dir_all(dir).unwrap();
        run(Command::new("chown").arg(user).arg(dir));
        let socket = dir.join("bus");
        let conf = dir.join("bus.conf");
        fs::write(
            &conf,
            format!(
                "<busconfig><listen>unix:path={}</listen><auth>EXTERNAL</auth>\
                 <policy context=\"default\"><allow user=\"*\"/><allow own=\"*\"/>\
                 <allow send_destination=\"*\"/><allow receive_sender=\"*\"/></policy></busconfig>",
                socket.display()
            ),
        )
        .unwrap();
        // setpriv execs: killing the child kills the bus.
        let child = in_this_session(user, Path::new("dbus-daemon"))
            .args(["--nofork", "--nopidfile"])
            .arg(format!("--config-file={}", conf.display()))
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        assert!(
            wait_for(Duration::from_secs(10), || socket.exists()),
            "{user}'s bus did not start"
        );
        OpenBus { address: format!("unix:path={}", socket.display()), child }
    }
}

impl Drop for OpenBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// fake-mfad as `user` on `bus`, once it owns the name.
struct Fake(Child);

impl Fake {
    fn start(program: &Path, bus: &OpenBus, user: &str) -> Fake {
        let mut child = in_this_session(user, program)
            .arg(&bus.address)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "fake-mfad did not start");
        Fake(child)
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What `sudo -S -k id -un` printed, run by the attacker with the password
/// and a made-up code, with `config` on the PAM line.
fn sudo_as_attacker(scratch: &Scratch, syslog: &Syslog, config: &Path) -> (bool, String) {
    let module = scratch.path("libpam_mfa.so");
    let _sudo = SudoService::install(
        USER,
        "sudo-mfa-attack",
        &format!(
            "auth required pam_unix.so\nauth required {} config={}",
            module.display(),
            config.display()
        ),
    );
    let mut child = syslog
        .command("runuser", &["-u", USER, "--", "sudo", "-S", "-k", "-p", "", "id", "-un"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = writeln!(stdin, "{PASSWORD}\n123456");
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let said =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "root", said)
}

/// A root-owned 0644 config naming `address` and `service_user`.
fn root_config(path: &Path, address: &str, service_user: &str) {
    fs::write(path, format!("[bus]\naddress = \"{address}\"\nservice_user = \"{service_user}\"\n"))
        .unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
}

/// The attacker writes `path` (as they can when a mode lets them).
fn attacker_writes(path: &Path, address: &str) {
    let text = format!("[bus]\naddress = \"{address}\"\nservice_user = \"{USER}\"\n");
    let mut child = Command::new("runuser")
        .args(["-u", USER, "--", "sh", "-c", "rm -f \"$0\" 2>/dev/null; cat > \"$0\""])
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "the attacker could not write {}", path.display());
}

fn dir(scratch: &Scratch, name: &str, mode: u32) -> PathBuf {
    let dir = scratch.path(name);
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
    dir
}

#[test]
fn a_user_cannot_make_sudo_believe_a_fake_mfad() {
    require_root();
    ensure_user(USER, false);
    ensure_user(pam_mfa_protocol::names::SERVICE_USER, true);
    set_password(USER, PASSWORD);
    let scratch = Scratch::new();
    let fake = scratch.path("fake-mfad");
    fs::copy(bin("fake-mfad"), &fake).unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let syslog = Syslog::start();

    // The control: a fake the module is told to trust gives root with a
    // made-up code. This is what each attack below is after.
    let root_bus = OpenBus::start(&scratch.path("root-bus"), "root");
    let trusted = dir(&scratch, "trusted", 0o755).join("config.toml");
    {
        let _fake = Fake::start(&fake, &root_bus, "root");
        root_config(&trusted, &root_bus.address, "root");
        let (root, said) = sudo_as_attacker(&scratch, &syslog, &trusted);
        assert!(root, "the control did not give root: {said}");
    }

    let own_bus = OpenBus::start(&scratch.path("attacker-bus"), USER);
    let _own_fake = Fake::start(&fake, &own_bus, USER);
    let refused = |config: &Path, reason: &str| {
        let before = syslog.text().len();
        let (root, said) = sudo_as_attacker(&scratch, &syslog, config);
        assert!(!root, "{}: the attacker got root: {said}", config.display());
        let log = syslog.text();
        let new = &log[before..];
        assert!(
            new.contains(reason),
            "{}: expected {reason:?} in the syslog:\n{new}",
            config.display()
        );
        assert!(new.contains("pam_mfa(sudo-mfa-attack:auth)"), "{new}");
    };

    // (a) /etc/pam-mfa/config.toml left 0666: the attacker points it at
    // their own bus.
    let loose_file = dir(&scratch, "a", 0o755).join("config.toml");
    root_config(&loose_file, "unix:path=/run/dbus/system_bus_socket", "pam-mfa");
    fs::set_permissions(&loose_file, fs::Permissions::from_mode(0o666)).unwrap();
    attacker_writes(&loose_file, &own_bus.address);
    refused(&loose_file, "not trusted");
    refused(&loose_file, "config refused");

    // (b) a PAM line naming a config the attacker owns.
    let home = PathBuf::from(format!("/home/{USER}/mfa.toml"));
    attacker_writes(&home, &own_bus.address);
    refused(&home, "config refused");

    // (c) /etc/pam-mfa left 0777: the attacker replaces the file.
    let loose_dir = dir(&scratch, "c", 0o755).join("config.toml");
    root_config(&loose_dir, "unix:path=/run/dbus/system_bus_socket", "pam-mfa");
    fs::set_permissions(loose_dir.parent().unwrap(), fs::Permissions::from_mode(0o777)).unwrap();
    attacker_writes(&loose_dir, &own_bus.address);
    refused(&loose_dir, "config refused");

    // (d) root's own config names a socket path the attacker's bus holds.
    let theirs = dir(&scratch, "d", 0o755).join("config.toml");
    root_config(&theirs, &own_bus.address, "pam-mfa");
    let uid = nix::unistd::User::from_name(USER).unwrap().unwrap().uid;
    refused(&theirs, &format!("is run by uid {uid}, not by root, messagebus or pam-mfa"));

    // (e) a bus run by root whose policy lets anyone own the name: the
    // attacker's fake took it.
    let _fake_on_root_bus = Fake::start(&fake, &root_bus, USER);
    let genuine = dir(&scratch, "e", 0o755).join("config.toml");
    root_config(&genuine, &root_bus.address, "pam-mfa");
    refused(&genuine, &format!("is owned by uid {uid}, not by the service user pam-mfa"));

    let _ = fs::remove_file(&home);
}
