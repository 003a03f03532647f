//! Memory a burst of large requests leaves behind goes back to the system.
//!
//! A connection's buffers grow to its largest frame (up to 1 MiB each way).
//! Once such a frame is handled they are dropped, and the allocator is asked
//! to return what is free ([`trimmer`], at most once per [`TRIM_EVERY`]):
//! glibc keeps freed memory in per-thread arenas otherwise, so 1,000 clients
//! of 1 MiB once left the daemon at 1 GB for good.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Buffers above this capacity are dropped once their frame is handled.
pub const SHRINK_ABOVE: usize = 64 << 10;

/// How often, at most, free memory is handed back after large buffers went.
pub const TRIM_EVERY: Duration = Duration::from_secs(1);

/// How often free memory is handed back in any case (threads of a burst that
/// exit later, tokio's idle blocking threads after their 10 s, free their
/// caches into the allocator's arenas without any large buffer).
pub const TRIM_ANYWAY_EVERY: Duration = Duration::from_secs(15);

static BIG_FREE: AtomicBool = AtomicBool::new(false);

/// Drops `buf`'s storage when it grew past [`SHRINK_ABOVE`], and notes that
/// there is memory to hand back.
pub fn shrink(buf: &mut Vec<u8>) {
    if buf.capacity() > SHRINK_ABOVE {
        *buf = Vec::new();
        BIG_FREE.store(true, Ordering::Relaxed);
    }
}

/// Hands free memory back to the system after large buffers were dropped,
/// until `shutdown`.
pub async fn trimmer(shutdown: CancellationToken) {
    let mut every = tokio::time::interval(TRIM_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let anyway = (TRIM_ANYWAY_EVERY.as_secs() / TRIM_EVERY.as_secs()).max(1);
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        ticks += 1;
        if BIG_FREE.swap(false, Ordering::Relaxed) || ticks % anyway == 0 {
            let _ = tokio::task::spawn_blocking(trim).await;
        }
    }
}

/// Caps the allocator's arenas at [`ARENAS`] (glibc makes up to 8 per core,
/// one per thread that allocates, and memory freed in one is only reused
/// there). Call before any thread starts.
pub fn limit_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt takes two integers; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Allocator arenas the daemon uses at most.
pub const ARENAS: libc::c_int = 2;

/// Returns free heap memory to the system.
fn trim() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim takes no pointers; it only walks the allocator's own
    // free lists under its locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
