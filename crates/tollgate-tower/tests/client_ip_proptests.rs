//! Client-IP resolution against a naive model: the peer unless it is trusted; then the
//! rightmost untrusted address of the header (the leftmost if all are trusted), and the peer
//! again if any entry is malformed. Arbitrary header bytes never panic.

use std::net::{IpAddr, Ipv4Addr};

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use tollgate_tower::TrustedProxies;

/// Addresses from a small pool so that trusted and untrusted ones mix: 10.0.0.0/30 is
/// trusted, 192.0.2.0/30 is not.
fn address() -> impl Strategy<Value = IpAddr> {
    (prop::bool::ANY, 0u8..4).prop_map(|(trusted, host)| {
        let net = if trusted { [10, 0, 0] } else { [192, 0, 2] };
        IpAddr::V4(Ipv4Addr::new(net[0], net[1], net[2], host))
    })
}

/// An entry of the chain: an address (maybe with a port), or junk.
fn entry() -> impl Strategy<Value = (Option<IpAddr>, String)> {
    prop_oneof![
        8 => (address(), prop::option::of(1u16..)).prop_map(|(ip, port)| {
            let text = match port {
                Some(port) => format!("{ip}:{port}"),
                None => ip.to_string(),
            };
            (Some(ip), text)
        }),
        1 => "[a-z_ ]{0,6}".prop_map(|junk| (None, junk)),
    ]
}

fn proxies() -> TrustedProxies {
    TrustedProxies::new(["10.0.0.0/30"]).expect("valid")
}

fn model(peer: IpAddr, chain: &[(Option<IpAddr>, String)]) -> IpAddr {
    let trusted = |ip: &IpAddr| matches!(ip, IpAddr::V4(v4) if v4.octets()[..3] == [10, 0, 0]);
    if !trusted(&peer) || chain.is_empty() {
        return peer;
    }
    let mut leftmost = peer;
    for (ip, text) in chain.iter().rev() {
        let Some(ip) = ip else {
            return peer;
        };
        if text.trim().is_empty() {
            return peer;
        }
        if !trusted(ip) {
            return *ip;
        }
        leftmost = *ip;
    }
    leftmost
}

proptest! {
    #[test]
    fn resolution_matches_the_model(
        peer in address(),
        chain in prop::collection::vec(entry(), 0..6),
        lines in 1usize..3,
    ) {
        // The chain, split over `lines` header lines.
        let mut headers = HeaderMap::new();
        let per_line = chain.len().div_ceil(lines).max(1);
        for part in chain.chunks(per_line) {
            let text: Vec<&str> = part.iter().map(|(_, text)| text.as_str()).collect();
            let value = HeaderValue::from_str(&text.join(", ")).expect("printable");
            headers.append("x-forwarded-for", value);
        }
        prop_assert_eq!(proxies().resolve(peer, &headers), model(peer, &chain));
    }

    #[test]
    fn an_untrusted_peer_is_always_the_client(
        last in 0u8..4,
        values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..4),
    ) {
        let peer = IpAddr::V4(Ipv4Addr::new(192, 0, 2, last));
        let mut headers = HeaderMap::new();
        for value in &values {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                for name in ["x-forwarded-for", "forwarded", "x-real-ip"] {
                    headers.append(name, value.clone());
                }
            }
        }
        prop_assert_eq!(proxies().resolve(peer, &headers), peer);
    }

    #[test]
    fn arbitrary_header_bytes_never_panic(
        values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..60), 0..4),
    ) {
        let mut headers = HeaderMap::new();
        for value in &values {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.append("x-forwarded-for", value);
            }
        }
        let peer = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let client = proxies().resolve(peer, &headers);
        // Whatever came back is the peer or an address written in the header.
        let written = values.iter().any(|v| String::from_utf8_lossy(v).contains(&client.to_string()));
        prop_assert!(client == peer || written);
    }
}
