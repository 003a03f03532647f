//! shipoted: parse arguments, set up logging and the runtime, run the daemon.

use anyhow::Context;
use clap::Parser;
use shipote::daemon::{self, args::DaemonArgs, Config, SocketSource};
use std::os::fd::FromRawFd;
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    // `shipoted --keeper UNIT`: a workspace's placeholder process (see
    // shipote::process::spawn_keeper). Nothing else runs in that mode.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == shipote::process::KEEPER_ARG)
    {
        shipote::process::keeper_main();
    }
    // `shipoted --pid-init`: a sandboxed workspace's init (see
    // shipote::process::init).
    if std::env::args_os().nth(1).is_some_and(|a| {
        std::os::unix::ffi::OsStrExt::as_bytes(a.as_os_str())
            == shipote::process::init::INIT_ARG.to_bytes()
    }) {
        shipote::process::init::init_main();
    }
    // Not made non-dumpable (which would close /proc/<daemon>/root to the
    // user's processes): the child that makes a workspace's namespaces
    // shares the daemon's memory, hence its dumpable flag, and a
    // non-dumpable process cannot write its own uid_map unprivileged.
    let args = DaemonArgs::parse();
    // Few allocator arenas: a burst of threads (spawns, log captures) must not
    // leave memory pinned in one arena per thread.
    shipote::daemon::memory::limit_arenas();
    // Files and sockets the daemon creates are private to its user.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    // SAFETY: no other thread exists yet (the runtime starts below), so removing
    // LISTEN_* from the environment cannot race with a reader.
    let inherited = unsafe { sd_notify::listen_fds_and_unset_env() };
    match real_main(args, inherited) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shipoted: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(
    args: DaemonArgs,
    inherited: std::io::Result<impl ExactSizeIterator<Item = i32>>,
) -> anyhow::Result<()> {
    let filter = std::env::var("SHIPOTE_LOG").ok();
    shipote::logging::init(args.log_target, filter.as_deref())?;
    match shipote::process::spawn::raise_nofile_limit() {
        Ok((from, to)) if from != to => {
            tracing::info!(
                from,
                to,
                "raised the descriptor limit (commands keep the original)"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the descriptor limit"),
    }
    let mut fds = inherited.context("cannot read the sockets passed by the service manager")?;
    let socket = match fds.next() {
        Some(fd) => {
            // SAFETY: systemd passes us ownership of fd 3 (LISTEN_FDS start)
            // and nothing else in this process uses it.
            let listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
            SocketSource::Inherited(listener)
        }
        None => SocketSource::Path(
            args.socket
                .unwrap_or_else(shipote_protocol::default_socket_path),
        ),
    };
    let mut config = Config::new(socket);
    config.shutdown_grace =
        Duration::from_millis(args.old_shutdown_grace_ms.unwrap_or(args.shutdown_grace_ms));
    config.backend = args.backend;
    config.cgroup_root = args.cgroup_root;
    config.restart_policy.base = Duration::from_millis(
        args.old_restart_backoff_ms
            .unwrap_or(args.restart_backoff_ms)
            .max(1),
    );
    if let Some(dir) = args.state_dir {
        config.state_dir = dir;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("shipoted")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        daemon::run(config, shutdown, |_| {}).await
    })?;
    Ok(())
}

async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the daemon with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    shutdown.cancel();
}
