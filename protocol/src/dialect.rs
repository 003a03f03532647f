//! Which protocol a connection speaks, and the translation at its edge.
//!
//! Every connection starts on protocol 0 ([`Dialect::Seed`]), the seed's wire
//! ([`crate::seed`]), so clients built from the seed's definitions work without
//! knowing anything else. [`Request::Hello`] `{ protocol: 1 }` switches a
//! connection to protocol 1 ([`Dialect::Current`], the types at the crate root)
//! for the rest of its life. `Hello` is request and response index 25 in both.
//!
//! The daemon only ever handles protocol-1 values: [`Dialect::decode_request`]
//! lifts what arrives, [`Dialect::encode_response`] lowers what leaves.

use crate::frame::{self, FrameError};
use crate::{seed, ErrorCode, Request, Response};

/// Protocol 0: the seed's wire, spoken by every connection until a `Hello`.
pub const PROTOCOL_SEED: u32 = 0;

/// Protocol 1: the types at the crate root.
pub const PROTOCOL_CURRENT: u32 = 1;

/// Variant index of `Request::Hello` and `Response::Hello` in every protocol.
pub const HELLO_INDEX: u8 = 25;

/// Request indices that exist in protocol 1 only (refused on protocol 0 with an
/// error that says to send `Hello` first).
const CURRENT_ONLY: [u8; 2] = [23, 24];

/// A connection's protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dialect {
    /// Protocol 0, the seed's wire.
    #[default]
    Seed,
    /// Protocol 1.
    Current,
}

/// What a request frame turned out to be.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    /// A request to handle (a `Hello` included), in its protocol-1 form.
    Request(Request),
    /// A well-formed frame that cannot be handled on this connection: answer
    /// `Error { code: Invalid, message }` and keep serving.
    Refuse(String),
}

impl Dialect {
    /// The dialect of a protocol number, when it is one this crate speaks.
    pub fn from_protocol(protocol: u32) -> Option<Self> {
        match protocol {
            PROTOCOL_SEED => Some(Dialect::Seed),
            PROTOCOL_CURRENT => Some(Dialect::Current),
            _ => None,
        }
    }

    /// Its protocol number.
    pub fn protocol(self) -> u32 {
        match self {
            Dialect::Seed => PROTOCOL_SEED,
            Dialect::Current => PROTOCOL_CURRENT,
        }
    }

    /// Decodes a request payload of this dialect. An `Err` is a bad frame (the
    /// connection is closed after the error); a [`Incoming::Refuse`] is not.
    pub fn decode_request(self, payload: &[u8]) -> Result<Incoming, FrameError> {
        match self {
            Dialect::Current => frame::decode::<Request>(payload).map(Incoming::Request),
            Dialect::Seed => match payload.first() {
                Some(&HELLO_INDEX) => frame::decode::<Request>(payload).map(Incoming::Request),
                Some(&i) if CURRENT_ONLY.contains(&i) => {
                    let name = if i == 23 {
                        "CommandLogsFrom"
                    } else {
                        "WorkspaceDescribe"
                    };
                    Ok(Incoming::Refuse(format!(
                        "{name} (request {i}) is part of protocol 1, and this connection speaks \
                         protocol 0 (the seed's wire): send Hello {{ protocol: 1 }} first \
                         (protocol/SPEC.md section 4.1)"
                    )))
                }
                _ => {
                    let r: seed::Request = frame::decode(payload)?;
                    Ok(match r.into_current() {
                        Ok(r) => Incoming::Request(r),
                        Err(message) => Incoming::Refuse(message),
                    })
                }
            },
        }
    }

    /// Appends the whole frame of `response`, in this dialect, to `out`.
    pub fn encode_response(self, response: Response, out: &mut Vec<u8>) -> Result<(), FrameError> {
        match (self, response) {
            (Dialect::Current, r) | (Dialect::Seed, r @ Response::Hello { .. }) => {
                frame::encode_into(&r, out)
            }
            (Dialect::Seed, r) => frame::encode_into(&seed::Response::from(r), out),
        }
    }

    /// The answer to a `Hello` sent on a connection of this dialect, as a
    /// client reads it: `Response::Hello`, or an `Error` lifted into protocol 1
    /// (on protocol 0 its code comes from the message, see
    /// [`seed::Response::into_current_error`]).
    pub fn decode_hello_answer(self, payload: &[u8]) -> Result<Response, FrameError> {
        if self == Dialect::Current || payload.first() == Some(&HELLO_INDEX) {
            return frame::decode(payload);
        }
        let r: seed::Response = match frame::decode(payload) {
            Ok(r) => r,
            Err(e) => {
                // A daemon older than Hello (0.1.0) refuses index 25 with its
                // own Error, which has a code: say so instead of "bad frame".
                if let Ok(Response::Error { .. }) = frame::decode::<Response>(payload) {
                    return Ok(Response::error(
                        ErrorCode::Unsupported,
                        "this shipoted predates protocol negotiation (Hello, 0.2.0); \
                         restart it with the installed version (systemctl --user restart shipote)",
                    ));
                }
                return Err(e);
            }
        };
        Ok(r.into_current_error().unwrap_or_else(|| {
            Response::error(
                ErrorCode::Internal,
                "the daemon answered Hello with something other than Hello or Error",
            )
        }))
    }
}

