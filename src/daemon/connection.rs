//! One task per connection: read a frame, answer it, repeat. The peer's uid is
//! read once at accept; a foreign uid is refused. A bad frame gets an `Error`
//! and the connection is closed; nothing a client sends can stop the daemon from
//! serving others.
//!
//! Every connection starts on protocol 0 (the seed's wire) and may switch once
//! to protocol 1 with `Hello`; requests are lifted into protocol 1 as they
//! arrive and answers lowered into the connection's protocol as they leave
//! (`shipote_protocol::dialect`), so the rest of the daemon knows one protocol.

use super::audit;
use super::supervisor::{Event, SupervisorHandle};
use shipote_protocol::dialect::{Dialect, Incoming};
use shipote_protocol::frame::{self, FrameError, HEADER_BYTES};
use shipote_protocol::{ErrorCode, Request, Response, PROTOCOL_CURRENT, PROTOCOL_SEED};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;

/// Once a frame's header has arrived, the rest must arrive within this time.
pub const FRAME_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a response may take to write before the client is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one connection until the client leaves, sends garbage, or `shutdown`
/// fires while it is idle.
pub async fn serve(
    stream: UnixStream,
    own_uid: u32,
    handle: SupervisorHandle,
    shutdown: CancellationToken,
) {
    let peer_uid = match stream.peer_cred() {
        Ok(cred) => cred.uid(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read peer credentials; closing connection");
            return;
        }
    };
    if peer_uid != own_uid {
        refuse(stream, peer_uid, own_uid).await;
        return;
    }
    handle.notify(Event::ClientConnected).await;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::with_capacity(16 * 1024, r);
    let mut payload = Vec::new();
    let mut out = Vec::with_capacity(256);
    let mut dialect = Dialect::Seed;
    let mut switched = false;
    loop {
        // Idle between frames: wait for a header, or leave on shutdown.
        let mut header = [0u8; HEADER_BYTES];
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            n = r.read(&mut header) => n,
        };
        let got = match first {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = %e, "read failed; closing connection");
                break;
            }
        };
        let body = async {
            if got < HEADER_BYTES {
                r.read_exact(&mut header[got..])
                    .await
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::UnexpectedEof => FrameError::Truncated {
                            got,
                            expected: HEADER_BYTES,
                        },
                        _ => FrameError::Io(e),
                    })?;
            }
            frame::read_body_async(&mut r, header, &mut payload).await?;
            dialect.decode_request(&payload)
        };
        let body = tokio::time::timeout(FRAME_BODY_TIMEOUT, body);
        let read = tokio::select! {
            _ = shutdown.cancelled() => break,
            read = body => read,
        };
        let request = match read {
            Ok(Ok(Incoming::Request(request))) => request,
            Ok(Ok(Incoming::Refuse(msg))) => {
                let refusal = Response::error(ErrorCode::Invalid, msg);
                if send(&mut w, &mut out, dialect, refusal).await.is_err() {
                    break;
                }
                continue;
            }
            Ok(Err(e)) => {
                let msg = format!(
                    "bad frame: {e}; closing the connection (this connection speaks protocol {}; \
                     see protocol/SPEC.md)",
                    dialect.protocol()
                );
                tracing::info!(uid = peer_uid, error = %e, "bad frame from client");
                audit::record_flood(
                    peer_uid,
                    "connection.bad_frame",
                    audit::Detail::new()
                        .kv("protocol", dialect.protocol())
                        .kv("error", &e),
                    "closed",
                );
                let bad = Response::error(ErrorCode::Invalid, msg);
                let _ = send(&mut w, &mut out, dialect, bad).await;
                break;
            }
            Err(_) => {
                let msg = format!(
                    "frame incomplete after {} s; closing the connection",
                    FRAME_BODY_TIMEOUT.as_secs()
                );
                tracing::info!(uid = peer_uid, "client stalled mid-frame");
                audit::record_flood(
                    peer_uid,
                    "connection.bad_frame",
                    audit::Detail::new()
                        .kv("protocol", dialect.protocol())
                        .kv("error", "stalled mid-frame"),
                    "closed",
                );
                let stalled = Response::error(ErrorCode::Invalid, msg);
                let _ = send(&mut w, &mut out, dialect, stalled).await;
                break;
            }
        };
        if let Request::Hello { protocol } = request {
            // A refused Hello closes the connection: requests written behind it
            // were meant for a protocol this connection will not speak.
            let answer = match Dialect::from_protocol(protocol) {
                _ if switched => Err(format!(
                    "Hello was already answered: this connection speaks protocol {}; \
                     open a new connection to speak another",
                    dialect.protocol()
                )),
                Some(d) => Ok(d),
                None => Err(format!(
                    "unknown protocol {protocol}: this shipoted speaks protocol {PROTOCOL_SEED} \
                     (the seed's wire) and {PROTOCOL_CURRENT}; reconnect and send \
                     Hello {{ protocol: {PROTOCOL_CURRENT} }}"
                )),
            };
            match answer {
                Ok(d) => {
                    dialect = d;
                    switched = true;
                    let hello = Response::Hello {
                        protocol,
                        version: env!("CARGO_PKG_VERSION").to_owned(),
                    };
                    if send(&mut w, &mut out, dialect, hello).await.is_err() {
                        break;
                    }
                    continue;
                }
                Err(msg) => {
                    tracing::info!(uid = peer_uid, protocol, "Hello refused");
                    audit::record_flood(
                        peer_uid,
                        "connection.hello_refused",
                        audit::Detail::new().kv("protocol", protocol),
                        "closed",
                    );
                    let refused = Response::error(ErrorCode::Invalid, msg);
                    let _ = send(&mut w, &mut out, dialect, refused).await;
                    break;
                }
            }
        }
        let audited = audit::action_of(&request);
        let response = match request {
            // The requests that need no state are answered here, off the
            // supervisor's queue: Ping at once, Discern (up to 1 MiB of
            // content to read) on a blocking thread.
            Request::Ping => Response::Pong,
            Request::Discern { sample, hint_path } => tokio::task::spawn_blocking(move || {
                crate::discern::respond(&sample, hint_path.as_deref())
            })
            .await
            .unwrap_or_else(|e| {
                Response::error(ErrorCode::Internal, format!("Discern failed: {e}"))
            }),
            request => handle.request(peer_uid, request).await,
        };
        if let Some((action, detail)) = audited {
            audit::record(peer_uid, action, &detail, &audit::outcome_of(&response));
        }
        if let Err(e) = send(&mut w, &mut out, dialect, response).await {
            tracing::debug!(error = %e, "write failed; closing connection");
            break;
        }
        // A large frame's buffers are not kept for the connection's life.
        super::memory::shrink(&mut payload);
        super::memory::shrink(&mut out);
    }
    super::memory::shrink(&mut payload);
    super::memory::shrink(&mut out);
    handle.notify(Event::ClientDisconnected).await;
}

