//! The daemon's side of the socket, short of the supervisor: any payload, in
//! either protocol, is decoded (or refused) without a panic; what decodes is
//! audited (the audit detail is built), lifted, and survives a round trip; any
//! response lowers into the seed's form and encodes within the frame limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shipote::daemon::audit;
use shipote_protocol::dialect::{Dialect, Incoming};
use shipote_protocol::{frame, seed, Request, Response};

fuzz_target!(|data: &[u8]| {
    if data.len() >= frame::HEADER_BYTES {
        let mut header = [0u8; frame::HEADER_BYTES];
        header.copy_from_slice(&data[..frame::HEADER_BYTES]);
        let _ = frame::payload_len(header);
    }
    for dialect in [Dialect::Seed, Dialect::Current] {
        if let Ok(Incoming::Request(request)) = dialect.decode_request(data) {
            let _ = audit::action_of(&request);
            let _ = request.name();
            if !matches!(request, Request::Hello { .. }) && dialect == Dialect::Current {
                let bytes = frame::encode(&request).expect("a decoded request encodes");
                let back: Request = frame::decode(&bytes[frame::HEADER_BYTES..]).unwrap();
                assert_eq!(back, request, "round trip");
            }
        }
        let _ = dialect.decode_hello_answer(data);
    }
    if let Ok(response) = frame::decode::<Response>(data) {
        let mut out = Vec::new();
        let _ = Dialect::Seed.encode_response(response.clone(), &mut out);
        let _ = seed::Response::from(response);
    }
    if let Ok(r) = frame::decode::<seed::Request>(data) {
        let _ = r.into_current();
    }
});