/// At most 64 characters of `s`, for echoing client input in an error.
pub(crate) fn shorten(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LogStream, Ulid, WorkspaceId};

    fn payload(frame: Vec<u8>) -> Vec<u8> {
        frame[frame::HEADER_BYTES..].to_vec()
    }

    #[test]
    fn seed_run_is_lifted_with_no_cwd() {
        let ws = WorkspaceId(Ulid(7));
        let seed = seed::Request::Run {
            workspace: ws,
            exec: "true".into(),
            argv: vec![],
            envp: vec![],
            restart_on_failure: false,
        };
        let got = Dialect::Seed
            .decode_request(&payload(frame::encode(&seed).unwrap()))
            .unwrap();
        assert_eq!(
            got,
            Incoming::Request(Request::Run {
                workspace: ws,
                exec: "true".into(),
                argv: vec![],
                envp: vec![],
                restart_on_failure: false,
                cwd: None,
            })
        );
        // The same bytes are not a protocol-1 Run (no cwd): a bad frame there.
        assert!(Dialect::Current
            .decode_request(&payload(frame::encode(&seed).unwrap()))
            .is_err());
    }

    #[test]
    fn seed_streams() {
        for (s, want) in [
            ("", LogStream::Both),
            ("both", LogStream::Both),
            ("stdout", LogStream::Stdout),
            ("STDERR", LogStream::Stderr),
        ] {
            assert_eq!(seed::parse_stream(s), Ok(want));
        }
        let req = seed::Request::CommandLogs {
            workspace: WorkspaceId(Ulid(1)),
            command: Ulid(2),
            tail_bytes: 10,
            stream: "stdin".into(),
        };
        match Dialect::Seed
            .decode_request(&payload(frame::encode(&req).unwrap()))
            .unwrap()
        {
            Incoming::Refuse(m) => assert!(m.contains("\"stdin\" is not a stream"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hello_and_current_only_requests_on_a_seed_connection() {
        let hello = payload(frame::encode(&Request::Hello { protocol: 1 }).unwrap());
        assert_eq!(hello, [25, 1]);
        assert_eq!(
            Dialect::Seed.decode_request(&hello).unwrap(),
            Incoming::Request(Request::Hello { protocol: 1 })
        );
        let describe = payload(
            frame::encode(&Request::WorkspaceDescribe {
                id: WorkspaceId(Ulid(1)),
            })
            .unwrap(),
        );
        match Dialect::Seed.decode_request(&describe).unwrap() {
            Incoming::Refuse(m) => assert!(m.contains("send Hello { protocol: 1 }"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(Dialect::Seed.decode_request(&[26]).is_err());
    }

    #[test]
    fn a_daemon_older_than_hello_is_named() {
        // 0.1.0 answered an unknown index with a protocol-1 Error (a code).
        let old =
            payload(frame::encode(&Response::error(ErrorCode::Invalid, "bad frame")).unwrap());
        match Dialect::Seed.decode_hello_answer(&old).unwrap() {
            Response::Error {
                code: ErrorCode::Unsupported,
                message,
            } => assert!(
                message.contains("predates protocol negotiation"),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn busy_and_refused_errors_keep_their_code_as_a_prefix_on_the_seed_wire() {
        let lowered = seed::Response::from(Response::error(ErrorCode::Busy, "shutting down"));
        assert_eq!(
            lowered,
            seed::Response::Error {
                message: "busy: shutting down".into()
            }
        );
        let lowered = seed::Response::from(Response::error(ErrorCode::Busy, "busy: already"));
        assert_eq!(
            lowered,
            seed::Response::Error {
                message: "busy: already".into()
            }
        );
    }

    #[test]
    fn errors_lose_their_code_on_the_seed_wire_and_hello_keeps_its_bytes() {
        let mut out = Vec::new();
        Dialect::Seed
            .encode_response(Response::error(ErrorCode::NotFound, "gone"), &mut out)
            .unwrap();
        assert_eq!(out, [0, 0, 0, 6, 22, 4, b'g', b'o', b'n', b'e']);
        let hello = Response::Hello {
            protocol: 1,
            version: "1".into(),
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        Dialect::Seed
            .encode_response(hello.clone(), &mut a)
            .unwrap();
        Dialect::Current
            .encode_response(hello.clone(), &mut b)
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(Dialect::Seed.decode_hello_answer(&a[4..]).unwrap(), hello);
        let refusal = payload(
            frame::encode(&seed::Response::Error {
                message: "busy: too many".into(),
            })
            .unwrap(),
        );
        assert!(matches!(
            Dialect::Seed.decode_hello_answer(&refusal).unwrap(),
            Response::Error {
                code: ErrorCode::Busy,
                ..
            }
        ));
    }

    #[test]
    fn signal_deaths_read_as_128_plus_the_signal_on_the_seed_wire() {
        let c = crate::CommandInfo {
            id: Ulid(1),
            label: "x".into(),
            pid: 5,
            alive: false,
            exit_status: None,
            exit_signal: Some(15),
            restarts: 0,
            failure: None,
            log_bytes: 0,
        };
        assert_eq!(seed::CommandInfo::from(c).exit_status, Some(143));
    }
}