async fn send(
    w: &mut tokio::net::unix::OwnedWriteHalf,
    out: &mut Vec<u8>,
    dialect: Dialect,
    response: Response,
) -> Result<(), FrameError> {
    out.clear();
    if let Err(e) = dialect.encode_response(response, out) {
        // Too large or unencodable: tell the client instead of going silent.
        let msg = format!("the response could not be sent: {e}");
        dialect.encode_response(Response::error(ErrorCode::Internal, msg), out)?;
    }
    match tokio::time::timeout(WRITE_TIMEOUT, w.write_all(out)).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(FrameError::Io(std::io::ErrorKind::TimedOut.into())),
    }
}

async fn refuse(mut stream: UnixStream, peer_uid: u32, own_uid: u32) {
    // Sent before any Hello, so in protocol 0; the `refused:` prefix carries
    // the code the seed's Error has no field for (SPEC.md section 2).
    let msg = format!(
        "refused: this shipoted serves uid {own_uid} only and you are uid {peer_uid}; \
         start your own with systemctl --user start shipote"
    );
    audit::record_flood(
        peer_uid,
        "connection.refused",
        audit::Detail::new()
            .kv("peer_uid", peer_uid)
            .kv("daemon_uid", own_uid),
        "refused: another uid",
    );
    let mut bytes = Vec::new();
    if Dialect::Seed
        .encode_response(Response::error(ErrorCode::Refused, msg), &mut bytes)
        .is_ok()
    {
        let _ = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&bytes)).await;
    }
    let _ = stream.shutdown().await;
}
