//! The supervisor of the logins' pollers: one poller per connected login,
//! started at bridge startup (once `auth.validate` accepted the stored
//! session, or could not reach Instagram) and right after a login (when the login's
//! pending outgoing messages are resumed too), stopped on logout and
//! shutdown, restarted (with a pause) when it panics, and never restarted
//! after it stopped because the login needs the user.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::login_session::LoginSession;
use super::login_state::{self, LoginState};
use super::{poller, Bridge};

/// Pause before a panicked poller is restarted.
const RESTART_PAUSE: Duration = Duration::from_secs(2);

/// How long shutdown waits for a poller to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// What a running poller listens to besides its timer.
#[derive(Default)]
pub struct PollerSignals {
    /// Poll now (`sync`).
    pub wake: Notify,
    /// Threads whose pages the next poll fetches even if they look unchanged.
    forced: Mutex<HashSet<String>>,
}

impl PollerSignals {
    /// Takes the threads to fetch regardless of the inbox.
    pub fn take_forced(&self) -> HashSet<String> {
        std::mem::take(&mut *self.forced.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

struct Running {
    signals: Arc<PollerSignals>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The pollers of all logins. Holds the bridge weakly (the bridge owns it).
#[derive(Default)]
pub struct Supervisor {
    bridge: OnceLock<Weak<Bridge>>,
    pollers: Mutex<HashMap<String, Running>>,
}

impl Supervisor {
    /// Gives the supervisor its bridge; done once, when the bridge is built.
    pub fn attach(&self, bridge: &Arc<Bridge>) {
        // A second attach (of the same bridge) changes nothing.
        let _ = self.bridge.set(Arc::downgrade(bridge));
    }

    /// The bridge, for work that outlives a borrowed `&Bridge` (spawned tasks).
    pub fn bridge(&self) -> Option<Arc<Bridge>> {
        self.bridge.get().and_then(Weak::upgrade)
    }

    /// Validates every login that does not need the user (each in its own
    /// task) and starts its poller unless Instagram ended its session.
    pub async fn start_all(&self) {
        let Some(bridge) = self.bridge() else {
            return;
        };
        match bridge.store.list_logins().await {
            Ok(logins) => {
                for login in logins {
                    if !LoginState::of(&login).needs_user() {
                        let bridge = bridge.clone();
                        tokio::spawn(async move {
                            if validate(&bridge, &login.id).await {
                                bridge.supervisor.start(&login.id);
                            }
                        });
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot list logins: no poller started"),
        }
    }

    /// Starts (or restarts) the poller of the login `login_id`.
    pub fn start(&self, login_id: &str) {
        let Some(bridge) = self.bridge() else {
            return;
        };
        let signals = Arc::new(PollerSignals::default());
        let (stop, stopped) = watch::channel(false);
        let login = login_id.to_owned();
        let run_signals = signals.clone();
        let run_stopped = stopped.clone();
        let task = tokio::spawn(supervise(
            login_id.to_owned(),
            stopped,
            RESTART_PAUSE,
            move || {
                poller::run(
                    bridge.clone(),
                    login.clone(),
                    run_signals.clone(),
                    run_stopped.clone(),
                )
            },
        ));
        let previous = self
            .pollers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                login_id.to_owned(),
                Running {
                    signals,
                    stop,
                    task,
                },
            );
        if let Some(previous) = previous {
            let _ = previous.stop.send(true);
        }
        tracing::info!(login = login_id, "poller started");
        // What waited to go out (a crash, an expired session) goes now.
        if let Some(bridge) = self.bridge() {
            tokio::spawn(super::relay_out::resume_pending(
                bridge,
                Some(login_id.to_owned()),
            ));
        }
    }

    /// Stops the poller of the login `login_id` (logout).
    pub fn stop(&self, login_id: &str) {
        let running = self
            .pollers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(login_id);
        if let Some(running) = running {
            let _ = running.stop.send(true);
            tracing::info!(login = login_id, "poller stopped");
        }
    }

    /// Asks the poller of the login `login_id` to poll now, fetching
    /// `thread_id`'s pages even if the inbox shows no change; false when no
    /// poller runs for the login.
    pub fn poll_now(&self, login_id: &str, thread_id: Option<&str>) -> bool {
        let pollers = self.pollers.lock().unwrap_or_else(|e| e.into_inner());
        let Some(running) = pollers.get(login_id).filter(|r| !r.task.is_finished()) else {
            return false;
        };
        if let Some(thread_id) = thread_id {
            running
                .signals
                .forced
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(thread_id.to_owned());
        }
        running.signals.wake.notify_one();
        true
    }

    /// Stops every poller and waits (bounded) for them to finish.
    pub async fn shutdown(&self) {
        let running: Vec<Running> = self
            .pollers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, running)| running)
            .collect();
        for poller in &running {
            let _ = poller.stop.send(true);
        }
        for poller in running {
            let abort = poller.task.abort_handle();
            if tokio::time::timeout(STOP_TIMEOUT, poller.task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

/// Runs the spec's `auth.validate` on the login `login_id`'s stored session; a failure
/// moves the login to the state it points to (the user told once). Returns
/// whether its poller should start: not when the login needs the user (an
/// unreachable Instagram or any other failure is left to the poller).
async fn validate(bridge: &Bridge, login_id: &str) -> bool {
    let Ok(mut session) = LoginSession::open(bridge, login_id).await else {
        return false;
    };
    let timeout = Duration::from_millis(bridge.config.polling.request_timeout_ms);
    let connector = session.connector.clone().with_timeout(timeout);
    let result = connector.validate(&mut session.creds).await;
    session.save().await;
    let Err(error) = result else {
        return true;
    };
    tracing::warn!(login = login_id, error = %error, "the stored session did not validate at startup");
    match LoginState::from_error(&error) {
        Some(state) if state.needs_user() => {
            login_state::move_login(bridge, login_id, state, None).await;
            false
        }
        Some(LoginState::Unreachable) => {
            login_state::move_login(bridge, login_id, LoginState::Unreachable, None).await;
            true
        }
        _ => true,
    }
}

/// Runs a login's poller (`run` starts it), restarting it `pause` after a
/// panic, until it returns (stopped, or the login needs the user).
async fn supervise<F, Fut>(
    login_id: String,
    stopped: watch::Receiver<bool>,
    pause: Duration,
    run: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        match tokio::spawn(run()).await {
            Ok(()) => return,
            Err(e) if e.is_panic() => {
                tracing::error!(login = %login_id, "the poller panicked; restarting it");
            }
            Err(_) => return,
        }
        if *stopped.borrow() {
            return;
        }
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Supervises a run that panics its first `panics` times; returns how
    /// many times it was started.
    async fn runs_with_panics(panics: usize, stop_first: bool) -> usize {
        let started = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = watch::channel(false);
        if stop_first {
            stop.send(true).unwrap();
        }
        let counter = started.clone();
        supervise(
            "@alice:example.org".to_owned(),
            stopped,
            Duration::ZERO,
            move || {
                let run = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert!(run >= panics, "a poller bug");
                }
            },
        )
        .await;
        started.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_panicked_poller_is_restarted() {
        assert_eq!(runs_with_panics(0, false).await, 1);
        assert_eq!(runs_with_panics(3, false).await, 4);
    }

    #[tokio::test]
    async fn a_stopped_poller_is_not_restarted_after_a_panic() {
        assert_eq!(runs_with_panics(3, true).await, 1);
    }
}
