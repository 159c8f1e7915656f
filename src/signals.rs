//! The only place that touches Unix signals: each becomes a [`Control`] message for the
//! daemon's control loop. actix-web's own handling is disabled (it would make SIGINT a
//! forced stop; it must stop gracefully, as SIGTERM does).

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::Signals;
use tokio::sync::mpsc;

/// What a signal asks the daemon to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// SIGTERM (systemd, containers) or SIGINT (a person's Ctrl-C): both graceful.
    Shutdown(&'static str),
    /// SIGHUP: re-read the configuration and apply what can change live.
    Reload,
    /// SIGUSR1: refresh every cache now.
    RefreshAll,
    /// SIGUSR2: log one status snapshot.
    Status,
}

/// Starts a thread that forwards signals into `tx` until the receiver is dropped.
///
/// # Errors
/// When the signal handlers cannot be installed.
pub(crate) fn forward(tx: mpsc::UnboundedSender<Control>) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for sig in signals.forever() {
            let control = match sig {
                SIGTERM => Control::Shutdown("SIGTERM"),
                SIGINT => Control::Shutdown("SIGINT"),
                SIGHUP => Control::Reload,
                SIGUSR1 => Control::RefreshAll,
                SIGUSR2 => Control::Status,
                _ => continue,
            };
            if tx.send(control).is_err() {
                break;
            }
        }
    })?;
    Ok(())
}

/// Waits for another SIGTERM or SIGINT (a second Ctrl-C during the drain), ignoring
/// the other signals; never returns once every sender is gone.
pub(crate) async fn another_shutdown(rx: &mut mpsc::UnboundedReceiver<Control>) -> &'static str {
    loop {
        match rx.recv().await {
            Some(Control::Shutdown(signal)) => return signal,
            Some(_) => {}
            None => std::future::pending::<()>().await,
        }
    }
}
