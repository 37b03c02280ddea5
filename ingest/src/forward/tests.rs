use std::io::Write as _;

use serde_json::json;

use super::msgpack::write;
use super::*;

/// `{key: value, ...}` of strings.
fn record(out: &mut Vec<u8>, pairs: &[(&str, &str)]) {
    write::map(out, pairs.len() as u32);
    for (k, v) in pairs {
        write::str(out, k.as_bytes());
        write::str(out, v.as_bytes());
    }
}

fn entry(out: &mut Vec<u8>, seconds: u32, pairs: &[(&str, &str)]) {
    write::array(out, 2);
    write::event_time(out, seconds, 250_000_000);
    record(out, pairs);
}

fn options(out: &mut Vec<u8>, pairs: &[(&str, &str)], size: Option<u64>) {
    write::map(out, (pairs.len() + usize::from(size.is_some())) as u32);
    for (k, v) in pairs {
        write::str(out, k.as_bytes());
        write::str(out, v.as_bytes());
    }
    if let Some(size) = size {
        write::str(out, b"size");
        write::uint(out, size);
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn decode(bytes: &[u8]) -> Result<Frame, String> {
    decode_frame(bytes, &FrameLimits::default())
}

#[test]
fn message_mode_with_integer_float_and_event_time() {
    for (time, expected) in [
        (
            vec![0xce, 0x65, 0x53, 0xf1, 0x00],
            Some(1_700_000_000_000_000),
        ),
        (
            vec![0xcb, 0x41, 0xd9, 0x54, 0xfc, 0x40, 0x10, 0x00, 0x00],
            Some(1_700_000_000_250_000),
        ),
        (
            vec![0xd7, 0x00, 0x65, 0x53, 0xf1, 0x00, 0x00, 0x00, 0x03, 0xe8],
            Some(1_700_000_000_000_001),
        ),
        (vec![0x00], None),
    ] {
        let mut frame = Vec::new();
        write::array(&mut frame, 3);
        write::str(&mut frame, b"docker.web");
        frame.extend_from_slice(&time);
        record(
            &mut frame,
            &[
                ("container_name", "/web"),
                ("source", "stdout"),
                ("log", "GET / 200"),
            ],
        );
        let decoded = decode(&frame).unwrap();
        assert_eq!(decoded.tag, "docker.web");
        assert_eq!(decoded.events.len(), 1, "{decoded:?}");
        assert_eq!(decoded.events[0].time_us, expected);
        assert_eq!(decoded.events[0].record["log"], "GET / 200");
        assert_eq!(decoded.chunk, None);
    }
}

#[test]
fn forward_mode_keeps_good_entries_around_a_bad_one() {
    let mut frame = Vec::new();
    write::array(&mut frame, 3);
    write::str(&mut frame, b"app");
    write::array(&mut frame, 4);
    entry(&mut frame, 1_700_000_000, &[("message", "one")]);
    // A record that is not a map, then a time that is a string.
    write::array(&mut frame, 2);
    write::uint(&mut frame, 1_700_000_001);
    write::str(&mut frame, b"not a map");
    write::array(&mut frame, 2);
    write::str(&mut frame, b"yesterday");
    record(&mut frame, &[("message", "x")]);
    entry(&mut frame, 1_700_000_002, &[("message", "three")]);
    options(&mut frame, &[("chunk", "c2VxMQ==")], Some(4));
    let decoded = decode(&frame).unwrap();
    let messages: Vec<_> = decoded
        .events
        .iter()
        .map(|e| e.record["message"].clone())
        .collect();
    assert_eq!(messages, [json!("one"), json!("three")]);
    assert_eq!(
        decoded.refused,
        [
            "a record must be a map, found a string",
            "the event time must be an integer, a float or an EventTime, found a string",
        ]
    );
    assert_eq!(decoded.chunk.as_deref(), Some(&b"c2VxMQ=="[..]));
    assert_eq!(ack(b"c2VxMQ=="), b"\x81\xa3ack\xa8c2VxMQ==");
}

#[test]
fn packed_and_compressed_packed_forward_read_alike() {
    let mut stream = Vec::new();
    for i in 0..3 {
        entry(
            &mut stream,
            1_700_000_000 + i,
            &[("log", &format!("line {i}"))],
        );
    }
    // Fluent Bit appends one gzip member per flush: two members here.
    let (first, second) = stream.split_at(stream.len() / 2);
    let mut members = gzip(first);
    members.extend(gzip(second));
    for (payload, compressed) in [(stream.clone(), None), (members, Some("gzip"))] {
        let mut frame = Vec::new();
        write::array(&mut frame, 3);
        write::str(&mut frame, b"kube.var.log");
        write::bin(&mut frame, &payload);
        let mut pairs = vec![("chunk", "abc")];
        pairs.extend(compressed.map(|c| ("compressed", c)));
        options(&mut frame, &pairs, Some(3));
        let decoded = decode(&frame).unwrap();
        assert_eq!(decoded.events.len(), 3, "{compressed:?}");
        assert_eq!(decoded.events[2].record["log"], "line 2");
        assert_eq!(decoded.events[2].time_us, Some(1_700_000_002_250_000));
        assert_eq!(decoded.chunk.as_deref(), Some(&b"abc"[..]));
    }
}

#[test]
fn broken_frames_say_what_is_wrong() {
    let packed = |payload: &[u8], opts: &[(&str, &str)], size: Option<u64>| {
        let mut frame = Vec::new();
        write::array(&mut frame, 3);
        write::str(&mut frame, b"t");
        write::bin(&mut frame, payload);
        options(&mut frame, opts, size);
        frame
    };
    let mut one = Vec::new();
    entry(&mut one, 1, &[("log", "x")]);
    let cut = &one[..one.len() - 1];
    let limits = FrameLimits {
        max_depth: 10,
        max_decompressed: 100,
    };
    let bomb = gzip(&vec![0u8; 10_000]);
    for (frame, reason) in [
        (b"\x91\xa1t".to_vec(), "an array of 2 to 4 elements"),
        (b"\xa3abc".to_vec(), "found a string"),
        (
            b"\x92\x01\x90".to_vec(),
            "the tag must be a string, found an integer",
        ),
        (b"\x92\xa1t\xc0".to_vec(), "found nil"),
        (
            packed(cut, &[], None),
            "packed entries are broken at byte 0: truncated",
        ),
        (
            packed(b"\x1f\x8b\x08\x00junk", &[("compressed", "gzip")], None),
            "not valid gzip",
        ),
        (
            packed(&bomb, &[("compressed", "gzip")], None),
            "more than limits.max_decompressed_body (100 bytes)",
        ),
        (
            packed(&one, &[("compressed", "zstd")], None),
            "\"zstd\" is not a compression",
        ),
        (
            packed(&one, &[], Some(2)),
            "the size option says 2 events, the frame holds 1",
        ),
    ] {
        let err = decode_frame(&frame, &limits).unwrap_err();
        assert!(err.contains(reason), "{err:?} does not say {reason:?}");
    }
    // Well-formed but too deep: that entry alone is refused.
    let mut deep = Vec::new();
    write::array(&mut deep, 2);
    write::uint(&mut deep, 1);
    write::map(&mut deep, 1);
    write::str(&mut deep, b"a");
    deep.extend([0x91; 50]);
    deep.push(0xc0);
    deep.extend_from_slice(&one);
    let decoded = decode_frame(&packed(&deep, &[], Some(2)), &limits).unwrap();
    assert_eq!(decoded.events.len(), 1);
    assert_eq!(decoded.refused, ["nested deeper than query.max_depth (10)"]);
}

fn pipeline(config: ForwardConfig) -> Arc<Forward> {
    Forward::new(
        config,
        Normalizer::default(),
        &crate::limits::Limits::default(),
        || None,
    )
}

#[test]
fn the_tag_or_a_field_names_the_service() {
    let mut bytes = Vec::new();
    write::array(&mut bytes, 3);
    write::str(&mut bytes, b"docker.checkout");
    write::uint(&mut bytes, 1_700_000_000);
    record(
        &mut bytes,
        &[("log", "paid"), ("app", "shop"), ("level", "warn")],
    );
    let stats = ListenerStats::new("forward", "tcp");
    let peer: SocketAddr = ([127, 0, 0, 1], 1).into();
    let by_tag = pipeline(ForwardConfig::default());
    let records = by_tag.records(decode(&bytes).unwrap(), &stats, peer);
    assert_eq!(records[0].service, "docker.checkout");
    assert_eq!(records[0].message, "paid");
    assert_eq!(records[0].level, sextant_model::Level::Warn);
    assert_eq!(records[0].timestamp_us, 1_700_000_000_000_000);
    assert!(!records[0].fields.contains_key("tag"));

    let by_field = pipeline(ForwardConfig {
        service_from: "app".to_owned(),
        ..ForwardConfig::default()
    });
    let records = by_field.records(decode(&bytes).unwrap(), &stats, peer);
    assert_eq!(records[0].service, "shop");
    assert_eq!(
        records[0].fields["tag"],
        sextant_model::FieldValue::Str("docker.checkout".into())
    );
}

#[test]
fn the_handshake_digest_is_fluentds() {
    // sha512("salt" + "client" + "nonce" + "key"), as Ruby's Digest::SHA512.hexdigest gives it.
    let expected = ring::digest::digest(&ring::digest::SHA512, b"saltclientnoncekey");
    let hex: String = expected
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(digest(&[b"salt", b"client", b"nonce", b"key"]), hex);
    assert_eq!(hex.len(), 128);
}

#[tokio::test]
async fn a_wrong_shared_key_gets_pong_false_and_the_right_one_pong_true() {
    let forward = pipeline(ForwardConfig {
        shared_key: Some("k3y".to_owned()),
        hostname: Some("sextant-test".to_owned()),
        ..ForwardConfig::default()
    });
    for (key, accepted) in [("k3y", true), ("wrong", false)] {
        let (mut client, server) = tokio::io::duplex(4096);
        let f = forward.clone();
        let handshake = tokio::spawn(async move {
            let mut server = server;
            f.handshake(&mut server, "k3y").await
        });
        let mut helo = vec![0u8; 1024];
        let n = client.read(&mut helo).await.unwrap();
        let mut r = Reader::new(&helo[..n], 4);
        assert_eq!(r.marker().unwrap(), Marker::Array(2));
        assert_eq!(r.bytes("type").unwrap(), b"HELO");
        let options = r.json().unwrap();
        assert_eq!(options["keepalive"], true);
        assert_eq!(options["auth"], "");
        // The nonce went out as a 16-byte binary; take it as sent.
        let nonce_at = helo[..n].windows(2).position(|w| w == [0xc4, 16]).unwrap();
        let nonce = helo[nonce_at + 2..nonce_at + 18].to_vec();
        let mut ping = Vec::new();
        write::array(&mut ping, 6);
        write::str(&mut ping, b"PING");
        write::str(&mut ping, b"client-1");
        write::str(&mut ping, b"s4lt");
        write::str(
            &mut ping,
            digest(&[b"s4lt", b"client-1", &nonce, key.as_bytes()]).as_bytes(),
        );
        write::str(&mut ping, b"");
        write::str(&mut ping, b"");
        client.write_all(&ping).await.unwrap();
        let outcome = handshake.await.unwrap();
        let mut pong = vec![0u8; 1024];
        let n = client.read(&mut pong).await.unwrap();
        let mut r = Reader::new(&pong[..n], 4);
        assert_eq!(r.marker().unwrap(), Marker::Array(5));
        assert_eq!(r.bytes("type").unwrap(), b"PONG");
        assert_eq!(r.marker().unwrap(), Marker::Bool(accepted));
        let reason = r.bytes("reason").unwrap().to_vec();
        assert_eq!(r.bytes("host").unwrap(), b"sextant-test");
        let theirs = r.bytes("digest").unwrap().to_vec();
        if accepted {
            assert!(outcome.is_ok(), "{outcome:?}");
            assert!(reason.is_empty());
            let ours = digest(&[b"s4lt", b"sextant-test", &nonce, b"k3y"]);
            assert_eq!(theirs, ours.as_bytes());
        } else {
            assert_eq!(reason, b"shared_key mismatch");
            let err = outcome.unwrap_err();
            assert!(err.contains("wrong shared key"), "{err}");
        }
    }
}

#[test]
fn the_config_section_reads_and_refuses_unknown_keys() {
    let config: crate::logs::LogsConfig = serde_norway::from_str(
        "forward:\n  service_from: container_name\n  shared_key: s3cret\n  allowed_sources: ['10.0.0.0/8', '::1']\n",
    )
    .unwrap();
    let forward = config.forward;
    assert_eq!(forward.service_from, "container_name");
    assert_eq!(forward.shared_key.as_deref(), Some("s3cret"));
    let pipeline = pipeline(forward);
    assert!(pipeline.allowed(([10, 1, 2, 3], 24224).into()));
    assert!(pipeline.allowed((std::net::Ipv6Addr::LOCALHOST, 1).into()));
    assert!(!pipeline.allowed(([192, 168, 0, 1], 24224).into()));
    assert_eq!(
        serde_norway::from_str::<crate::logs::LogsConfig>("{}")
            .unwrap()
            .forward,
        ForwardConfig::default()
    );
    let err = serde_norway::from_str::<crate::logs::LogsConfig>("forward:\n  sharedkey: s\n")
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown field `sharedkey`"),
        "{err}"
    );
}
