//! A Debian 12 booted with systemd as PID 1, for the boot test: a copy of
//! the root that `scripts/debian-root.sh` made (named by
//! `PAM_MFA_BOOT_ROOT`), booted with `systemd-nspawn --boot` in its own
//! network namespace, and commands run inside it through `nsenter` into
//! its PID 1. `scripts/boot-test.sh` sets the environment and runs these
//! tests; the copy is removed and the machine powered off on drop.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::wait_for;

/// The environment `scripts/boot-test.sh` gives the boot test.
pub fn given(var: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => panic!("{var} is not set: run the boot test with `bash scripts/boot-test.sh`"),
    }
}

/// A fresh copy of the cached Debian 12 root, removed on drop.
pub struct Image {
    pub dir: tempfile::TempDir,
}

impl Image {
    pub fn new() -> Image {
        let cached = given("PAM_MFA_BOOT_ROOT");
        assert!(
            cached.join(".complete").exists(),
            "{} is not a complete root: run scripts/debian-root.sh",
            cached.display()
        );
        // Beside the cache, on the same file system: a copy is fast there.
        let parent = cached.parent().unwrap_or(Path::new("/var/tmp"));
        let dir = tempfile::Builder::new().prefix("machine-").tempdir_in(parent).unwrap();
        let root = dir.path().join("root");
        let out = Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(&cached)
            .arg(&root)
            .output()
            .unwrap();
        assert!(out.status.success(), "copying the root: {}", String::from_utf8_lossy(&out.stderr));
        Image { dir }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Where a path inside the machine is on the host.
    pub fn host_path(&self, inside: &str) -> PathBuf {
        self.root().join(inside.trim_start_matches('/'))
    }

    /// Copies a host file into the machine.
    pub fn put(&self, from: &Path, inside: &str) {
        let to = self.host_path(inside);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(from, &to).unwrap_or_else(|e| panic!("{} -> {}: {e}", from.display(), inside));
    }
}

impl Default for Image {
    fn default() -> Self {
        Image::new()
    }
}

/// The booted machine. Powered off (killed if it will not stop) on drop.
pub struct Machine {
    nspawn: Option<Child>,
    /// systemd, the machine's PID 1, as the host sees it.
    pub leader: i32,
    pub log: PathBuf,
}

/// How long a command inside may take before it is killed.
const COMMAND_LIMIT: &str = "120";

impl Machine {
    /// Boots `image` and waits until systemd says the system is up.
    pub fn boot(image: &Image) -> Machine {
        let log = image.dir.path().join("nspawn.log");
        let nspawn = Command::new("systemd-nspawn")
            .arg("--directory")
            .arg(image.root())
            .args(["--boot", "--register=no", "--keep-unit", "--private-network"])
            .args(["--console=pipe", "--machine=pam-mfa-boot", "--quiet"])
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::File::create(image.dir.path().join("nspawn.err")).unwrap())
            .process_group(0)
            .spawn()
            .expect("systemd-nspawn not found: apt-get install systemd-container");
        let nspawn_pid = nspawn.id() as i32;
        let mut machine = Machine { nspawn: Some(nspawn), leader: 0, log };
        let found = wait_for(Duration::from_secs(30), || {
            machine.leader = systemd_below(nspawn_pid).unwrap_or(0);
            machine.leader != 0
        });
        let err = fs::read_to_string(image.dir.path().join("nspawn.err")).unwrap_or_default();
        assert!(
            found,
            "systemd-nspawn did not boot a systemd (can this machine boot a container?): {err}"
        );
        // Until systemd listens, systemctl says nothing on standard output.
        let mut state = String::new();
        wait_for(Duration::from_secs(90), || {
            let out = machine.sh("timeout 90 systemctl is-system-running --wait");
            state = String::from_utf8_lossy(&out.stdout).trim().to_string();
            !state.is_empty()
        });
        assert!(
            state == "running" || state == "degraded",
            "the machine did not come up: {state}\n{}",
            machine.ok("systemctl --failed --no-pager; journalctl -b --no-pager | tail -n 40")
        );
        machine
    }

    /// The words that run a program inside the machine as root, with a
    /// clean environment: nsenter into every namespace of its PID 1.
    pub fn prefix(&self) -> Vec<String> {
        [
            "nsenter",
            "-t",
            &self.leader.to_string(),
            "-a",
            "--",
            "env",
            "-i",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=/root",
            "LANG=C.UTF-8",
            "TERM=xterm",
            "DEBIAN_FRONTEND=noninteractive",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// A host program in the machine's network only (its loopback), with
    /// the host's files: e.g. the host's openssl talking to a server inside.
    pub fn in_network(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("timeout");
        cmd.args([
            "--kill-after=5",
            COMMAND_LIMIT,
            "nsenter",
            "-t",
            &self.leader.to_string(),
            "-n",
            "--",
        ])
        .args(args);
        cmd
    }

    /// A command inside the machine, bounded by COMMAND_LIMIT seconds.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("timeout");
        cmd.args(["--kill-after=5", COMMAND_LIMIT]).args(self.prefix()).args(args);
        cmd
    }

    /// Runs a shell script inside the machine.
    pub fn sh(&self, script: &str) -> Output {
        self.command(&["sh", "-c", script]).stdin(Stdio::null()).output().unwrap()
    }

    /// Runs a shell script inside; panics with its output unless it
    /// succeeds. Returns what it printed.
    pub fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "in the machine: {script}\nfailed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// mfad's main PID inside the machine (0: not running).
    pub fn mfad_pid(&self) -> u32 {
        self.ok("systemctl show -p MainPID --value mfad.service").trim().parse().unwrap_or(0)
    }

    /// Powers the machine off and waits for it (bounded); kills it if it
    /// does not stop.
    pub fn poweroff(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(mut nspawn) = self.nspawn.take() else { return };
        let _ = self
            .command(&["systemctl", "poweroff"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let stopped =
            wait_for(Duration::from_secs(60), || nspawn.try_wait().ok().flatten().is_some());
        if !stopped {
            eprintln!("the machine did not power off in 60 s: killed");
            let group = nix::unistd::Pid::from_raw(-(nspawn.id() as i32));
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.leader),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = nspawn.wait();
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The process called `systemd` among the children and grandchildren of
/// `pid` (nspawn's first child may be a short-lived helper).
fn systemd_below(pid: i32) -> Option<i32> {
    let children = |p: i32| -> Vec<i32> {
        fs::read_to_string(format!("/proc/{p}/task/{p}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .collect()
    };
    let mut todo = children(pid);
    for _ in 0..3 {
        let mut next = Vec::new();
        for child in todo {
            let comm = fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
            if comm.trim() == "systemd" {
                return Some(child);
            }
            next.extend(children(child));
        }
        todo = next;
    }
    None
}
