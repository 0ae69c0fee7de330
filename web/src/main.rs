//! mfa-web: the phone approver. A page served over HTTPS (rustls) by its
//! own system user, where a phone signed in with a passkey sees its user's
//! requests as they are made (server-sent events) and approves one by
//! typing the number, signing that very request with the passkey.
//!
//! It holds no key: passkeys are registered here with webauthn-rs's
//! passkey flow. On one host every signature (a sign-in, an approval)
//! goes to mfad's `io.github.pam_mfa.Web1`, which checks it against the
//! key it keeps. In a fleet (`[web] connection`) mfa-web works on the
//! database with a role of its own ([`backend`]). Here: sessions, CSRF,
//! rate limits, origins.

mod backend;
mod http;

use std::process::ExitCode;
use std::sync::Arc;

use nix::sys::signal::{SigSet, Signal};
use pam_mfa_config::cli;
use pam_mfa_config::i18n::{self, Texts};
use pam_mfa_config::schema::Config;
use pam_mfa_protocol::names;

const HELP: &str = "\
mfa-web - the phone approver of pam-mfa: a passkey-protected page for number matching

Usage: mfa-web [--config PATH]

Serves https://[web] public_url on [web] listen, where phones registered
with `mfa-enroll --add-phone` sign in with their passkey and approve
sign-in requests by typing the number shown; each approval is signed by the
phone's passkey over that request. Runs as its own user ([web] user,
normally pam-mfa-web; the packaged unit mfa-web.service, installed but not
enabled).

On one host it talks to mfad over the bus named in [bus], through an
interface only its user may call; mfad checks every signature. In a fleet,
with [web] connection set, it works on the fleet's database instead, as a
role of its own (mfa-db add-web): it checks the signatures, the database
keeps them with each answer, and the host that asked checks them again.

Options:
  --config PATH  the config file (default /etc/pam-mfa/config.toml)
  --help         this text
  --version      the version

Exit status: 0 stopped (SIGTERM), 1 failed (the error says why), 2 usage or
config error.
";

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    // mfa-web speaks to administrators: English, like mfad and mfa-db.
    let texts = Texts::new(i18n::FALLBACK);
    let given = match cli::parse(&[cli::HELP, cli::VERSION, cli::CONFIG], &raw) {
        Ok(given) => given,
        Err(problem) => return usage(&problem.said(&texts)),
    };
    let mut config_path = None;
    for (option, value) in given {
        match option {
            "--help" => {
                print!("{HELP}");
                return ExitCode::SUCCESS;
            }
            "--version" => {
                println!("mfa-web {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            _ => config_path = value.map(std::path::PathBuf::from),
        }
    }
    // Colours only for a person at a terminal, never into the journal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    let config = match Config::load_trusted(config_path.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("mfa-web: {e}");
            return ExitCode::from(2);
        }
    };
    // SIGTERM and SIGINT go to a thread of their own (sigwait), as in mfad:
    // tokio's signal driver keeps a process-wide socket pair, which feature
    // unification would put into pam_mfa.so inside sshd too.
    let mut stop_signals = SigSet::empty();
    stop_signals.add(Signal::SIGTERM);
    stop_signals.add(Signal::SIGINT);
    if let Err(e) = stop_signals.thread_block() {
        eprintln!("mfa-web: cannot block the stop signals: {e}");
        return ExitCode::FAILURE;
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = stop_tx.send(stop_signals.wait());
    });
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                eprintln!("mfa-web: cannot start: {e}");
                return ExitCode::FAILURE;
            }
        };
    match runtime.block_on(serve(config, stop_rx)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mfa-web: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("mfa-web: {problem}\nTry 'mfa-web --help'.");
    ExitCode::from(2)
}

