//! What pam-mfa's benchmarks share: percentiles, CPU time and memory of
//! processes, enrolling users through the bus, one in-process login.
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmarks: a failed step ends them

pub mod measure {
    use std::collections::VecDeque;
    use std::ffi::CString;
    use std::time::{Duration, Instant};

    use pam_mfa_client::Client;
    use pam_mfa_config::schema::Algorithm;
    use pam_mfa_core::totp::{code_at, Params};
    use pam_mfa_tests::libpam::{authenticate, Conversation};
    use pam_mfa_tests::{now, PamService};

    pub const PARAMS: Params = Params { algorithm: Algorithm::Sha1, digits: 6, period: 30 };

    pub fn secret_of(uri: &str) -> Vec<u8> {
        let b32 = uri.split("secret=").nth(1).unwrap().split('&').next().unwrap();
        totp_secret(b32)
    }

    pub fn totp_secret(b32: &str) -> Vec<u8> {
        // RFC 4648 base32 decode (upper case, no padding).
        let mut out = Vec::new();
        let (mut buffer, mut bits) = (0u32, 0u32);
        for c in b32.bytes() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'2'..=b'7' => c - b'2' + 26,
                _ => continue,
            };
            buffer = (buffer << 5) | u32::from(v);
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                out.push((buffer >> bits) as u8);
            }
        }
        out
    }

    /// Percentile of sorted durations, in microseconds.
    pub fn pct(sorted: &[Duration], p: f64) -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[i].as_secs_f64() * 1e6
    }

    pub fn summary(mut d: Vec<Duration>) -> (f64, f64, f64) {
        d.sort();
        (pct(&d, 0.5), pct(&d, 0.99), pct(&d, 1.0))
    }

    /// Enrolls `count` users `{prefix}{i}` through the bus (Begin, then Confirm
    /// with the previous step's code); returns their secrets.
    pub fn enroll(client: &mut Client, prefix: &str, count: usize) -> Vec<(String, Vec<u8>)> {
        (0..count)
            .map(|i| {
                let user = format!("{prefix}{i}");
                let (uri, _, _) = client.begin(&user, true, "").unwrap();
                let secret = secret_of(&uri);
                let mut confirmed = false;
                for _ in 0..3 {
                    let code = code_at(&secret, PARAMS, now() - 30);
                    if client.confirm(&user, &code).is_ok() {
                        confirmed = true;
                        break;
                    }
                }
                assert!(confirmed, "cannot enroll {user}");
                (user, secret)
            })
            .collect()
    }

    pub fn rss_kib(pid: u32) -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// CPU time (user + system) a process has used, in microseconds.
    pub fn cpu_us(pid: u32) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after_comm = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<f64>().ok()))
            .sum();
        let hz =
            nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100);
        ticks * 1e6 / hz as f64
    }

    pub fn one_auth(pam: &PamService, user: &str, code: &str) -> (i32, Duration) {
        let conv = Conversation::new(VecDeque::from([CString::new(code).unwrap()]), false);
        let dir = CString::new(pam.dir.path().to_str().unwrap()).unwrap();
        let (svc, usr) = (CString::new(pam.name.as_str()).unwrap(), CString::new(user).unwrap());
        let start = Instant::now();
        let rc = authenticate(&svc, &usr, &dir, &conv, None, None, None).unwrap();
        (rc, start.elapsed())
    }

    pub fn machine() -> String {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_default();
        let mem = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        format!(
            "{cores} cores ({cpu}), {}",
            mem.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
        )
    }

    /// Number matching `count` times: `user` asks through `push` (mode=push,
    /// in this process), and an approver on the bus at `approver_address`
    /// (root, any session) approves each request; for each, the time from
    /// the Approve call to pam_authenticate returning.
    pub fn approvals(
        push: &PamService,
        approver_address: &str,
        user: &str,
        count: usize,
    ) -> Vec<Duration> {
        use pam_mfa_client::ApproverProxy;
        use std::sync::mpsc;
        let (tx, rx) = mpsc::channel::<u32>();
        let (done_tx, done_rx) = mpsc::channel::<Instant>();
        let approver_address = approver_address.to_string();
        let approver = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let conn = zbus::connection::Builder::address(approver_address.as_str())
                    .build()
                    .await
                    .unwrap();
                let proxy = ApproverProxy::new(&conn).await.unwrap();
                while let Ok(number) = rx.recv() {
                    let pending = proxy.pending().await.unwrap();
                    let (id, _, _) = pending.first().unwrap();
                    let t = Instant::now();
                    proxy.approve(id, number).await.unwrap();
                    done_tx.send(t).unwrap();
                }
            })
        });
        let mut latencies = Vec::new();
        for _ in 0..count {
            let tx = tx.clone();
            let mut conv = Conversation::new(VecDeque::new(), false);
            conv.on_message = Some(Box::new(move |text: &str| {
                if let Some(n) = pam_mfa_tests::number_in(text) {
                    let _ = tx.send(n);
                }
            }));
            let dir = CString::new(push.dir.path().to_str().unwrap()).unwrap();
            let (svc, usr) =
                (CString::new(push.name.as_str()).unwrap(), CString::new(user).unwrap());
            // The module shows the number and waits; the approver thread answers.
            let rc = authenticate(&svc, &usr, &dir, &conv, None, None, None).unwrap();
            let returned = Instant::now();
            assert_eq!(rc, 0, "push not approved");
            let approved_at = done_rx.recv().unwrap();
            latencies.push(returned.duration_since(approved_at));
        }
        drop(tx);
        approver.join().unwrap();
        latencies
    }
}
