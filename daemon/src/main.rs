//! mfad — the pam-mfa daemon on the system bus.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use futures_util::StreamExt;
use nix::sys::signal::{SigSet, Signal};
use pam_mfa_config::cli;
use pam_mfa_config::i18n::{self, Texts};
use pam_mfa_config::say;
use pam_mfa_config::schema::Config;
use pam_mfa_core::service::Service;
use pam_mfa_core::storage::Storage;
use pam_mfa_daemon::bus::{AdminInterface, ApproverInterface, EnrollInterface, PamInterface};
use pam_mfa_daemon::push::Approvers;
use pam_mfa_daemon::random::OsRandom;
use pam_mfa_daemon::sessions::Sessions;
use pam_mfa_daemon::web::WebInterface;
use pam_mfa_protocol::names;

const HELP: &str = "\
mfad - the pam-mfa daemon: holds enrolled secrets, checks codes

Usage: mfad [--config PATH]

Serves io.github.pam_mfa on the bus named by [bus] address in the config
(default: the system bus). Logs to standard error (the journal under systemd);
never logs a code or a secret.

Options:
  --config PATH   config file (default /etc/pam-mfa/config.toml; a missing
                  default file means built-in defaults, a missing PATH is an error)
  --help          this text
  --version       the version

Exit status: 0 after SIGTERM/SIGINT, 1 on a config, store or bus error.";

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    // mfad speaks to administrators: English, like its log.
    let given = match cli::parse(&[cli::HELP, cli::VERSION, cli::CONFIG], &raw) {
        Ok(given) => given,
        Err(problem) => return usage(&problem.said(&Texts::new(i18n::FALLBACK))),
    };
    let mut config_path: Option<PathBuf> = None;
    for (name, value) in given {
        match name {
            "--help" => {
                say!("{HELP}");
                return ExitCode::SUCCESS;
            }
            "--version" => {
                say!("mfad {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            _ => config_path = value.map(PathBuf::from),
        }
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .init();
    let config = Config::load_trusted(config_path.as_deref());
    let config = match config {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let store: Arc<dyn Storage> = match pam_mfa_storage::open(&config) {
        Ok(store) => store,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // SIGTERM and SIGINT are taken by a thread of their own (sigwait) rather
    // than tokio's signal driver: that driver keeps a process-wide socket
    // pair, and with Cargo's feature unification it would then also live
    // in pam_mfa.so inside sshd. Blocked here, before any thread starts.
    let mut stop_signals = SigSet::empty();
    stop_signals.add(Signal::SIGTERM);
    stop_signals.add(Signal::SIGINT);
    if let Err(e) = stop_signals.thread_block() {
        tracing::error!("cannot block the stop signals: {e}");
        return ExitCode::FAILURE;
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let signal = stop_signals.wait();
        let _ = stop_tx.send(signal);
    });
    let runtime =
        // Store work is short (a read, a write, an fsync): a few blocking
        // threads do it all; dozens only contend (64 clients, BENCHMARKS.md).
        // A database's connections each carry one: as many as the pool, and a few.
        match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(4 + blocking_for(&config))
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                tracing::error!("cannot start the runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
    match runtime.block_on(serve(config, store, stop_rx)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Blocking threads a store can keep busy at once, beyond the file store's.
fn blocking_for(config: &Config) -> usize {
    match config.store.backend {
        pam_mfa_config::schema::Backend::File => 0,
        pam_mfa_config::schema::Backend::Postgres => {
            usize::try_from(config.store.pool_size.get()).unwrap_or(4)
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("mfad: {problem}\nTry 'mfad --help'.");
    ExitCode::from(2)
}

async fn serve(
    config: Config,
    store: Arc<dyn Storage>,
    stop: tokio::sync::oneshot::Receiver<nix::Result<Signal>>,
) -> Result<(), String> {
    let address = config.bus.address.as_str().to_string();
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    let service = Arc::new(Service::new(config, store, Box::new(OsRandom), &host));
    let approvers = Arc::new(Approvers::default());
    let links = Arc::new(pam_mfa_daemon::web::Links::default());
    let state_dir = service.config().state_dir.as_path().to_path_buf();
    let sessions =
        Arc::new(Sessions::load(Some(Sessions::file_in(&state_dir)), &Sessions::boot_id()));
    let connection = zbus::connection::Builder::address(address.as_str())
        .name(names::BUS_NAME)
        .serve_at(
            names::OBJECT_PATH,
            PamInterface {
                service: Arc::clone(&service),
                approvers: Arc::clone(&approvers),
                sessions: Arc::clone(&sessions),
            },
        )
        .serve_at(
            names::OBJECT_PATH,
            ApproverInterface {
                service: Arc::clone(&service),
                approvers: Arc::clone(&approvers),
                sessions: Arc::clone(&sessions),
                links: Arc::clone(&links),
            },
        )
        .serve_at(
            names::OBJECT_PATH,
            EnrollInterface { service: Arc::clone(&service), links: Arc::clone(&links) },
        )
        .serve_at(
            names::OBJECT_PATH,
            WebInterface {
                service: Arc::clone(&service),
                approvers: Arc::clone(&approvers),
                sessions: Arc::clone(&sessions),
                links,
            },
        )
        .serve_at(names::OBJECT_PATH, AdminInterface { service: Arc::clone(&service) })
        .build()
        .await
        .map_err(|e| format!("cannot serve {} on {address}: {e}", names::BUS_NAME))?;
    // Challenges belong to their creator's connection and approvers to
    // theirs: when a connection leaves the bus, both go with it.
    let dbus = zbus::fdo::DBusProxy::new(&connection)
        .await
        .map_err(|e| format!("cannot talk to the bus daemon: {e}"))?;
    let mut departures = dbus
        .receive_name_owner_changed()
        .await
        .map_err(|e| format!("cannot watch the bus: {e}"))?;
    // A fleet's other hosts make challenges too: this host's approvers of
    // their users hear of them.
    if let Some(mut made) = service.store().made_elsewhere() {
        let (conn, approvers) = (connection.clone(), Arc::clone(&approvers));
        tokio::spawn(async move {
            loop {
                match made.recv().await {
                    Ok(made) => {
                        pam_mfa_daemon::bus::announce_made_elsewhere(&conn, &approvers, &made).await
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(
                            missed,
                            "challenges made elsewhere not announced (too many at once)"
                        );
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    }
    let gone = Arc::clone(&service);
    tokio::spawn(async move {
        while let Some(signal) = departures.next().await {
            let Ok(args) = signal.args() else { continue };
            if args.new_owner().is_none() && args.name().starts_with(':') {
                pam_mfa_daemon::bus::forget_caller(args.name());
                let now = pam_mfa_daemon::clock::now();
                approvers.forget(args.name());
                // Off the executor: a store may wait on a database.
                let (store, name) = (Arc::clone(&gone), args.name().to_string());
                let cancelled = tokio::task::spawn_blocking(move || {
                    store.store().cancel_challenges_of(&name, now).map_err(|e| e.to_string())
                })
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
                match cancelled {
                    Ok(ids) => {
                        for id in ids {
                            tracing::info!(challenge = %id, result = "cancelled", "challenge-ended");
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot cancel the challenges of a caller that left")
                    }
                }
            }
        }
    });
    tracing::info!(bus = %address, name = names::BUS_NAME, "ready");
    let signal = stop.await;
    tracing::info!(signal = ?signal, "stopping");
    drop(connection);
    Ok(())
}
