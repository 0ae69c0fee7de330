//! The phone approver of a fleet: mfa-web on the fleet's PostgreSQL with
//! a role of its own (`mfa-db add-web`), no mfad of its own; two hosts,
//! each a real mfad on the database behind its private bus. A phone is
//! added from one host's mfa-enroll and approves, live, a real libpam
//! request of another host; the database keeps each signature, which
//! checks again outside mfa-web; the web role reads no secret and answers
//! nothing without a phone.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use pam_mfa_core::passkey::{self, Assertion, Phone, Relying};
use pam_mfa_tests::browser::Browser;
use pam_mfa_tests::fleet::{self, audit, mfa_db};
use pam_mfa_tests::phone::{
    add_phone_at, answer, api, pending_id, state, FleetWeb, Site, ALICE, EVIL, HOST,
};
use pam_mfa_tests::postgres::Postgres;
use pam_mfa_tests::system::{ensure_user, require_root};
use pam_mfa_tests::PamService;

/// The web approver's role in these tests.
const WEB_ROLE: &str = "phones";

/// `sql` run as the web approver's role: what it printed, or its error.
fn as_web(pg: &Postgres, sql: &str) -> Result<String, String> {
    let out = pg.psql_as("postgres", "mfa", &format!("SET ROLE {WEB_ROLE};\n{sql}"));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    if out.status.success() {
        Ok(said)
    } else {
        Err(err)
    }
}

