//! A small async client: one connection, one request at a time, speaking
//! protocol 1. Its first call writes `Hello { protocol: 1 }` and the request in
//! one write and reads both answers: the switch costs no round trip.
//!
//! ```no_run
//! # async fn demo() -> Result<(), shipote_protocol::client::ClientError> {
//! use shipote_protocol::{client::Client, default_socket_path, Request, Response};
//! let mut client = Client::connect(&default_socket_path()).await?;
//! assert_eq!(client.call(&Request::Ping).await?, Response::Pong);
//! # Ok(()) }
//! ```

use crate::frame::{self, FrameError};
use crate::{Dialect, Request, Response, PROTOCOL_CURRENT};
use std::io;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Where answers come from: a socket's read half, or a bridge's output (an
/// `ssh` child's stdout).
type Reader = Box<dyn AsyncRead + Unpin + Send>;
/// Where requests go.
type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// Why a call could not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing accepted the connection at `path`.
    #[error("cannot connect to {}: {source}", path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The exchange failed after connecting.
    #[error("{0}")]
    Frame(#[from] FrameError),
}

/// A connection to the daemon.
pub struct Client {
    reader: BufReader<Reader>,
    writer: Writer,
    out: Vec<u8>,
    payload: Vec<u8>,
    /// `Hello` was written; its answer is the next frame to read.
    hello_pending: bool,
    /// `Hello` was answered: the connection speaks protocol 1.
    switched: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("switched", &self.switched)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to the daemon's socket.
    pub async fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Connect {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self::from_stream(stream))
    }

    /// Wraps an already connected stream.
    pub fn from_stream(stream: UnixStream) -> Self {
        let (r, w) = stream.into_split();
        Self::from_halves(r, w)
    }

    /// Speaks over any byte stream that reaches a daemon: a bridge's output
    /// and input (`ssh HOST shipote system dial-stdio`), for one.
    pub fn from_halves(
        r: impl AsyncRead + Unpin + Send + 'static,
        w: impl AsyncWrite + Unpin + Send + 'static,
    ) -> Self {
        Self {
            reader: BufReader::with_capacity(16 * 1024, Box::new(r) as Reader),
            writer: Box::new(w),
            out: Vec::with_capacity(256),
            payload: Vec::new(),
            hello_pending: false,
            switched: false,
        }
    }

    /// Sends one request and waits for its response.
    pub async fn call(&mut self, request: &Request) -> Result<Response, ClientError> {
        self.out.clear();
        if !self.switched && !self.hello_pending {
            frame::encode_into(
                &Request::Hello {
                    protocol: PROTOCOL_CURRENT,
                },
                &mut self.out,
            )?;
            self.hello_pending = true;
        }
        frame::encode_into(request, &mut self.out)?;
        if let Err(e) = self.writer.write_all(&self.out).await {
            // The daemon may have answered and closed before reading (a
            // refusal sent at accept): its answer is still there to read.
            return match self.recv().await {
                Ok(r @ Response::Error { .. }) => Ok(r),
                _ => Err(FrameError::Io(e).into()),
            };
        }
        self.recv().await
    }

    /// Waits for the next response (e.g. the refusal the daemon sends right after
    /// accepting a connection it will not serve). Answers written before the
    /// switch to protocol 1 (a refusal at accept, a refused `Hello`) are lifted
    /// into protocol 1 and returned in place of the request's own answer.
    pub async fn recv(&mut self) -> Result<Response, ClientError> {
        if !self.switched {
            frame::read_payload_async(&mut self.reader, &mut self.payload).await?;
            match Dialect::Seed.decode_hello_answer(&self.payload)? {
                Response::Hello { .. } if self.hello_pending => {
                    self.hello_pending = false;
                    self.switched = true;
                }
                other => return Ok(other),
            }
        }
        frame::read_payload_async(&mut self.reader, &mut self.payload).await?;
        Ok(frame::decode(&self.payload)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    /// Regression: a daemon that refuses a connection writes its Error and closes
    /// at once; a client whose request then fails with EPIPE must still report
    /// the refusal, not "broken pipe" (seen in the VM tier).
    #[tokio::test]
    async fn refusal_before_the_request_is_read_despite_broken_pipe() {
        let (client_side, mut daemon_side) = UnixStream::pair().unwrap();
        // Sent at accept, before any Hello: in protocol 0.
        let seed_refusal = crate::seed::Response::Error {
            message: "refused: not your daemon".into(),
        };
        daemon_side
            .write_all(&frame::encode(&seed_refusal).unwrap())
            .await
            .unwrap();
        let refusal = Response::error(ErrorCode::Refused, "refused: not your daemon");
        drop(daemon_side);
        let mut c = Client::from_stream(client_side);
        assert_eq!(c.call(&Request::Ping).await.unwrap(), refusal);
    }
}
