//! WireGuard for Paddock's team VPN, with no IO: key pairs and preshared keys
//! in the exact form `wg genkey` / `wg pubkey` / `wg genpsk` print, the
//! server's and the clients' configuration files, and the allocation of a /24
//! per tenant out of an address range.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ipnet::Ipv4Net;
use rand::RngCore;
use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::Ipv4Addr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("not a WireGuard key: {0}")]
    BadKey(&'static str),
}

/// A Curve25519 key (private, public or preshared). Its Debug output never
/// shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(…)")
    }
}

impl Key {
    /// A new private key, clamped as `wg genkey` prints it.
    pub fn generate() -> Key {
        let mut b = [0u8; 32];
        rand::rng().fill_bytes(&mut b);
        b[0] &= 248;
        b[31] &= 127;
        b[31] |= 64;
        Key(b)
    }

    /// A new preshared key (`wg genpsk`: 32 random bytes).
    pub fn preshared() -> Key {
        let mut b = [0u8; 32];
        rand::rng().fill_bytes(&mut b);
        Key(b)
    }

    /// The public key of this private key (`wg pubkey`).
    pub fn public(&self) -> Key {
        let secret = x25519_dalek::StaticSecret::from(self.0);
        Key(x25519_dalek::PublicKey::from(&secret).to_bytes())
    }

    /// Base64 with padding, 44 characters.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    pub fn from_base64(s: &str) -> Result<Key, Error> {
        let b = STANDARD.decode(s.trim()).map_err(|_| Error::BadKey("not base64"))?;
        let b: [u8; 32] = b.try_into().map_err(|_| Error::BadKey("not 32 bytes"))?;
        Ok(Key(b))
    }
}

/// A /24 of `range` for `tenant` that is not in `used`: the one its name
/// hashes to if free (so allocations are stable and mostly independent of
/// order), else the next free one. None when the range is full or smaller
/// than a /24.
pub fn allocate(range: Ipv4Net, used: &BTreeSet<Ipv4Net>, tenant: &str) -> Option<Ipv4Net> {
    if range.prefix_len() > 24 {
        return None;
    }
    let count = 1u64 << (24 - range.prefix_len());
    let base = u32::from(range.network());
    let nth = |i: u64| Ipv4Net::new(Ipv4Addr::from(base + (i as u32) * 256), 24).ok();
    let h = tenant.bytes().fold(0xcbf29ce484222325u64, |a, b| (a ^ b as u64).wrapping_mul(0x100000001b3));
    (0..count).filter_map(|i| nth((h + i) % count)).find(|n| !used.contains(n))
}

/// The server's address in a tenant's /24 (`.1`).
pub fn server_address(pool: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(pool.network()) + 1)
}

/// Client `n`'s address (client 1 is `.2`); clients go up to 250.
pub fn client_address(pool: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(pool.network()) + 1 + n)
}

/// Most clients a /24 holds here (`.2` to `.251`).
pub const MAX_CLIENTS: u32 = 250;

/// One client as the server sees it.
pub struct Peer {
    pub number: u32,
    pub public: Key,
    pub preshared: Key,
}

/// `wg0.conf` of the server: it routes clients into the cluster and
/// masquerades them, so pods see the VPN pod's address.
pub fn server_config(pool: Ipv4Net, port: u16, private: &Key, peers: &[Peer]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "[Interface]");
    let _ = writeln!(s, "Address = {}/{}", server_address(pool), pool.prefix_len());
    let _ = writeln!(s, "ListenPort = {port}");
    let _ = writeln!(s, "PrivateKey = {}", private.to_base64());
    let _ = writeln!(
        s,
        "PostUp = iptables -t nat -A POSTROUTING -s {pool} -o eth0 -j MASQUERADE; iptables -A FORWARD -i %i -j ACCEPT"
    );
    let _ = writeln!(
        s,
        "PostDown = iptables -t nat -D POSTROUTING -s {pool} -o eth0 -j MASQUERADE; iptables -D FORWARD -i %i -j ACCEPT"
    );
    for p in peers {
        let _ = writeln!(s);
        let _ = writeln!(s, "[Peer]");
        let _ = writeln!(s, "# client {}", p.number);
        let _ = writeln!(s, "PublicKey = {}", p.public.to_base64());
        let _ = writeln!(s, "PresharedKey = {}", p.preshared.to_base64());
        let _ = writeln!(s, "AllowedIPs = {}/32", client_address(pool, p.number));
    }
    s
}

/// What a client's wg-quick file says.
pub struct Client<'a> {
    pub pool: Ipv4Net,
    pub number: u32,
    pub private: &'a Key,
    pub preshared: &'a Key,
    pub server_public: &'a Key,
    /// `host:port` the client connects to.
    pub endpoint: &'a str,
    /// What the client routes through the VPN (the cluster's pod and service ranges).
    pub allowed_ips: &'a [String],
    pub dns: Option<&'a str>,
}

/// A wg-quick file for one client.
pub fn client_config(c: &Client) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "[Interface]");
    let _ = writeln!(s, "Address = {}/32", client_address(c.pool, c.number));
    let _ = writeln!(s, "PrivateKey = {}", c.private.to_base64());
    if let Some(d) = c.dns {
        let _ = writeln!(s, "DNS = {d}");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "[Peer]");
    let _ = writeln!(s, "PublicKey = {}", c.server_public.to_base64());
    let _ = writeln!(s, "PresharedKey = {}", c.preshared.to_base64());
    let _ = writeln!(s, "Endpoint = {}", c.endpoint);
    let _ = writeln!(s, "AllowedIPs = {}", c.allowed_ips.join(", "));
    let _ = writeln!(s, "PersistentKeepalive = 25");
    s
}

#[cfg(test)]
mod tests;
