//! The process's stop signal: SIGTERM (Kubernetes) or Ctrl-C (a terminal), and
//! the deadline that makes every shutdown end.
//!
//! Draining is bounded step by step (in-flight requests, publisher flush, final
//! commits), but some steps sit in code we do not control: librdkafka's close
//! waits for a broker that may be gone, a blocking store call may never return.
//! So once the signal arrives a watchdog thread is armed; if the process is still
//! alive when it fires, it exits with [`EXIT_DEADLINE_PASSED`], so an
//! orchestrator sees an unclean stop instead of a pod stuck in `Terminating`.

use std::time::Duration;

/// Exit status of a process whose shutdown did not finish in time
/// (`EX_SOFTWARE` from sysexits.h).
pub const EXIT_DEADLINE_PASSED: i32 = 70;
/// Exit status of a process that stopped in time but had to abandon work it
/// had taken (a final commit that failed, a flush that did not finish); the
/// work is redelivered, and the orchestrator is told (`EX_TEMPFAIL`).
pub const EXIT_WORK_ABANDONED: i32 = 75;
/// Time on top of a drain timeout for the steps after draining (flush, commit,
/// leaving the consumer group, closing stores).
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// Resolves on the first SIGTERM or SIGINT.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Resolves on the first SIGTERM or SIGINT, and from then on the process has
/// `drain_timeout` plus [`DEADLINE_MARGIN`] to exit (see [`arm_deadline`]).
pub async fn signal_with_deadline(drain_timeout: Duration) {
    signal().await;
    arm_deadline(drain_timeout + DEADLINE_MARGIN);
}

/// Exits the process with [`EXIT_DEADLINE_PASSED`] if it is still running
/// `deadline` from now. The watchdog is an OS thread, not a task, so a runtime
/// whose workers are all blocked cannot hold it back.
pub fn arm_deadline(deadline: Duration) {
    let spawned = std::thread::Builder::new()
        .name("shutdown-deadline".into())
        .spawn(move || {
            std::thread::sleep(deadline);
            tracing::error!(
                ?deadline,
                "shutdown did not finish within its deadline; exiting"
            );
            eprintln!("shutdown did not finish within {deadline:?}; exiting");
            std::process::exit(EXIT_DEADLINE_PASSED);
        });
    if let Err(e) = spawned {
        // Without the thread the process may hang on a dead broker; say so, but
        // shutting down still goes on.
        tracing::error!(error = %e, "cannot start the shutdown watchdog");
    }
}
