use super::*;

/// RFC 7748 §6.1 (the X25519 test vector), in `wg`'s base64.
#[test]
fn public_keys_match_the_rfc_vector() {
    let hex = |s: &str| -> [u8; 32] {
        let v: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect();
        v.try_into().unwrap()
    };
    let alice = Key(hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"));
    assert_eq!(alice.public(), Key(hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")));
    let bob = Key(hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"));
    assert_eq!(
        bob.public().to_base64(),
        STANDARD.encode(hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"))
    );
}

#[test]
fn keys_look_like_wg_genkey() {
    let k = Key::generate();
    let b64 = k.to_base64();
    assert_eq!(b64.len(), 44);
    assert!(b64.ends_with('='));
    assert_eq!(Key::from_base64(&b64).unwrap(), k);
    assert_eq!(k.0[0] & 7, 0, "clamped");
    assert_eq!(k.0[31] & 0xc0, 0x40, "clamped");
    assert_ne!(Key::generate(), k);
    assert_eq!(format!("{k:?}"), "Key(…)");
    assert!(Key::from_base64("nope").is_err());
    assert!(Key::from_base64("AAAA").is_err());
}

/// With `wg` installed (Debian's wireguard-tools), our public keys are its.
#[test]
fn public_keys_match_wg_pubkey() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let Ok(mut child) = Command::new("wg").arg("pubkey").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn() else {
        eprintln!("skipped: `wg` (wireguard-tools) is not installed");
        return;
    };
    let k = Key::generate();
    child.stdin.take().unwrap().write_all(format!("{}\n", k.to_base64()).as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), k.public().to_base64());
}

#[test]
fn a_thousand_tenants_get_distinct_pools() {
    let range: Ipv4Net = "10.128.0.0/9".parse().unwrap();
    let mut used = BTreeSet::new();
    for i in 0..1000 {
        let p = allocate(range, &used, &format!("team-{i}")).unwrap();
        assert_eq!(p.prefix_len(), 24);
        assert!(range.contains(&p));
        assert!(used.insert(p), "{p} given twice");
    }
    // Stable: the same tenant asks again with its own pool freed, gets it back.
    let p = allocate(range, &BTreeSet::new(), "team-7");
    assert_eq!(p, allocate(range, &BTreeSet::new(), "team-7"));
    // A full range says so.
    let tiny: Ipv4Net = "10.200.0.0/23".parse().unwrap();
    let mut used = BTreeSet::new();
    used.insert(allocate(tiny, &used, "a").unwrap());
    used.insert(allocate(tiny, &used, "b").unwrap());
    assert_eq!(allocate(tiny, &used, "c"), None);
    assert_eq!(allocate("10.0.0.0/25".parse().unwrap(), &BTreeSet::new(), "x"), None);
}

#[test]
fn configs_render_as_golden_files() {
    let pool: Ipv4Net = "10.200.7.0/24".parse().unwrap();
    let server = Key::from_base64("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=").unwrap();
    let client = Key::from_base64("cGFkZG9jay1jbGllbnQta2V5LTAwMDAwMDAwMDAwMDA=").unwrap();
    let psk = Key::from_base64("cGFkZG9jay1wcmVzaGFyZWQta2V5LTAwMDAwMDAwMDA=").unwrap();
    let peers = [Peer { number: 1, public: client.public(), preshared: psk.clone() }];
    let got = server_config(pool, 51820, &server, &peers);
    let want = format!(
        "[Interface]\nAddress = 10.200.7.1/24\nListenPort = 51820\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n\
PostUp = iptables -t nat -A POSTROUTING -s 10.200.7.0/24 -o eth0 -j MASQUERADE; iptables -A FORWARD -i %i -j ACCEPT\n\
PostDown = iptables -t nat -D POSTROUTING -s 10.200.7.0/24 -o eth0 -j MASQUERADE; iptables -D FORWARD -i %i -j ACCEPT\n\
\n[Peer]\n# client 1\nPublicKey = {}\nPresharedKey = cGFkZG9jay1wcmVzaGFyZWQta2V5LTAwMDAwMDAwMDA=\nAllowedIPs = 10.200.7.2/32\n",
        client.public().to_base64()
    );
    assert_eq!(got, want);
    let allowed = vec!["10.244.0.0/16".to_string(), "10.96.0.0/12".to_string()];
    let got = client_config(&Client {
        pool,
        number: 1,
        private: &client,
        preshared: &psk,
        server_public: &server.public(),
        endpoint: "vpn.example.org:31820",
        allowed_ips: &allowed,
        dns: Some("10.96.0.10"),
    });
    let want = format!(
        "[Interface]\nAddress = 10.200.7.2/32\nPrivateKey = cGFkZG9jay1jbGllbnQta2V5LTAwMDAwMDAwMDAwMDA=\nDNS = 10.96.0.10\n\n\
[Peer]\nPublicKey = {}\nPresharedKey = cGFkZG9jay1wcmVzaGFyZWQta2V5LTAwMDAwMDAwMDA=\nEndpoint = vpn.example.org:31820\n\
AllowedIPs = 10.244.0.0/16, 10.96.0.0/12\nPersistentKeepalive = 25\n",
        server.public().to_base64()
    );
    assert_eq!(got, want);
}
