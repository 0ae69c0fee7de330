//! The phone approver's benchmark (issue 16), on this machine with real
//! parts: mfad and mfa-web (release builds) on a private bus, headless
//! Chromium with a virtual passkey, real libpam in pam-harness asking.
//! Measures, over 100 approvals, the time from the click on "Approve"
//! (the page then asks the passkey to sign the request and posts it) to
//! pam_authenticate returning; and what the page transfers on its first
//! load. Writes Markdown to the path given; `make bench` puts it into
//! BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a failed step ends it

use std::fmt::Write as _;
use std::time::Instant;

use pam_mfa_tests::browser::Browser;
use pam_mfa_tests::phone::{add_phone, start_with, state, ALICE, HOST, SHORT};
use pam_mfa_tests::PamService;
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

    tab.goto(&format!("{}/", w.origin));
    state(&tab, "list");
    let pam = PamService::new(&format!("mode=push config={}", w.mfad.config.display()));
    let mut latencies = Vec::new();
    let started = Instant::now();
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
        tab.goto(&format!("{}/", w.origin));
        state(&tab, "list");
    }
    let (p50, p99, max) = summary(latencies);
    let (p50, p99, max) = (p50 / 1e3, p99 / 1e3, max / 1e3);

    let mut md = String::new();
    let _ = writeln!(md, "## 9. The phone: from the Approve click to pam_authenticate returning ({APPROVALS} approvals)\n");
    let _ = writeln!(
        md,
        "Release mfad and mfa-web on a private bus, headless Chromium 156 with a virtual passkey \
         (no network between them: the phone's radio is not in it), pam-harness asking in mode=push. \
         The interval is the click, the page's approve/begin, the passkey signing the request, \
         approve/finish, mfad checking the signature and ending the request, and the module's \
         wait returning. {} in {:.0} s.\n",
        machine(),
        started.elapsed().as_secs_f64()
    );
    let _ = writeln!(md, "| p50 | p99 | max | goal (p99) |\n|---|---|---|---|");
    let _ = writeln!(md, "| {p50:.1} ms | {p99:.1} ms | {max:.1} ms | 100 ms |\n");
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
