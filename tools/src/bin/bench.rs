//! pam-mfa's benchmarks, on this machine with real parts: a private bus,
//! the release mfad, real libpam loading the release pam_mfa.so, and
//! google-authenticator-libpam side by side. Prints the numbers and writes
//! them as Markdown to the path given (BENCHMARKS.md). Run with `make bench`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a failed step ends it

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pam_mfa_client::Client;
use pam_mfa_core::totp::code_at;
use pam_mfa_tests::{bin, now, Bus, Mfad, PamService};
use pam_mfa_tools::measure::{
    approvals, cpu_us, enroll, machine, one_auth, rss_kib, secret_of, summary, PARAMS,
};
const GA_MODULE: &str = "/lib/x86_64-linux-gnu/security/pam_google_authenticator.so";

fn b32(bytes: &[u8]) -> String {
    pam_mfa_core::uri::base32(bytes)
}

/// The bus's own limit: `clients` connections calling Peer.Ping on mfad
/// (which does nothing) for 5 seconds. Returns (calls/s, CPU per call of
/// mfad and of dbus-daemon in µs).
fn ping_floor(address: &str, clients: usize, mfad: u32, bus: u32) -> (f64, (f64, f64)) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let started = Instant::now();
    let before = (cpu_us(mfad), cpu_us(bus));
    let calls: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(move || {
                    let rt =
                        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                    rt.block_on(async move {
                        let conn =
                            zbus::connection::Builder::address(address).build().await.unwrap();
                        let peer = zbus::fdo::PeerProxy::builder(&conn)
                            .destination(pam_mfa_protocol::names::BUS_NAME)
                            .path(pam_mfa_protocol::names::OBJECT_PATH)
                            .build()
                            .await
                            .unwrap();
                        let mut n = 0usize;
                        while Instant::now() < deadline {
                            peer.ping().await.unwrap();
                            n += 1;
                        }
                        n
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let secs = started.elapsed().as_secs_f64();
    let per_call = |b: f64, a: f64| (a - b) / calls.max(1) as f64;
    (calls as f64 / secs, (per_call(before.0, cpu_us(mfad)), per_call(before.1, cpu_us(bus))))
}

fn wrong(code: &str) -> String {
    code.bytes().map(|b| char::from(b'0' + (b - b'0' + 5) % 10)).collect()
}

fn main() {
    let out_path = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "BENCHMARKS.md".into()));
    assert!(nix::unistd::getuid().is_root(), "the benchmark needs root (GA's module, pamtester)");
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Measured by `make bench` (release build; a private dbus-daemon with the packaged policy, \
         the release `mfad`, real libpam loading the shipped `pam_mfa.so` (the `module` profile), and Debian's \
         google-authenticator-libpam side by side). Machine: {}. Run on {}.\n",
        machine(),
        pam_mfa_protocol::timefmt::utc(now())
    );

    let bus = Bus::start();
    let mut mfad = Mfad::start(
        &bus,
        &format!(
            "[limits]\nmax_failures = 100\n[push]\napprover_session = \"any\"\ntimeout_seconds = 30\n{}",
            pam_mfa_tests::PUSH_FOR_BENCHES
        ),
    );
    let config = pam_mfa_config::schema::Config::load(&mfad.config).unwrap();
    let address = config.bus.address.as_str().to_string();
    let service_user = config.bus.service_user.as_str().to_string();
    let mut admin = Client::new(&address, &service_user, Duration::from_secs(10)).unwrap();

    // 1. In-process latency, code mode.
    const N: usize = 2000;
    let t = Instant::now();
    let users = enroll(&mut admin, "lat", N);
    println!("enrolled {N} users in {:.1} s", t.elapsed().as_secs_f64());
    let pam = PamService::new(&format!("config={}", mfad.config.display()));
    // The same in Dutch: what choosing a language costs (nothing parsed).
    let pam_nl = PamService::new(&format!("language=nl config={}", mfad.config.display()));
    let (mut right, mut bad, mut bad_nl) = (Vec::new(), Vec::new(), Vec::new());
    for (user, secret) in &users {
        let code = code_at(secret, PARAMS, now() + 30);
        let (rc, d) = one_auth(&pam, user, &code);
        assert_eq!(rc, 0, "{user}: right code refused");
        right.push(d);
        let (rc, d) = one_auth(&pam, user, &wrong(&code));
        assert_eq!(rc, 7, "{user}: wrong code not refused");
        bad.push(d);
        let (rc, d) = one_auth(&pam_nl, user, &wrong(&code));
        assert_eq!(rc, 7, "{user}: wrong code not refused (Dutch)");
        bad_nl.push(d);
    }
    let (r50, r99, rmax) = summary(right);
    let (w50, w99, wmax) = summary(bad);
    let (n50, n99, nmax) = summary(bad_nl);
    let _ =
        writeln!(md, "## 1. pam_authenticate in one process, code mode ({N} + {N} + {N} calls)\n");
    let _ = writeln!(md, "| code | p50 | p99 | max |\n|---|---|---|---|");
    let _ = writeln!(md, "| right | {r50:.0} µs | {r99:.0} µs | {rmax:.0} µs |");
    let _ = writeln!(md, "| wrong | {w50:.0} µs | {w99:.0} µs | {wmax:.0} µs |");
    let _ = writeln!(
        md,
        "| wrong, in Dutch (`language=nl`) | {n50:.0} µs | {n99:.0} µs | {nmax:.0} µs |\n"
    );
    println!(
        "1. right p50 {r50:.0} p99 {r99:.0} max {rmax:.0} µs; wrong p50 {w50:.0} p99 {w99:.0} µs; \
         Dutch wrong p50 {n50:.0} p99 {n99:.0} µs"
    );

    // 2. Side by side with google-authenticator-libpam.
    let ga_dir = tempfile::tempdir().unwrap();
    const M: usize = 1000;
    let ga_users: Vec<(String, Vec<u8>)> = (0..M)
        .map(|i| {
            let user = format!("ga{i}");
            let secret: Vec<u8> =
                (0..20u8).map(|b| b.wrapping_mul(7).wrapping_add(i as u8)).collect();
            let path = ga_dir.path().join(&user);
            std::fs::write(
                &path,
                format!("{}\n\" WINDOW_SIZE 3\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n", b32(&secret)),
            )
            .unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            (user, secret)
        })
        .collect();
    let ga = PamService::named(
        "bench-ga",
        &[&format!(
            "auth required {GA_MODULE} secret={}/${{USER}} user=root allowed_perm=0600",
            ga_dir.path().display()
        )],
    );
    let mfa_users = enroll(&mut admin, "cmp", M);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..M {
        let (user, secret) = &mfa_users[i];
        let (rc, d) = one_auth(&pam, user, &code_at(secret, PARAMS, now() + 30));
        assert_eq!(rc, 0);
        ours.push(d);
        let (user, secret) = &ga_users[i];
        let (rc, d) = one_auth(&ga, user, &code_at(secret, PARAMS, now()));
        assert_eq!(rc, 0, "google-authenticator refused {user}");
        theirs.push(d);
    }
    let (o50, o99, _) = summary(ours);
    let (g50, g99, _) = summary(theirs);
    // Whole processes: pamtester, alternating.
    let mut proc_ours = Vec::new();
    let mut proc_theirs = Vec::new();
    std::fs::write(
        "/etc/pam.d/bench-mfa",
        format!(
            "auth required {} config={}\n",
            pam_mfa_tests::module().display(),
            mfad.config.display()
        ),
    )
    .unwrap();
    std::fs::write(
        "/etc/pam.d/bench-ga",
        format!(
            "auth required {GA_MODULE} secret={}/${{USER}} user=root allowed_perm=0600\n",
            ga_dir.path().display()
        ),
    )
    .unwrap();
    let pamtester = |service: &str, user: &str, code: &str| -> Duration {
        let start = Instant::now();
        let mut child = Command::new("pamtester")
            .args([service, user, "authenticate"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pamtester not found: apt-get install pamtester");
        use std::io::Write;
        let _ = writeln!(child.stdin.take().unwrap(), "{code}");
        assert!(child.wait().unwrap().success(), "pamtester {service} {user} failed");
        start.elapsed()
    };
    let extra = enroll(&mut admin, "proc", 200);
    let ga_extra: Vec<_> = ga_users.iter().take(200).collect();
    for i in 0..200 {
        let (user, secret) = &extra[i];
        proc_ours.push(pamtester("bench-mfa", user, &code_at(secret, PARAMS, now() + 30)));
        let (user, secret) = ga_extra[i];
        // Their next step: the current one was used above.
        proc_theirs.push(pamtester("bench-ga", user, &code_at(secret, PARAMS, now() + 30)));
    }
    let _ = std::fs::remove_file("/etc/pam.d/bench-mfa");
    let _ = std::fs::remove_file("/etc/pam.d/bench-ga");
    let (po50, _, _) = summary(proc_ours);
    let (pg50, _, _) = summary(proc_theirs);
    let _ = writeln!(md, "## 2. Against google-authenticator-libpam (right codes, alternating)\n");
    let _ = writeln!(md, "| harness | pam_mfa p50 | google-authenticator p50 | ratio (goal ≤ 1.1) |\n|---|---|---|---|");
    let _ = writeln!(
        md,
        "| in process, {M} each (p99: {o99:.0} / {g99:.0} µs) | {o50:.0} µs | {g50:.0} µs | {:.2} |",
        o50 / g50
    );
    let _ = writeln!(
        md,
        "| whole `pamtester` processes, 200 each | {:.1} ms | {:.1} ms | {:.2} |\n",
        po50 / 1e3,
        pg50 / 1e3,
        po50 / pg50
    );
    println!(
        "2. in-process ratio {:.2} ({o50:.0} vs {g50:.0} µs); pamtester ratio {:.2}",
        o50 / g50,
        po50 / pg50
    );

    // 3. mfad throughput with 1, 8, 64 clients, distinct users, wrong codes
    // (each attempt is counted and written to disk).
    let _ = writeln!(
        md,
        "## 3. mfad throughput: concurrent clients verifying codes for distinct users\n"
    );
    let _ = writeln!(md, "Each client has its own bus connection and verifies wrong codes for its own users (every attempt is counted and written to disk, atomically). Each row is the median of three 5-second runs by calls/s, each run on 640 freshly enrolled users. The floor is what the bus itself allows: the same clients, for 5 seconds, calling `org.freedesktop.DBus.Peer.Ping` on mfad, a method that does nothing; verification's share of it is what mfad's own work (authorization, store, HMACs, fsync, log) leaves.\n");
    let mut at64 = (0.0f64, 0.0f64, 0.0f64);
    let _ = writeln!(
        md,
        "| clients | calls | calls/s (3 runs) | p50 | p99 | CPU per call: mfad / dbus-daemon / clients | floor: Ping calls/s (CPU per call mfad / dbus-daemon) | share of the floor |\n|---|---|---|---|---|---|---|---|"
    );
    let mut enrolled_for_throughput = 0usize;
    for clients in [1usize, 8, 64] {
        let per = 640 / clients;
        let mut runs = Vec::new();
        for rep in 0..3 {
            let pool = enroll(&mut admin, &format!("tp{clients}x{rep}u"), 640);
            enrolled_for_throughput += 640;
            let deadline = Instant::now() + Duration::from_secs(5);
            let started = Instant::now();
            let me = std::process::id();
            let cpu_before = (cpu_us(mfad.pid()), cpu_us(bus.pid()), cpu_us(me));
            let latencies: Vec<Duration> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..clients)
                    .map(|c| {
                        let users = &pool[c * per..(c + 1) * per];
                        let (address, service_user) = (address.clone(), service_user.clone());
                        scope.spawn(move || {
                            let mut client =
                                Client::new(&address, &service_user, Duration::from_secs(10))
                                    .unwrap();
                            let mut lat = Vec::new();
                            let mut i = 0;
                            while Instant::now() < deadline && i < per * 90 {
                                let (user, _) = &users[i % per];
                                let t = Instant::now();
                                client.verify_code(user, "000000", &HashMap::new()).unwrap();
                                lat.push(t.elapsed());
                                i += 1;
                            }
                            lat
                        })
                    })
                    .collect();
                handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
            });
            let secs = started.elapsed().as_secs_f64();
            let calls = latencies.len();
            let per_call = |before: f64, after: f64| (after - before) / calls as f64;
            let cpu = (
                per_call(cpu_before.0, cpu_us(mfad.pid())),
                per_call(cpu_before.1, cpu_us(bus.pid())),
                per_call(cpu_before.2, cpu_us(me)),
            );
            let (p50, p99, _) = summary(latencies);
            runs.push((calls as f64 / secs, calls, p50, p99, cpu));
        }
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let all: Vec<String> = runs.iter().map(|r| format!("{:.0}", r.0)).collect();
        let (rate, calls, p50, p99, cpu) = runs[1];
        if clients == 64 {
            at64 = (rate, p99 / 1e3, cpu.0 + cpu.1 + cpu.2);
        }
        let (floor, floor_cpu) = ping_floor(&address, clients, mfad.pid(), bus.pid());
        let _ = writeln!(
            md,
            "| {clients} | {calls} | {rate:.0} ({}) | {:.2} ms | {:.2} ms | {:.0} / {:.0} / {:.0} µs | {floor:.0} ({:.0} / {:.0} µs) | {:.0} % |",
            all.join(", "),
            p50 / 1e3,
            p99 / 1e3,
            cpu.0,
            cpu.1,
            cpu.2,
            floor_cpu.0,
            floor_cpu.1,
            rate / floor * 100.0
        );
        println!(
            "3. {clients} clients: {rate:.0} calls/s (runs {}), p99 {:.2} ms, CPU/call mfad {:.0} bus {:.0} clients {:.0} µs",
            all.join(", "),
            p99 / 1e3,
            cpu.0,
            cpu.1,
            cpu.2
        );
    }
    let loaded_rss = rss_kib(mfad.pid());
    let _ = writeln!(md, "\nGoal: ≥ 5,000 calls/s with p99 ≤ 10 ms at 64 clients.\n");

    // 4. Number matching: Approve -> pam_authenticate returns.
    let push = PamService::new(&format!("mode=push config={}", mfad.config.display()));
    let (uri, _, _) = admin.begin("root", true, "").unwrap();
    let root_secret = secret_of(&uri);
    admin.confirm("root", &code_at(&root_secret, PARAMS, now() - 30)).unwrap();
    let push_lat = approvals(&push, &address, "root", 200);
    let (a50, a99, amax) = summary(push_lat);
    let _ = writeln!(md, "## 4. Number matching: from the approver's Approve call to pam_authenticate returning (200 pushes)\n");
    let _ = writeln!(md, "| p50 | p99 | max | goal |\n|---|---|---|---|\n| {:.2} ms | {:.2} ms | {:.2} ms | p99 ≤ 20 ms |\n", a50 / 1e3, a99 / 1e3, amax / 1e3);
    println!("4. approve→return p50 {:.2} p99 {:.2} ms", a50 / 1e3, a99 / 1e3);

    // 5. Resident memory: idle with 10,000 enrolled users; after the load.
    let have = N + M + 200 + enrolled_for_throughput + 1;
    let t = Instant::now();
    enroll(&mut admin, "idle", 10_000 - have);
    println!("enrolled up to 10,000 users in {:.1} s", t.elapsed().as_secs_f64());
    mfad.restart();
    std::thread::sleep(Duration::from_secs(2));
    // A client's connection checked the mfad that was: ask the new one.
    let mut admin = Client::new(&address, &service_user, Duration::from_secs(10)).unwrap();
    let idle_rss = rss_kib(mfad.pid());
    let _ = writeln!(md, "## 5. mfad resident memory\n");
    let _ = writeln!(md, "| state | VmRSS | goal |\n|---|---|---|");
    let _ = writeln!(
        md,
        "| idle, 10,000 users enrolled (fresh start) | {:.1} MiB | ≤ 8 MiB |",
        idle_rss as f64 / 1024.0
    );
    let _ = writeln!(
        md,
        "| at the end of the throughput run | {:.1} MiB | ≤ 32 MiB |\n",
        loaded_rss as f64 / 1024.0
    );
    println!("5. RSS idle {idle_rss} KiB, loaded {loaded_rss} KiB");

    // 6. Module size and a fresh process's dlopen + first authentication.
    let stripped = std::env::temp_dir().join("pam_mfa.stripped.so");
    std::fs::copy(pam_mfa_tests::module(), &stripped).unwrap();
    let _ = Command::new("strip").arg("--strip-unneeded").arg(&stripped).status();
    let ours_size = std::fs::metadata(&stripped).unwrap().len();
    let ga_size = std::fs::metadata(GA_MODULE).unwrap().len();
    let fresh = enroll(&mut admin, "fresh", 30);
    let mut first_ours = Vec::new();
    let mut first_ga = Vec::new();
    // Each run also says the process's peak RSS (VmHWM): against a stack
    // of pam_permit alone, what the module adds to the PAM application
    // (sudo loads it the same way, through the same libpam).
    let mut peaks = (Vec::new(), Vec::new(), Vec::new());
    let harness = |pam: &PamService, user: &str, code: &str| -> (Duration, u64) {
        let start = Instant::now();
        let out = Command::new(bin("pam-harness"))
            .arg("--confdir")
            .arg(pam.dir.path())
            .args(["--service", &pam.name, "--user", user, "--answer", code])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("result: PAM_SUCCESS"), "{text}");
        let peak = text
            .lines()
            .find_map(|l| l.strip_prefix("peak-rss-kib: "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        (start.elapsed(), peak)
    };
    let permit = PamService::stack(&["auth required pam_permit.so"]);
    for i in 0..30 {
        let (user, secret) = &fresh[i];
        let (took, peak) = harness(&pam, user, &code_at(secret, PARAMS, now() + 30));
        first_ours.push(took);
        peaks.0.push(peak);
        let (user, secret) = &ga_users[200 + i];
        let (took, peak) = harness(&ga, user, &code_at(secret, PARAMS, now() + 30));
        first_ga.push(took);
        peaks.1.push(peak);
        peaks.2.push(harness(&permit, "root", "").1);
    }
    let median = |mut v: Vec<u64>| {
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    };
    let (peak_ours, peak_ga, peak_permit) = (median(peaks.0), median(peaks.1), median(peaks.2));
    let (f50, _, _) = summary(first_ours);
    let (fg50, _, _) = summary(first_ga);
    let _ = writeln!(md, "## 6. The module on disk and in a fresh process\n");
    let _ = writeln!(md, "| | pam_mfa.so | pam_google_authenticator.so |\n|---|---|---|");
    let _ = writeln!(
        md,
        "| size, stripped | {:.0} KiB | {:.0} KiB |",
        ours_size as f64 / 1024.0,
        ga_size as f64 / 1024.0
    );
    let _ = writeln!(
        md,
        "| new process: dlopen + first authentication (p50 of 30) | {:.1} ms | {:.1} ms |",
        f50 / 1e3,
        fg50 / 1e3
    );
    let _ = writeln!(
        md,
        "| peak RSS added to the PAM application (VmHWM over pam_permit alone, {peak_permit} KiB; median of 30) | {} KiB | {} KiB |\n",
        peak_ours.saturating_sub(peak_permit),
        peak_ga.saturating_sub(peak_permit)
    );
    println!(
        "6. size {ours_size} vs {ga_size} bytes; fresh process {:.1} vs {:.1} ms",
        f50 / 1e3,
        fg50 / 1e3
    );

    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as f64;
    let _ = writeln!(md, "## Goals\n");
    let _ = writeln!(md, "| goal | measured | met |\n|---|---|---|");
    let met = |ok: bool| if ok { "yes" } else { "no" };
    let _ = writeln!(
        md,
        "| in-process ratio pam_mfa / google-authenticator ≤ 1.1 | {:.2} | {} |",
        o50 / g50,
        met(o50 / g50 <= 1.1)
    );
    let _ = writeln!(
        md,
        "| pamtester ratio ≤ 1.1 | {:.2} | {} |",
        po50 / pg50,
        met(po50 / pg50 <= 1.1)
    );
    let _ = writeln!(
        md,
        "| ≥ 5,000 calls/s at 64 clients (median of 3) | {:.0} | {} |",
        at64.0,
        met(at64.0 >= 5000.0)
    );
    let _ =
        writeln!(md, "| p99 ≤ 10 ms at 64 clients | {:.1} ms | {} |", at64.1, met(at64.1 <= 10.0));
    let _ = writeln!(
        md,
        "| Approve → return p99 ≤ 20 ms | {:.2} ms | {} |",
        a99 / 1e3,
        met(a99 / 1e3 <= 20.0)
    );
    let _ = writeln!(
        md,
        "| mfad idle ≤ 8 MiB with 10,000 users | {:.1} MiB | {} |",
        idle_rss as f64 / 1024.0,
        met(idle_rss <= 8 * 1024)
    );
    let _ = writeln!(
        md,
        "| mfad ≤ 32 MiB after the load | {:.1} MiB | {} |",
        loaded_rss as f64 / 1024.0,
        met(loaded_rss <= 32 * 1024)
    );
    let _ = writeln!(
        md,
        "| pam_mfa.so ≤ 1 MiB stripped | {:.0} KiB | {} |",
        ours_size as f64 / 1024.0,
        met(ours_size <= 1024 * 1024)
    );
    let added = peak_ours.saturating_sub(peak_permit);
    let _ = writeln!(
        md,
        "| peak RSS added to a PAM application ≤ 1 MiB | {added} KiB | {} |\n",
        met(added <= 1024)
    );
    let ceiling = cores * 1e6 / at64.2;
    let _ = writeln!(
        md,
        "## What bounds it\n\n\
         - **Throughput and p99 at 64 clients.** One verification costs {:.0} µs of CPU in all \
           (mfad, dbus-daemon and the client together, measured above), so {cores:.0} cores \
           cannot do more than about {ceiling:.0} calls/s. 64 clients that each wait for their \
           answer keep 64 calls in flight, and by Little's law the mean wait is then \
           64 / throughput = {:.1} ms before any variance: a p99 of 10 ms at 64 clients needs \
           more than 6,400 calls/s, beyond this machine's CPU for this work. What was fixed \
           on the way, found with `strace -c -f` on mfad and the CPU split above: an NSS \
           lookup of the target user on every root call (about 30 system calls; root needs \
           none), a bus round trip per call for the caller's uid (now asked once per \
           connection), the directory fsync after a counted failure (a failure is still \
           written atomically and completely; an accepted code still waits for both fsyncs), \
           and an unbounded blocking pool (64 threads contending for 2 cores; now 4). Before \
           those fixes 64 clients got 2,185 calls/s at 452 µs of mfad CPU per call; after them, \
           runs on this machine gave 4,100 to 5,400 calls/s at about 190 µs, and this run \
           {:.0} calls/s. The spread between whole runs (some at 2,500 calls/s with mfad \
           CPU per call near 490 µs, with no change of code) is larger than the spread within \
           a run: the disk's writeback of thousands of small store files and the virtual \
           machine's CPU are not steady here, so the 5,000 calls/s goal is met in some runs \
           and not in others.\n\
         - **What is left per call** is the work the design asks for: two messages through \
           dbus-daemon (the policy fence), authorization, reading and parsing the user's store \
           file, three HMACs, and writing the file back through a temp file with fsync and \
           rename, plus one log line.\n\
         - **Against google-authenticator-libpam** each pam_mfa authentication also opens a \
           bus connection (SASL, Hello), checks whom it talks to (the socket's peer, an NSS \
           lookup of the service user and one GetConnectionCredentials call: DESIGN.md rule 8) \
           and makes two calls (IsEnrolled, VerifyCode, whose reply also carries the session \
           token); google-authenticator reads and rewrites a file in the calling process. Both \
           end in a synchronous write. Measured here: 1.02 before these checks; 1.98 with them \
           as first written (GetNameOwner, GetConnectionUnixUser and a separate GrantSession \
           call); 1.44 with one call for the owner's uid and the token in VerifyCode's reply. \
           A module that kept its connection between authentications would pay the check \
           once, but a PAM module must leave nothing behind when it returns.\n\
         - **The module's size and memory** (issue 14; before: release 0.1 as built with the \
           workspace, after: the `module` profile, built alone): stripped 2459 KiB before, \
           2105 KiB after; peak RSS added to a PAM process 2980 KiB before, 2484 KiB after \
           (google-authenticator: 42 KiB, about 140 KiB). What went: D-Bus server code \
           (zbus's `service` feature, which only mfad asks for) and tokio's macros and sync \
           parts, by building the module alone; speed for size (`opt-level = \"z\"`). What \
           stays is the client itself: zbus (about 470 KiB of code: handshake, \
           (de)serialization, proxies, match rules), tokio's current-thread runtime \
           (150 KiB), TOML and serde for the config (150 KiB), std's backtrace printer \
           (80 KiB), and their unwind tables. zbus's own executor instead of tokio is no \
           way down: it is async-io, whose reactor runs in a thread of its own that outlives \
           the call, and the module must leave no thread behind (DESIGN.md rule 6). What \
           would reach 1 MiB: a client of the five calls the module makes written for them \
           (SASL EXTERNAL, Hello, method calls marshalled by hand over a blocking Unix \
           socket with a deadline), no async runtime, no zbus: an estimated 200 to 300 KiB, \
           at the price of a second D-Bus implementation to keep and fuzz.\n\
         - **mfad's CPU per verification before and after issue 14's redesign** (the core \
           with the storage trait, typed errors), in µs at 1 / 8 / 64 clients, from runs of \
           this program on this machine: before 327 / 292 / 269 and 830 / 417 / 405; after \
           485 / 386 / 295, 809 / 315 / 262 and 692 / 297 / 309. Runs of the same code differ \
           by up to 2.5 times here (the disk and the virtual CPU), more than before differs \
           from after; the code path per call is the same: one read, the same HMACs, one \
           write.\n",
        at64.2,
        64.0 / at64.0 * 1e3,
        at64.0,
    );
    // The fleet's sections (pam-mfa-fleet-bench, run first by bench.sh).
    match std::fs::read_to_string("target/bench-fleet.md") {
        Ok(fleet) => md.push_str(&fleet),
        Err(e) => {
            let _ = writeln!(
                md,
                "## 7. Fleet\n\nNot measured in this run (target/bench-fleet.md: {e})."
            );
        }
    }
    // The phone approver's (pam-mfa-phone-bench, run first by bench.sh).
    match std::fs::read_to_string("target/bench-phone.md") {
        Ok(phone) => md.push_str(&phone),
        Err(e) => {
            let _ = writeln!(
                md,
                "## 9. The phone\n\nNot measured in this run (target/bench-phone.md: {e})."
            );
        }
    }
    let _ = writeln!(md);
    let _ = writeln!(md, "## Rerun\n\n```sh\nmake bench    # = bash scripts/bench.sh: release build, then this program, as root\n```");
    std::fs::write(&out_path, md).unwrap();
    println!("wrote {}", out_path.display());
    drop(mfad);
    drop(bus);
}
