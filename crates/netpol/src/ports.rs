//! Ports as NetworkPolicy rules name them, and sets of concrete ports.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// One entry of a rule's `ports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortMatch {
    /// Every port of a protocol (`port` omitted).
    AnyPort(Protocol),
    /// A numeric port or an `endPort` range, inclusive.
    Range(Protocol, u16, u16),
    /// A named container port on the destination pod.
    Named(Protocol, String),
}

/// A set of ports: everything, or a union of ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSet {
    All,
    Ranges(Vec<(Protocol, u16, u16)>),
}

impl PortSet {
    pub fn empty() -> Self {
        PortSet::Ranges(vec![])
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, PortSet::Ranges(r) if r.is_empty())
    }

    pub fn contains(&self, proto: Protocol, port: u16) -> bool {
        match self {
            PortSet::All => true,
            PortSet::Ranges(r) => r.iter().any(|(p, lo, hi)| *p == proto && (*lo..=*hi).contains(&port)),
        }
    }

    pub fn union(&mut self, other: PortSet) {
        match (&mut *self, other) {
            (PortSet::All, _) => {}
            (_, PortSet::All) => *self = PortSet::All,
            (PortSet::Ranges(a), PortSet::Ranges(b)) => {
                a.extend(b);
                normalize(a);
            }
        }
    }

    pub fn intersect(&self, other: &PortSet) -> PortSet {
        match (self, other) {
            (PortSet::All, x) | (x, PortSet::All) => x.clone(),
            (PortSet::Ranges(a), PortSet::Ranges(b)) => {
                let mut out = Vec::new();
                for (pa, la, ha) in a {
                    for (pb, lb, hb) in b {
                        if pa == pb && la.max(lb) <= ha.min(hb) {
                            out.push((*pa, *la.max(lb), *ha.min(hb)));
                        }
                    }
                }
                normalize(&mut out);
                PortSet::Ranges(out)
            }
        }
    }
}

fn normalize(r: &mut Vec<(Protocol, u16, u16)>) {
    r.sort();
    let mut out: Vec<(Protocol, u16, u16)> = Vec::with_capacity(r.len());
    for x in r.drain(..) {
        match out.last_mut() {
            Some(last) if last.0 == x.0 && (x.1 as u32) <= last.2 as u32 + 1 => last.2 = last.2.max(x.2),
            _ => out.push(x),
        }
    }
    *r = out;
}

impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortSet::All => f.write_str("all ports"),
            PortSet::Ranges(r) if r.is_empty() => f.write_str("no ports"),
            PortSet::Ranges(r) => {
                let parts: Vec<String> = r
                    .iter()
                    .map(|(p, lo, hi)| {
                        if lo == hi {
                            format!("{p}/{lo}")
                        } else if *lo == 1 && *hi == 65535 {
                            format!("{p}/*")
                        } else {
                            format!("{p}/{lo}-{hi}")
                        }
                    })
                    .collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}
