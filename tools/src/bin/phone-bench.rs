//! The phone approver's benchmark (issue 16), on this machine with real
//! parts: mfad and mfa-web (release builds) on a private bus, headless
//! Chromium with a virtual passkey, real libpam in pam-harness asking.
//! Measures, over 100 approvals, the time from the click on "Approve"
//! (the page then asks the passkey to sign the request and posts it) to
//! pam_authenticate returning, on one host and in a fleet (mfa-web on
//! PostgreSQL, the request made by another host's mfad); and what the
//! page transfers on its first load. Writes Markdown to the path given;
//! `make bench` puts it into BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a failed step ends it

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use pam_mfa_tests::browser::{Browser, Tab};
use pam_mfa_tests::phone::{
    add_phone, add_phone_at, start_with, state, FleetWeb, Site, ALICE, HOST, SHORT,
};
use pam_mfa_tests::postgres::Postgres;
use pam_mfa_tests::{fleet, PamService};
use pam_mfa_tools::measure::{machine, summary};

const APPROVALS: usize = 100;

fn main() {
    let out = std::env::args().nth(1).unwrap_or_else(|| "target/bench-phone.md".into());
    let w = start_with(&format!("timeout_seconds = 30\n{}", pam_mfa_tests::PUSH_FOR_BENCHES));
    w.mfad.enroll_with_recovery(ALICE);
    let browser = Browser::start(&w.ca_cert, &[HOST], "en-US");
    let tab = browser.open("about:blank");
    tab.add_authenticator();
    add_phone(&w, &tab, ALICE, "Bench phone");

    // The first load of a fresh profile: everything the page fetches.
    let fresh = Browser::start(&w.ca_cert, &[HOST], "en-US");
    let first = fresh.open(&format!("{}/", w.origin));
    state(&first, "signin");
    let weight = first.eval(
        "(() => { const nav = performance.getEntriesByType('navigation')[0];
                  const res = performance.getEntriesByType('resource');
                  return {page: nav.transferSize, files: res.map(r => [r.name, r.transferSize]),
                          total: nav.transferSize + res.reduce((n, r) => n + r.transferSize, 0)}; })()",
    );
    drop(first);
    drop(fresh);

    let pam = PamService::new(&format!("mode=push config={}", w.mfad.config.display()));
    let started = Instant::now();
    let (p50, p99, max) = approvals(&tab, &w.origin, &pam);
    let one_host = started.elapsed().as_secs_f64();
    drop(tab);
    drop(browser);
    drop(w);

    // A fleet: mfa-web on the database (fsync on), the request made by a
    // host's mfad; the page hears of it by LISTEN/NOTIFY, the host by the
    // answer's NOTIFY, and checks the kept signature again.
    let site = Site::with_test_ca();
    let pg = Postgres::start_tls_durable();
    fleet::set_up(&pg);
    let keys = format!(
        "[push]\ntimeout_seconds = 30\n{}[web]\npublic_url = \"{}\"\n",
        pam_mfa_tests::PUSH_FOR_BENCHES,
        site.origin
    );
    let host = fleet::host(&pg, "bench_host", &[pg.port], &keys);
    fleet::mfa_db(&pg, &["add-web", "bench_web"]);
    let _web = FleetWeb::start(&site, &pg, "bench_web");
    host.mfad.enroll_with_recovery(ALICE);
    let browser = Browser::start(&site.ca_cert(), &[HOST], "en-US");
    let tab = browser.open("about:blank");
    tab.add_authenticator();
    add_phone_at(&host.mfad.config, &site.origin, &tab, ALICE, "Bench phone");
    let pam = PamService::new(&format!("mode=push config={}", host.mfad.config.display()));
    let started = Instant::now();
    let (f50, f99, fmax) = approvals(&tab, &site.origin, &pam);
    let in_fleet = started.elapsed().as_secs_f64();

    let mut md = String::new();
    let _ = writeln!(md, "## 9. The phone: from the Approve click to pam_authenticate returning ({APPROVALS} approvals)\n");
    let _ = writeln!(
        md,
        "Release mfad and mfa-web, headless Chromium 156 with a virtual passkey \
         (no network between them: the phone's radio is not in it), pam-harness asking in mode=push. \
         The interval is the click, the page's approve/begin, the passkey signing the request, \
         approve/finish, the signature checked and the request ended, and the module's \
         wait returning. One host: mfad on a private bus checks the signature. Fleet: mfa-web \
         on PostgreSQL 15 (TLS, fsync on, this machine) checks it and answers in the database, \
         the host's mfad wakes by NOTIFY and checks the kept signature again. {}; {:.0} s and {:.0} s.\n",
        machine(),
        one_host,
        in_fleet
    );
    let _ = writeln!(md, "| | p50 | p99 | max | goal (p99) |\n|---|---|---|---|---|");
    let _ = writeln!(md, "| one host | {p50:.1} ms | {p99:.1} ms | {max:.1} ms | 100 ms |");
    let _ = writeln!(md, "| fleet | {f50:.1} ms | {f99:.1} ms | {fmax:.1} ms | 100 ms |\n");
    let _ = writeln!(
        md,
        "The page's first load, as the browser counts it (transferSize, no compression):\n"
    );
    let _ = writeln!(md, "| file | bytes |\n|---|---|");
    let _ = writeln!(md, "| / (index.html) | {} |", weight["page"]);
    for file in weight["files"].as_array().unwrap() {
        let name = file[0].as_str().unwrap().rsplit('/').next().unwrap_or("");
        let _ = writeln!(md, "| {name} | {} |", file[1]);
    }
    let total = weight["total"].as_f64().unwrap_or(0.0);
    let _ = writeln!(md, "| **total** | **{:.1} KB** (goal: 100 KB) |\n", total / 1024.0);
    std::fs::write(&out, &md).unwrap();
    print!("{md}");
}

/// p50, p99 and max in ms of [`APPROVALS`] approvals on the page in `tab`
/// (signed in at `origin`) of requests `pam` makes.
fn approvals(tab: &Tab, origin: &str, pam: &PamService) -> (f64, f64, f64) {
    tab.goto(&format!("{origin}/"));
    state(tab, "list");
    let mut latencies: Vec<Duration> = Vec::new();
    for _ in 0..APPROVALS {
        let mut request = pam.start_push(ALICE, None);
        let waiting = "document.querySelector('.request:not([data-outcome])')";
        tab.wait_for(waiting, SHORT, "a request card");
        let id = tab.eval(&format!("{waiting}.dataset.id"));
        let card = format!(".request[data-id='{}']", id.as_str().unwrap());
        tab.fill(&format!("{card} .number"), &request.number.to_string());
        let clicked = Instant::now();
        tab.click(&format!("{card} .approve"));
        let Some((line, returned)) = request.result_line() else {
            let outcome = tab.eval(&format!(
                "document.querySelector(\"{card}\").dataset.outcome || document.body.innerText"
            ));
            panic!("pam_authenticate did not return; the page says {outcome}\n{}", request.shown());
        };
        assert!(line.contains("PAM_SUCCESS"), "{line}");
        latencies.push(returned - clicked);
        // A fresh page for the next one: no ended cards in the way.
        tab.goto(&format!("{origin}/"));
        state(tab, "list");
    }
    let (p50, p99, max) = summary(latencies);
    (p50 / 1e3, p99 / 1e3, max / 1e3)
}
