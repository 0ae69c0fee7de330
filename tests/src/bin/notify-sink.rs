//! A stand-in desktop notification service for the tests: serves
//! org.freedesktop.Notifications on the bus given as the only argument and
//! prints one line per notification (`notify: SUMMARY | BODY`).

use std::collections::HashMap;

struct Sink;

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Sink {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        _app_name: &str,
        _replaces_id: u32,
        _app_icon: &str,
        summary: &str,
        body: &str,
        _actions: Vec<String>,
        _hints: HashMap<String, zbus::OwnedVariant>,
        _expire_timeout: i32,
    ) -> u32 {
        println!("notify: {summary} | {}", body.replace('\n', " / "));
        1
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args().nth(1).ok_or("usage: notify-sink BUS-ADDRESS")?;
    let _conn = zbus::connection::Builder::address(address.as_str())
        .name("org.freedesktop.Notifications")
        .serve_at("/org/freedesktop/Notifications", Sink)
        .build()
        .await?;
    println!("ready");
    std::future::pending::<()>().await;
    Ok(())
}
