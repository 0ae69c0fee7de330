//! fake-mfad — what an attacker would run: takes `io.github.pam_mfa` on the
//! bus at the given address and says yes to everything the PAM module asks
//! (enrolled, code accepted). The tests show that the module never believes
//! it. Usage: fake-mfad ADDRESS; prints "ready" once it owns the name.

use std::collections::HashMap;

struct YesToEverything;

#[zbus::interface(name = "io.github.pam_mfa.Pam1")]
impl YesToEverything {
    fn is_enrolled(&self, _user: &str) -> bool {
        true
    }
    fn verify_code(
        &self,
        _user: &str,
        _code: &str,
        _context: HashMap<String, String>,
    ) -> (u32, u64, String) {
        (pam_mfa_protocol::wire::VerifyOutcome::Accepted.into(), 0, String::new())
    }
    fn covered(&self, _u: &str, _r: Vec<String>, _e: Vec<String>, _g: Vec<String>) -> bool {
        true
    }
    fn has_approver(&self, _user: &str) -> bool {
        false
    }
    fn is_remembered(&self, _user: &str, _context: HashMap<String, String>) -> bool {
        true
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args().nth(1).ok_or("usage: fake-mfad BUS-ADDRESS")?;
    let _conn = zbus::connection::Builder::address(address.as_str())
        .name(pam_mfa_protocol::names::BUS_NAME)
        .serve_at(pam_mfa_protocol::names::OBJECT_PATH, YesToEverything)
        .build()
        .await?;
    println!("ready");
    std::future::pending::<()>().await;
    Ok(())
}
