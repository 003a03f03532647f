//! Framing: a u32 big-endian payload length, then that many bytes of postcard.
//!
//! The limit [`MAX_FRAME_BYTES`] is checked when writing (an oversized message is
//! never sent) and when reading (an oversized length prefix is refused before any
//! buffer is allocated). A payload must decode to exactly one message: trailing
//! bytes are an error.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{self, Read, Write};

/// Largest payload accepted or sent, in bytes (1 MiB).
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// Size of the length prefix, in bytes.
pub const HEADER_BYTES: usize = 4;

/// Why a frame could not be read, decoded, encoded or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix (or an outgoing message) exceeds [`MAX_FRAME_BYTES`].
    #[error("frame of {len} bytes exceeds the limit of {MAX_FRAME_BYTES} bytes")]
    TooLarge {
        /// The announced or encoded length.
        len: u64,
    },
    /// The peer closed the connection cleanly between frames.
    #[error("connection closed")]
    Closed,
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed after {got} of {expected} bytes of a frame")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes announced (header included).
        expected: usize,
    },
    /// The payload is not a valid message.
    #[error("payload is not a valid message: {0}")]
    Decode(postcard::Error),
    /// The payload decoded but left bytes over.
    #[error("payload has {0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// The message could not be encoded.
    #[error("message cannot be encoded: {0}")]
    Encode(postcard::Error),
    /// Reading or writing the stream failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Validates a length prefix and returns the payload length.
pub fn payload_len(header: [u8; HEADER_BYTES]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header);
    if len as usize > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge { len: len.into() });
    }
    Ok(len as usize)
}

/// Appends a whole frame (header and payload) for `msg` to `out`.
pub fn encode_into<T: Serialize>(msg: &T, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    let mut buf = std::mem::take(out);
    buf = postcard::to_extend(msg, buf).map_err(FrameError::Encode)?;
    let len = buf.len() - start - HEADER_BYTES;
    if len > MAX_FRAME_BYTES {
        buf.truncate(start);
        *out = buf;
        return Err(FrameError::TooLarge { len: len as u64 });
    }
    buf[start..start + HEADER_BYTES].copy_from_slice(&(len as u32).to_be_bytes());
    *out = buf;
    Ok(())
}

/// A whole frame (header and payload) for `msg`.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(64);
    encode_into(msg, &mut out)?;
    Ok(out)
}

/// Decodes a payload (without its header) into exactly one message.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    let (msg, rest) = postcard::take_from_bytes(payload).map_err(FrameError::Decode)?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes(rest.len()));
    }
    Ok(msg)
}

/// Writes one frame to a blocking stream.
pub fn write_frame<W: Write, T: Serialize>(w: &mut W, msg: &T) -> Result<(), FrameError> {
    let bytes = encode(msg)?;
    w.write_all(&bytes)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame from a blocking stream.
pub fn read_frame<R: Read, T: DeserializeOwned>(r: &mut R) -> Result<T, FrameError> {
    let mut buf = Vec::new();
    read_payload(r, &mut buf)?;
    decode(&buf)
}

/// Reads one frame's payload from a blocking stream into `buf` (replacing its
/// contents).
pub fn read_payload<R: Read>(r: &mut R, buf: &mut Vec<u8>) -> Result<(), FrameError> {
    let mut header = [0u8; HEADER_BYTES];
    let got = read_full(r, &mut header)?;
    if got == 0 {
        return Err(FrameError::Closed);
    }
    if got < HEADER_BYTES {
        return Err(FrameError::Truncated {
            got,
            expected: HEADER_BYTES,
        });
    }
    let len = payload_len(header)?;
    buf.clear();
    buf.resize(len, 0);
    let got = read_full(r, buf)?;
    if got < len {
        return Err(FrameError::Truncated {
            got: HEADER_BYTES + got,
            expected: HEADER_BYTES + len,
        });
    }
    Ok(())
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(feature = "tokio")]
mod async_io {
    use super::*;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    /// Writes one frame to an async stream.
    pub async fn write_frame_async<W, T>(w: &mut W, msg: &T) -> Result<(), FrameError>
    where
        W: AsyncWrite + Unpin,
        T: Serialize,
    {
        let bytes = encode(msg)?;
        w.write_all(&bytes).await?;
        w.flush().await?;
        Ok(())
    }

    /// Reads one frame from an async stream.
    pub async fn read_frame_async<R, T>(r: &mut R) -> Result<T, FrameError>
    where
        R: AsyncRead + Unpin,
        T: DeserializeOwned,
    {
        let mut buf = Vec::new();
        read_payload_async(r, &mut buf).await?;
        decode(&buf)
    }

    /// Reads one frame's payload from an async stream into `buf` (replacing its
    /// contents). Cancel-safe only between frames: dropping the future after the
    /// header arrived loses the frame.
    pub async fn read_payload_async<R>(r: &mut R, buf: &mut Vec<u8>) -> Result<(), FrameError>
    where
        R: AsyncRead + Unpin,
    {
        let mut header = [0u8; HEADER_BYTES];
        let got = read_full_async(r, &mut header).await?;
        if got == 0 {
            return Err(FrameError::Closed);
        }
        if got < HEADER_BYTES {
            return Err(FrameError::Truncated {
                got,
                expected: HEADER_BYTES,
            });
        }
        read_body_async(r, header, buf).await
    }

    /// Reads the payload announced by an already-read `header` into `buf`.
    pub async fn read_body_async<R>(
        r: &mut R,
        header: [u8; HEADER_BYTES],
        buf: &mut Vec<u8>,
    ) -> Result<(), FrameError>
    where
        R: AsyncRead + Unpin,
    {
        let len = payload_len(header)?;
        buf.clear();
        buf.resize(len, 0);
        let got = read_full_async(r, buf).await?;
        if got < len {
            return Err(FrameError::Truncated {
                got: HEADER_BYTES + got,
                expected: HEADER_BYTES + len,
            });
        }
        Ok(())
    }

    async fn read_full_async<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match r.read(&mut buf[got..]).await? {
                0 => break,
                n => got += n,
            }
        }
        Ok(got)
    }
}

