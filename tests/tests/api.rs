//! The D-Bus API is what `protocol/dbus/*.xml` says, and every method in it
//! has a row in the authorization table (DESIGN.md rule 2). The running
//! mfad's introspection (a private bus, real mfad) is compared with the
//! committed files, method by method and argument by argument; the table
//! (`daemon/src/bus.rs`) is walked against their methods and their
//! `io.github.pam_mfa.Authorization` annotations; the error names they list
//! are mfad's.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::collections::BTreeMap;

use pam_mfa_client::MfaError;
use pam_mfa_daemon::bus::{rule, Method, METHODS};
use pam_mfa_tests::{workspace, wrong_code, Bus, Mfad, Otpauth};
use zbus_xml::{ArgDirection, Node};

/// One interface as text that compares: each method and signal with its
/// arguments (name, type, direction), in order; annotations and
/// documentation left out.
fn members(node: &Node<'_>, interface: &str) -> BTreeMap<String, Vec<String>> {
    let iface = node
        .interfaces()
        .iter()
        .find(|i| i.name().as_str() == interface)
        .unwrap_or_else(|| panic!("no interface {interface}"));
    let arg = |a: &zbus_xml::Arg<'_>| {
        let direction = match a.direction() {
            Some(ArgDirection::In) => "in",
            Some(ArgDirection::Out) => "out",
            None => "",
        };
        format!("{} {} {direction}", a.name().unwrap_or("-"), a.ty())
    };
    let mut out = BTreeMap::new();
    for m in iface.methods() {
        out.insert(format!("method {}", m.name()), m.args().iter().map(arg).collect());
    }
    for s in iface.signals() {
        out.insert(format!("signal {}", s.name()), s.args().iter().map(arg).collect());
    }
    out
}

fn committed(interface: &str) -> String {
    let path = workspace().join(format!("protocol/dbus/{interface}.xml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const INTERFACES: [&str; 5] = [
    "io.github.pam_mfa.Pam1",
    "io.github.pam_mfa.Approver1",
    "io.github.pam_mfa.Enroll1",
    "io.github.pam_mfa.Admin1",
    "io.github.pam_mfa.Web1",
];

#[test]
fn the_running_mfad_serves_exactly_the_committed_api() {
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "");
    let config = pam_mfa_config::schema::Config::load(&mfad.config).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let live = runtime.block_on(async {
        let conn =
            zbus::connection::Builder::address(config.bus.address.as_str()).build().await.unwrap();
        let proxy = zbus::fdo::IntrospectableProxy::builder(&conn)
            .destination(pam_mfa_protocol::names::BUS_NAME)
            .path(pam_mfa_protocol::names::OBJECT_PATH)
            .build()
            .await
            .unwrap();
        proxy.introspect().await.unwrap()
    });
    let live = Node::try_from(live.as_str()).unwrap();
    let ours: Vec<_> = live
        .interfaces()
        .iter()
        .map(|i| i.name().to_string())
        .filter(|n| n.starts_with("io.github.pam_mfa."))
        .collect();
    assert_eq!(ours.len(), INTERFACES.len(), "interfaces served: {ours:?}");
    for interface in INTERFACES {
        let text = committed(interface);
        let file = Node::try_from(text.as_str()).unwrap();
        assert_eq!(
            members(&live, interface),
            members(&file, interface),
            "{interface}: the running mfad (left) differs from protocol/dbus/{interface}.xml (right)"
        );
    }
}

#[test]
fn every_committed_method_has_its_row_in_the_authorization_table() {
    let mut seen = Vec::new();
    for interface in INTERFACES {
        let text = committed(interface);
        let file = Node::try_from(text.as_str()).unwrap();
        let iface = file.interfaces().iter().find(|i| i.name().as_str() == interface).unwrap();
        for m in iface.methods() {
            let name = m.name().to_string();
            let method = Method::named(interface, &name)
                .unwrap_or_else(|| panic!("{interface}.{name} has no row in the table"));
            let note = |key: &str| {
                m.annotations()
                    .iter()
                    .find(|a| a.name() == key)
                    .map(|a| a.value().to_string())
                    .unwrap_or_else(|| panic!("{interface}.{name}: no {key} annotation"))
            };
            assert_eq!(
                note("io.github.pam_mfa.Authorization"),
                rule(method).annotation(),
                "{interface}.{name}: the XML and the table disagree on who may call"
            );
            for error in note("io.github.pam_mfa.Errors").split_whitespace() {
                assert!(
                    MfaError::NAMES.contains(&error),
                    "{interface}.{name}: unknown error {error}"
                );
            }
            seen.push(method);
        }
    }
    for (method, interface, member) in METHODS {
        assert!(seen.contains(&method), "{interface}.{member} is in the table, not in the XML");
    }
}

#[test]
fn errors_carry_their_numbers_as_arguments_not_in_sentences() {
    let bus = Bus::start();
    let mfad = Mfad::start(&bus, "[enroll]\nconfirm_tries = 5\n");
    let config = pam_mfa_config::schema::Config::load(&mfad.config).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let conn =
            zbus::connection::Builder::address(config.bus.address.as_str()).build().await.unwrap();
        let call = |method: &'static str, body: (&'static str, String)| {
            let conn = conn.clone();
            async move {
                conn.call_method(
                    Some(pam_mfa_protocol::names::BUS_NAME),
                    pam_mfa_protocol::names::OBJECT_PATH,
                    Some("io.github.pam_mfa.Enroll1"),
                    method,
                    &body,
                )
                .await
            }
        };
        let begun = conn
            .call_method(
                Some(pam_mfa_protocol::names::BUS_NAME),
                pam_mfa_protocol::names::OBJECT_PATH,
                Some("io.github.pam_mfa.Enroll1"),
                "Begin",
                &("typed", false, ""),
            )
            .await
            .unwrap();
        let (uri, _, _): (String, String, u64) = begun.body().deserialize().unwrap();
        // zbus writes a body of several arguments in parentheses: Begin's
        // three out arguments read "(sst)".
        assert_eq!(begun.header().signature().to_string(), "(sst)");
        let wrong = wrong_code(&Otpauth::parse(&uri).code_now());
        // A wrong first code: the reply says how many tries are left.
        let Err(zbus::Error::MethodError(name, _, reply)) = call("Confirm", ("typed", wrong)).await
        else {
            panic!("a wrong first code is refused");
        };
        assert_eq!(name.as_str(), "io.github.pam_mfa.Error.WrongCode");
        assert_eq!(reply.header().signature().to_string(), "(su)", "a sentence and a count");
        let (sentence, tries_left): (String, u32) = reply.body().deserialize().unwrap();
        assert_eq!(tries_left, 4);
        assert!(!sentence.is_empty());
        // The client reads the number, not the sentence.
        let error = MfaError::from(zbus::Error::MethodError(name, Some(sentence), reply));
        assert!(matches!(error, MfaError::WrongCode { tries_left: 4 }), "{error:?}");
        // An error without a number has only the sentence.
        let Err(zbus::Error::MethodError(name, _, reply)) =
            call("Confirm", ("nobody", "000000".into())).await
        else {
            panic!("confirming nothing is refused");
        };
        assert_eq!(name.as_str(), "io.github.pam_mfa.Error.NoPendingEnrollment");
        assert_eq!(reply.header().signature().to_string(), "s");
    });
}