#[test]
fn a_phone_on_the_fleets_database_approves_a_request_of_another_host() {
    require_root();
    ensure_user(ALICE, false);
    let site = Site::with_test_ca();
    let pg = Postgres::start_tls();
    fleet::set_up(&pg);
    let keys = format!("[push]\nrequest_burst = 20\n[web]\npublic_url = \"{}\"\n", site.origin);
    let host_a = fleet::host(&pg, "phone_a", &[pg.port], &keys);
    let host_b = fleet::host(&pg, "phone_b", &[pg.port], &keys);
    let said = mfa_db(&pg, &["add-web", WEB_ROLE]);
    assert!(said.contains("phones is a web approver's role"), "{said}");
    assert!(said.contains("[web]\nconnection = "), "{said}");
    let web = FleetWeb::start(&site, &pg, WEB_ROLE);
    // A web approver on a host's bus would see none of the other hosts'
    // links and answers: that host's mfad refuses it, saying what to run.
    let on_bus = std::process::Command::new("dbus-send")
        .args([&format!("--bus={}", host_a.bus.address), "--print-reply", "--reply-timeout=5000"])
        .args(["--dest=io.github.pam_mfa", "/io/github/pam_mfa", "io.github.pam_mfa.Web1.Register"])
        .output()
        .unwrap();
    let refused = String::from_utf8_lossy(&on_bus.stderr);
    assert!(!on_bus.status.success(), "{refused}");
    assert!(refused.contains("AccessDenied") && refused.contains("[web] connection"), "{refused}");
    assert!(web.log().contains("working on the fleet's database"), "{}", web.log());
    host_a.mfad.enroll_with_recovery(ALICE);

    // Added from host B's mfa-enroll: B opens the link in the database,
    // mfa-web registers the phone there, B shows the test number, the
    // phone answers it on the page, and B says done once it is kept.
    let browser = Browser::start(&site.ca_cert(), &[HOST, EVIL], "en-US");
    let tab = browser.open("about:blank");
    tab.add_authenticator();
    add_phone_at(&host_b.mfad.config, &site.origin, &tab, ALICE, "Fleet phone");
    let listed = host_a.mfad.enroll_cmd(&["--phones", "--json", "--user", ALICE]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed["phones"][0]["name"], "Fleet phone", "host A sees it: {listed}");

    // A real libpam request on host A reaches the page live (NOTIFY, no
    // reload) and is approved there.
    tab.goto(&format!("{}/", site.origin));
    state(&tab, "list");
    api(&tab);
    let pam_a = PamService::new(&format!("mode=push config={}", host_a.mfad.config.display()));
    let request = pam_a.start_push(ALICE, None);
    assert!(request.shown().contains("approve on your phone by typing"), "{}", request.shown());
    let number = request.number;
    assert_eq!(answer(&tab, number), "approved");
    let run = request.finish();
    assert_eq!(run.result(), "PAM_SUCCESS", "{}", run.text);

    // The database kept the signature with each answer (the test, asked
    // by B; the approval, asked by A), and it checks again here, with the
    // phone's public key, over the request the database kept.
    let rows = pg.psql(
        "mfa",
        &format!(
            "SELECT requested_by, outcome, web FROM mfa.phone_answer WHERE username = '{ALICE}' ORDER BY id"
        ),
    );
    assert_eq!(rows, "phone_b|approved|phones\nphone_a|approved|phones\n");
    let mut db = pg.client("mfa");
    let kept = db
        .query_one(
            "SELECT a.id, a.signed_challenge, a.credential_id, a.authenticator_data, a.client_data, \
             a.signature, p.public_key, a.context::text, a.challenge_id FROM mfa.phone_answer a \
             JOIN mfa.phone p USING (credential_id) WHERE a.requested_by = 'phone_a'",
            &[],
        )
        .unwrap();
    let signed = Assertion::new(kept.get(2), kept.get(3), kept.get(4), kept.get(5)).unwrap();
    let phone = Phone {
        credential_id: kept.get(2),
        public_key: kept.get(6),
        name: String::new(),
        added_at: 0,
        sign_count: 0,
        last_used: 0,
    };
    let context: std::collections::HashMap<String, String> =
        serde_json::from_str(&kept.get::<_, String>(7)).unwrap();
    let id: String = kept.get(8);
    let relying = Relying { origin: site.origin.clone(), rp_id: HOST.into() };
    let challenge: Vec<u8> = kept.get(1);
    assert_eq!(challenge, passkey::approval_challenge(&id, &context, number));
    assert!(passkey::verify(&phone, &signed, &challenge, &relying).is_ok());
    let other = passkey::approval_challenge(&id, &context, number ^ 1);
    assert!(passkey::verify(&phone, &signed, &other, &relying).is_err(), "bound to the number");
    let results: Vec<String> =
        audit(&pg, ALICE).into_iter().map(|(h, _, r)| h + " " + &r).collect();
    assert!(results.contains(&"phones phone-approved".to_string()), "{results:?}");

    // The next request (host B's), answered with a wrong number: it ends,
    // and the same signature sent again is not taken twice.
    let pam_b = PamService::new(&format!("mode=push config={}", host_b.mfad.config.display()));
    let request_b = pam_b.start_push(ALICE, None);
    let id_b = pending_id(&tab);
    let wrong = if request_b.number == 99 { 98 } else { request_b.number + 1 };
    let replay = tab.eval(&format!(
        "(async () => {{ const r = await __t.approve('{id_b}', {wrong}); window.__old = r.credential; \
           const again = await __t.post('/api/approve/finish', {{id: '{id_b}', number: {wrong}, credential: r.credential}}); \
           return [r.body.outcome, again.status]; }})()"
    ));
    assert_eq!(replay, serde_json::json!(["wrong-number", 404]));
    let run = request_b.finish();
    assert_eq!(run.result(), "PAM_AUTH_ERR", "{}", run.text);

    // That signature moved to host A's next request: refused for its
    // challenge (it was made over B's request), and the request waits.
    let request_c = pam_a.start_push(ALICE, None);
    let id_c = pending_id(&tab);
    let moved = tab.eval(&format!(
        "__t.post('/api/approve/finish', {{id: '{id_c}', number: {}, credential: window.__old}}).then(r => [r.status, r.body.message])",
        request_c.number
    ));
    assert_eq!(moved[0], 403, "{moved}");
    assert!(moved[1].as_str().unwrap().contains("wrong-challenge"), "{moved}");
    assert!(web.log().contains("reason=\"wrong-challenge\""), "{}", web.log());
    assert_eq!(pending_id(&tab), id_c, "the request still waits");
    assert_eq!(answer(&tab, request_c.number), "approved");
    assert_eq!(request_c.finish().result(), "PAM_SUCCESS");

    // The web role: no secret, no host's function, no answer without a
    // phone of that user, no other user's request.
    for sql in [
        "SELECT secret FROM mfa.account",
        "SELECT * FROM mfa.phone",
        "SELECT * FROM mfa.challenge",
        "SELECT * FROM mfa.answer_challenge('x', 'y', 1, NULL, true, 'any')",
        "SELECT * FROM mfa.verify('u', 's', 'r', 't', '123456', '', '', 0, 0, 0, 0, 0, '', '')",
        "SELECT * FROM mfa.open_link('\\x00', 'u', 'c', 60)",
    ] {
        let refused = as_web(&pg, sql).expect_err(sql);
        assert!(refused.contains("permission denied"), "{sql}: {refused}");
    }
    let request_d = pam_b.start_push(ALICE, None);
    let id_d = pending_id(&tab);
    let forged = as_web(
        &pg,
        &format!(
            "SELECT refusal FROM mfa.phone_answer('{id_d}', '{ALICE}', {}, '\\x0102', 99, '\\x00', '\\x00', '\\x00', '\\x00')",
            request_d.number
        ),
    )
    .unwrap();
    assert_eq!(forged.trim(), "unknown-phone", "no phone of the user: {forged}");
    let other_user = as_web(
        &pg,
        &format!(
            "SELECT refusal FROM mfa.phone_answer('{id_d}', 'someone-else', {}, '\\x0102', 99, '\\x00', '\\x00', '\\x00', '\\x00')",
            request_d.number
        ),
    )
    .unwrap();
    assert_eq!(other_user.trim(), "unknown", "another user's request: {other_user}");
    // The phone's own earlier signature, straight to the database: its
    // counter did not advance, so the database refuses it too.
    let credential: Vec<u8> = kept.get(2);
    let hex: String = credential.iter().map(|b| format!("{b:02x}")).collect();
    let replayed = as_web(
        &pg,
        &format!(
            "SELECT refusal FROM mfa.phone_answer('{id_d}', '{ALICE}', {}, '\\x{hex}', 1, '\\x00', '\\x00', '\\x00', '\\x00')",
            request_d.number
        ),
    )
    .unwrap();
    assert_eq!(replayed.trim(), "counter-went-back", "{replayed}");

    assert_eq!(pending_id(&tab), id_d, "still waiting after all three");

    // A web approver that lies: its role approves with the right number
    // (a lucky guess) and a signature it made up, the counter advanced.
    // The database takes it; host B, which made the request, checks the
    // signature again and lets nobody in.
    let lied = as_web(
        &pg,
        &format!(
            "SELECT outcome FROM mfa.phone_answer('{id_d}', '{ALICE}', {}, '\\x{hex}', 1000000, '\\x00', '\\x00', '\\x00', '\\x00')",
            request_d.number
        ),
    )
    .unwrap();
    assert_eq!(lied.trim(), "approved", "{lied}");
    let run = request_d.finish();
    assert_eq!(run.result(), "PAM_AUTH_ERR", "{}", run.text);
    let log = host_b.mfad.log_text();
    assert!(log.contains("phone-approval-refused"), "{log}");
    assert!(log.contains("reason=\"malformed\""), "{log}");

    // "This was not me" on the page: denied, and push blocked fleet-wide.
    let request_e = pam_b.start_push(ALICE, None);
    let id_e = pending_id(&tab);
    let reported =
        tab.eval(&format!("__t.post('/api/report', {{id: '{id_e}'}}).then(r => r.body.outcome)"));
    assert_eq!(reported, "denied");
    assert_eq!(request_e.finish().result(), "PAM_AUTH_ERR");
    let blocked = pg.psql(
        "mfa",
        &format!("SELECT push_blocked_since > 0 FROM mfa.account WHERE username = '{ALICE}'"),
    );
    assert_eq!(blocked.trim(), "t");
    assert!(web.log().contains("suspicious-request-reported"), "{}", web.log());

    // One passkey on two links (a web approver that lies, or two tabs):
    // the second registration is refused, so no test can swap its key in.
    let hash = |b: u8| format!("{b:02x}").repeat(32);
    let key = format!("04{}", "ab".repeat(64));
    let open = |link: u8| {
        let sql = format!("SELECT mfa.open_link('\\x{}', '{ALICE}', ':test', 60)", hash(link));
        assert_eq!(pg.psql("mfa", &sql).trim(), "t");
    };
    let register = |link: u8| {
        as_web(
            &pg,
            &format!(
                "SELECT coalesce(refusal, 'taken') FROM mfa.link_phone('\\x{}', '\\x0909', '\\x{key}', 'twice', 60)",
                hash(link)
            ),
        )
        .unwrap()
    };
    open(0x11);
    assert_eq!(register(0x11).trim(), "taken");
    open(0x22);
    assert_eq!(register(0x22).trim(), "registered");
    let null = as_web(&pg, "SELECT * FROM mfa.link_phone(NULL, NULL, NULL, NULL, NULL)");
    assert!(null.unwrap_err().contains("every argument is needed"));
    assert!(!web.log().contains("panicked"), "{}", web.log());
}