#[cfg(feature = "tokio")]
pub use async_io::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Request, Response};

    #[test]
    fn roundtrip_blocking() {
        let mut wire = Vec::new();
        write_frame(&mut wire, &Request::Ping).unwrap();
        assert_eq!(wire, [0, 0, 0, 1, 0]);
        let back: Request = read_frame(&mut wire.as_slice()).unwrap();
        assert_eq!(back, Request::Ping);
    }

    #[test]
    fn huge_length_prefix_is_refused_before_allocating() {
        let wire = [0xff, 0xff, 0xff, 0xff];
        let mut buf = Vec::new();
        let err = read_payload(&mut wire.as_slice(), &mut buf).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { len: 0xffff_ffff }),
            "{err}"
        );
        assert_eq!(
            buf.capacity(),
            0,
            "nothing may be allocated for a refused frame"
        );
    }

    #[test]
    fn limit_is_inclusive() {
        let mut header = (MAX_FRAME_BYTES as u32).to_be_bytes();
        assert_eq!(payload_len(header).unwrap(), MAX_FRAME_BYTES);
        header = (MAX_FRAME_BYTES as u32 + 1).to_be_bytes();
        assert!(payload_len(header).is_err());
    }

    #[test]
    fn oversized_message_is_not_written() {
        let msg = Request::Discern {
            sample: vec![7; MAX_FRAME_BYTES],
            hint_path: None,
        };
        let mut wire = Vec::new();
        let err = write_frame(&mut wire, &msg).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }), "{err}");
        assert!(wire.is_empty(), "no partial frame may be written");
        let mut out = vec![1, 2, 3];
        assert!(encode_into(&msg, &mut out).is_err());
        assert_eq!(out, [1, 2, 3], "encode_into leaves the buffer as it was");
    }

    #[test]
    fn truncated_frames_are_reported() {
        let err = read_payload(&mut [0u8, 0].as_slice(), &mut Vec::new()).unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::Truncated {
                    got: 2,
                    expected: 4
                }
            ),
            "{err}"
        );
        let err = read_payload(&mut [0u8, 0, 0, 9, 1, 2].as_slice(), &mut Vec::new()).unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::Truncated {
                    got: 6,
                    expected: 13
                }
            ),
            "{err}"
        );
        let err = read_payload(&mut [].as_slice(), &mut Vec::new()).unwrap_err();
        assert!(matches!(err, FrameError::Closed), "{err}");
    }

    #[test]
    fn garbage_and_unknown_variants_fail_to_decode() {
        assert!(matches!(
            decode::<Request>(&[200]),
            Err(FrameError::Decode(_))
        ));
        assert!(matches!(decode::<Request>(&[]), Err(FrameError::Decode(_))));
        assert!(matches!(
            decode::<Request>(&[0, 0]),
            Err(FrameError::TrailingBytes(1))
        ));
        // WorkspaceStop whose id string is not a ULID.
        assert!(matches!(
            decode::<Request>(&[4, 2, b'x', b'y', 0]),
            Err(FrameError::Decode(_))
        ));
        assert!(decode::<Response>(&[0xff, 0xff, 0xff]).is_err());
    }

    #[tokio::test]
    async fn roundtrip_async() {
        let (mut a, mut b) = tokio::io::duplex(64);
        write_frame_async(&mut a, &Response::Pong).await.unwrap();
        let back: Response = read_frame_async(&mut b).await.unwrap();
        assert_eq!(back, Response::Pong);
        drop(a);
        let err = read_frame_async::<_, Response>(&mut b).await.unwrap_err();
        assert!(matches!(err, FrameError::Closed));
    }
}
