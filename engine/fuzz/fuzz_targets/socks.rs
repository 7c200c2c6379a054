//! The sans-IO SOCKS5 server (`engine::socks::SocksServer`) on arbitrary client bytes.
//!
//! Input: `cut | stream`. The stream is fed whole, then one byte at a time, then in pieces
//! of `cut % 32 + 1` bytes; all three must give the same replies, the same request, the same
//! consumed count (bytes after the request are left for the stream) and the same error.
#![no_main]

use std::net::SocketAddr;

use kistrel_engine::socks::{ConnectRequest, SocksError, SocksProgress, SocksReply, SocksServer};
use libfuzzer_sys::fuzz_target;

type Outcome = (Vec<u8>, Result<Option<(ConnectRequest, usize)>, SocksError>);

fn feed(stream: &[u8], piece: usize) -> Outcome {
    let mut server = SocksServer::new();
    let mut output = Vec::new();
    let mut consumed = 0;
    for chunk in stream.chunks(piece.max(1)) {
        let result = server.handle(chunk);
        server.take_output(&mut output);
        match result {
            Ok((n, SocksProgress::NeedMore)) => {
                assert_eq!(n, chunk.len(), "NeedMore consumes everything");
                consumed += n;
            }
            Ok((n, SocksProgress::Request(req))) => {
                assert!(n >= 1 && n <= chunk.len());
                // After the request, handle refuses more bytes; a reply ends or opens.
                assert_eq!(server.handle(b"x"), Err(SocksError::HandshakeOver));
                let bound: SocketAddr = "0.0.0.0:0".parse().expect("literal");
                let mut probe = Vec::new();
                server.reply(SocksReply::Succeeded, bound);
                server.take_output(&mut probe);
                assert_eq!(probe.len(), 10, "an IPv4 request reply");
                assert!(server.is_open());
                return (output, Ok(Some((req, consumed + n))));
            }
            Err(err) => {
                assert_eq!(server.handle(b"x"), Err(SocksError::HandshakeOver));
                return (output, Err(err));
            }
        }
    }
    (output, Ok(None))
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let whole = feed(stream, stream.len());
    assert_eq!(whole, feed(stream, 1), "byte-at-a-time differs");
    assert_eq!(
        whole,
        feed(stream, usize::from(cut % 32) + 1),
        "chunking differs"
    );
    if let Ok(Some((req, _))) = &whole.1 {
        if let kistrel_engine::socks::TargetAddr::Domain(name) = &req.target {
            assert!(!name.is_empty() && name.len() <= 255 && !name.contains('\0'));
        }
    }
});