async fn serve(
    config: Config,
    stop: tokio::sync::oneshot::Receiver<nix::Result<Signal>>,
) -> Result<(), String> {
    let web = &config.web;
    let origin = web
        .public_url
        .origin()
        .ok_or("set [web] public_url (https://host:port, the address phones open)")?
        .to_string();
    let rp_id = web.rp_id().ok_or("[web] public_url has no host")?.to_string();
    let (Some(cert), Some(key)) = (web.certificate.get(), web.key.get()) else {
        return Err("set [web] certificate and key (PEM files): mfa-web serves HTTPS only".into());
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls =
        axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await.map_err(|e| {
            format!(
                "cannot read [web] certificate {} and key {}: {e}",
                cert.display(),
                key.display()
            )
        })?;

    let app = match pam_mfa_storage::web_settings(&config)? {
        Some(settings) => on_database(&config, settings, &origin, &rp_id).await?,
        None => on_mfad(&config, &origin, &rp_id).await?,
    };

    let listen = web.listen.0;
    tracing::info!(listen = %listen, origin = %origin, "ready");
    let handle = axum_server::Handle::new();
    let stopping = handle.clone();
    tokio::spawn(async move {
        let signal = stop.await;
        tracing::info!(signal = ?signal, "stopping");
        stopping.graceful_shutdown(Some(std::time::Duration::from_secs(2)));
    });
    axum_server::bind_rustls(listen, tls)
        .handle(handle)
        .serve(http::router(app).into_make_service_with_connect_info::<std::net::SocketAddr>())
        .await
        .map_err(|e| format!("cannot serve on {listen}: {e}"))
}

/// Fleet mode: the database with mfa-web's own role; requests made and
/// ended on any host reach the pages by LISTEN/NOTIFY.
async fn on_database(
    config: &Config,
    settings: pam_mfa_storage::postgres::Settings,
    origin: &str,
    rp_id: &str,
) -> Result<Arc<http::App>, String> {
    let place = settings.place();
    let store = Arc::new(pam_mfa_storage::web::WebStore::open(settings));
    let probe = Arc::clone(&store);
    tokio::task::spawn_blocking(move || probe.probe())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| {
            format!("the database {place} refused this web approver ({e}): is the role made by mfa-db add-web, and the schema current (mfa-db setup)?")
        })?;
    let mut changes = store.changes();
    let relying = pam_mfa_core::passkey::Relying { origin: origin.into(), rp_id: rp_id.into() };
    let fleet = backend::Fleet { store, relying, test_seconds: config.push.timeout_seconds.get() };
    let app = Arc::new(http::App::new(
        backend::Backend::Database(fleet),
        origin,
        rp_id,
        config.web.session_seconds.get(),
    )?);
    let events = Arc::clone(&app);
    tokio::spawn(async move {
        loop {
            match changes.recv().await {
                Ok(user) => events.tell(&user),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    tracing::info!(database = %place, "working on the fleet's database");
    Ok(app)
}

/// One host: mfad's `Web1` on the bus.
async fn on_mfad(config: &Config, origin: &str, rp_id: &str) -> Result<Arc<http::App>, String> {
    let web = &config.web;
    let address = config.bus.address.as_str().to_string();
    let bound = std::time::Duration::from_millis(config.bus.timeout_ms.get());
    let mfad = tokio::time::timeout(
        bound,
        pam_mfa_client::genuine_owner(&address, config.bus.service_user.as_str()),
    )
    .await
    .map_err(|_| format!("mfad did not answer on {address} in time"))??;
    let proxy = mfad.web().await.map_err(|e| format!("cannot talk to mfad: {e}"))?;
    let mut changes = proxy
        .receive_requests_changed()
        .await
        .map_err(|e| format!("cannot listen to mfad: {e}"))?;
    let told = proxy.register().await.map_err(|e| {
        format!(
            "mfad refused this web approver ({e}): run as [web] user, with the packaged bus policy"
        )
    })?;
    if told != origin {
        return Err(format!("mfad checks passkeys for {told}, this config says {origin}"));
    }

    let app = Arc::new(http::App::new(
        backend::Backend::Mfad(proxy),
        origin,
        rp_id,
        web.session_seconds.get(),
    )?);
    let events = Arc::clone(&app);
    tokio::spawn(async move {
        use futures_util::StreamExt;
        while let Some(signal) = changes.next().await {
            if let Ok(args) = signal.args() {
                events.tell(args.user());
            }
        }
        tracing::error!("the bus connection to mfad ended");
        std::process::exit(1);
    });
    tracing::info!(bus = %address, name = names::BUS_NAME, "working with mfad");
    Ok(app)
}
